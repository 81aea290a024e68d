"""(a) votes, flips and withdrawals while the worker is SIGKILLed: nothing lost, nothing
counted twice, posteriors equal to the votes table after a reconcile, none below zero."""

from __future__ import annotations

import pytest

from bench.chaos_scenarios import worker_kills
from tests.integration.chaos.conftest import Production, explain

pytestmark = pytest.mark.slow


def test_kills_of_the_worker_and_its_child_lose_no_vote_on_production(
    production_stack: Production,
) -> None:
    backend, _, _ = production_stack
    result = worker_kills(backend, 200, 3)
    assert result.passed, explain(result)
    assert result.details["kills"]["parent"] == 2 and result.details["kills"]["child"] == 1
