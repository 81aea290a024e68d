"""(d) PostgreSQL away while votes arrive at 5 a second (a private server, stopped or made
read-only): everything is stored afterwards, and an outage the retries can ride out leaves no
dead letter."""

from __future__ import annotations

import pytest

from bench.chaos_scenarios import postgres_outage
from tests.integration.chaos.conftest import Production, explain

pytestmark = pytest.mark.slow


def test_a_stopped_database_loses_no_vote(production_stack: Production) -> None:
    backend, pg, _ = production_stack
    result = postgres_outage(backend, pg, 10, "stopped", before_s=3, after_s=5)
    assert result.passed, explain(result)
    assert result.details["dead_letters"] == 0, explain(result)


def test_a_read_only_failover_is_ridden_out_like_an_outage(production_stack: Production) -> None:
    """Writes refused by a read-only server (SQLSTATE 25006, as after a failover to a standby)
    are retried like a stopped server, not turned into dead letters at the first refusal."""
    backend, pg, _ = production_stack
    result = postgres_outage(backend, pg, 10, "read-only", before_s=3, after_s=5)
    assert result.passed, explain(result)
    assert result.details["dead_letters"] == 0, explain(result)
