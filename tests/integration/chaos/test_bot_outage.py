"""(g) the broker down while Telegram updates arrive and the bot process is SIGKILLed twice:
every update the bot answered is stored, none is dropped without a word."""

from __future__ import annotations

import pytest

from bench.chaos_bot import bot_outage
from tests.integration.chaos.conftest import Production, explain

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


def test_a_killed_bot_loses_no_update_while_the_broker_is_down(
    production_stack: Production, tiny_registered
) -> None:  # type: ignore[no-untyped-def]
    backend, _, _ = production_stack
    result = bot_outage(
        backend, tiny_registered.bundle_dir, n_updates=150, outage_s=15, kills=2, users=30
    )
    assert result.passed, explain(result)
    assert result.details["answered"] == 150
    # the outage held: what the killed bots owed was still in their spools at the restarts
    assert result.details["resent_tasks"] > 0
