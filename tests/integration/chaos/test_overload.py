"""(f) three times the capacity serving measured, open loop: only 200, 503 or 504 (shed, not
failed), and answers within three times the quiet latency again soon after."""

from __future__ import annotations

import pytest

from bench.chaos_serving import overload, recovery_seconds
from tests.integration.chaos.conftest import explain

pytestmark = pytest.mark.slow


def test_three_times_the_capacity_is_shed_and_recovered_from(tiny_registered) -> None:  # type: ignore[no-untyped-def]
    result = overload(tiny_registered.bundle_dir, seconds=8)
    assert result.passed, explain(result)
    assert 503 in {int(k) for k in result.details["load"]["statuses"]}  # type: ignore[index]


def test_recovery_counts_from_the_last_bad_probe() -> None:
    probes = [(9.0, 503, 0.0), (10.5, 503, 0.0), (11.0, 200, 0.9), (12.0, 200, 0.01)]
    probes += [(13.0, 200, 0.02)]
    assert recovery_seconds(probes, end=10.0, slow=0.1) == 2.0
    assert recovery_seconds(probes[:3], end=10.0, slow=0.1) is None  # still slow at the end
    assert recovery_seconds([(12.0, 200, 0.01)], end=10.0, slow=0.1) == 2.0
