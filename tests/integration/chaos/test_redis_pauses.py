"""(c) the Redis that holds the broker and the posteriors paused (SIGSTOP) during the votes:
posterior moves lost to the pauses are brought back by beat's periodic reconcile, and no vote
is lost."""

from __future__ import annotations

import pytest

from bench.chaos_scenarios import redis_pauses
from tests.integration.chaos.conftest import Production, explain

pytestmark = pytest.mark.slow


def test_posteriors_reconcile_to_sql_after_redis_pauses(production_stack: Production) -> None:
    backend, _, redis_server = production_stack
    result = redis_pauses(backend, redis_server, 100, pauses=3, pause_s=3)
    assert result.passed, explain(result)
