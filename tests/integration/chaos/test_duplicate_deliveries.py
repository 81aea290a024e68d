"""(b) every task delivered three times, shuffled, to several workers at once: the state is
what one delivery in order gives, and the Redis posteriors equal the votes table without a
reconcile (two workers recording copies of one vote or one interaction count it once)."""

from __future__ import annotations

import pytest

from bench.chaos_scenarios import duplicate_deliveries
from bench.chaos_stack import Backend
from tests.integration.chaos.conftest import Production, explain

pytestmark = pytest.mark.slow


def test_triple_shuffled_deliveries_to_three_workers_on_production(
    production_stack: Production,
) -> None:
    backend, _, _ = production_stack
    result = duplicate_deliveries(backend, 100, times=3, workers=3)
    assert result.passed, explain(result)
    assert result.details["posteriors"]["over_counted"] == 0


def test_triple_shuffled_deliveries_to_two_workers_on_the_embedded_default(
    embedded_stack: Backend,
) -> None:
    result = duplicate_deliveries(embedded_stack, 50, times=3, workers=2)
    assert result.passed, explain(result)
