"""(h) the champion alias moved between good and broken versions (weights cut in half, no
bundle, NaN outputs, a failed gate) with one MLflow outage: every answer 200, only good versions
answer, and the version the outage hid is served once it ends."""

from __future__ import annotations

import pytest

from bench.chaos_alias import alias_moves
from tests.integration.chaos.conftest import explain

pytestmark = pytest.mark.slow


def test_broken_versions_are_never_served_and_an_outage_is_retried(tiny_registered) -> None:  # type: ignore[no-untyped-def]
    result = alias_moves(tiny_registered.bundle_dir, every_s=3, outage_s=3)
    assert result.passed, explain(result)
    assert len(result.details["served"]) == 2  # type: ignore[arg-type]  # both good ones answered
