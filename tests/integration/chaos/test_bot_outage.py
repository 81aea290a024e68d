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
    result = bot_outage(backend, tiny_registered.bundle_dir, n_updates=300, outage_s=30, kills=2)
    assert result.passed, explain(result)
    assert result.details["answered"] == 300 and result.details["replayed_updates"] >= 0
