"""(e) serving's model processes SIGKILLed and SIGSTOPped under load: at most one batch lost per
fault, the hung process replaced, /readyz 503 only while no lane works."""

from __future__ import annotations

import pytest

from bench.chaos_serving import model_process_faults
from tests.integration.chaos.conftest import explain

pytestmark = pytest.mark.slow


def test_killed_and_stopped_model_processes_lose_at_most_their_batch(tiny_registered) -> None:  # type: ignore[no-untyped-def]
    result = model_process_faults(tiny_registered.bundle_dir, kills=2, every_s=3, stop_s=5)
    assert result.passed, explain(result)
    assert result.details["statuses"].get(200, 0) > 50  # type: ignore[attr-defined]
