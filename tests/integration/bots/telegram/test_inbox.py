"""Updates Telegram counts as delivered but the bot had not handled when it died: its next run
handles them, once, before it polls again (``bots/telegram/inbox.py``). The kill itself, with
thousands of updates and the broker down, is chaos scenario (g): tests/integration/chaos."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from bots.common.signing import SigningKeys, verify_vote
from bots.common.spool import Spool, spool_path
from bots.telegram.convert import message_interaction_id
from bots.telegram.inbox import DurableUpdateQueue
from tests.integration.bots.telegram.alone import SECRET, BotFactory, queued_tasks, replies_in
from tests.integration.fakes.serving import run_scripted_serving
from tests.integration.fakes.telegram_bot import wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from thumbloop.identity import hash_id
from thumbloop.task_names import RECORD_INTERACTION

pytestmark = [pytest.mark.redis]

TEXT = "my new card has not arrived yet"


def test_an_update_left_unhandled_is_handled_by_the_next_run_and_only_once(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory, broker: redis.Redis, tmp_path: Path
) -> None:
    api, _ = fake
    with run_scripted_serving({"card_arrival", "out_of_scope"}) as (scripted, url):
        scripted.says(TEXT, [("card_arrival", 0.93), ("out_of_scope", 0.04)], "card_arrival_1")
        ada = api.user(3101)
        chat = api.private_chat(ada)
        message = api.user_message(chat, ada, TEXT)
        (update,) = api.pending()  # Telegram still holds it: the dead run had not confirmed it
        # ... but had written it to its inbox, and died before handling it
        earlier = Spool(spool_path(tmp_path, "telegram", "inbox"))
        earlier.add("update", update)
        earlier.close()

        bot = start_bot(serving_url=url)
        (reply,) = wait_until(lambda: replies_in(api, chat["id"]), timeout=30)
        wait_until(lambda: not api.pending())  # Telegram's own copy was polled as well
        time.sleep(1.0)
        assert len(replies_in(api, chat["id"])) == 1, "Telegram's copy was handled again"

        queue = bot.app.update_queue
        assert isinstance(queue, DurableUpdateQueue)
        assert (queue.replayed, queue.skipped, queue.pending) == (1, 1, 0)
        iid, _ = verify_vote(SigningKeys(SECRET), buttons_of(reply)[0])
        conversation = hash_id(SECRET, "telegram", chat["id"])
        assert iid == message_interaction_id(conversation, message["message_id"])
        recorded = [kw for name, kw in queued_tasks(broker) if name == RECORD_INTERACTION]
        assert [kw["interaction"]["interaction_id"] for kw in recorded] == [str(iid)]
        assert recorded[0]["interaction"]["text"] == TEXT


def test_a_message_handled_twice_records_one_interaction(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory, broker: redis.Redis, tmp_path: Path
) -> None:
    """The kill came after the reply: the next run answers again, and both replies' buttons
    vote on the one interaction both handlings recorded."""
    api, _ = fake
    with run_scripted_serving({"card_arrival", "out_of_scope"}) as (scripted, url):
        scripted.says(TEXT, [("card_arrival", 0.93), ("out_of_scope", 0.04)], "card_arrival_1")
        ada = api.user(3102)
        chat = api.private_chat(ada)
        api.user_message(chat, ada, TEXT)
        (update,) = api.pending()
        first = start_bot(serving_url=url)
        wait_until(lambda: replies_in(api, chat["id"]), timeout=30)
        first.stop()
        earlier = Spool(spool_path(tmp_path, "telegram", "inbox"))
        earlier.add("update", update)  # as if the kill had come before the row was deleted
        earlier.close()

        start_bot(serving_url=url)
        replies = wait_until(lambda: len(replies_in(api, chat["id"])) >= 2, timeout=30)
        replies = replies_in(api, chat["id"])
        ids = {verify_vote(SigningKeys(SECRET), buttons_of(r)[0])[0] for r in replies}
        assert len(replies) == 2 and len(ids) == 1

        def recorded() -> list[str]:
            return [
                kw["interaction"]["interaction_id"]
                for name, kw in queued_tasks(broker)
                if name == RECORD_INTERACTION
            ]

        wait_until(lambda: len(recorded()) >= 2)
        assert set(recorded()) == {str(ids.pop())}


def buttons_of(reply: dict[str, object]) -> list[str]:
    markup = reply["reply_markup"]
    assert isinstance(markup, dict)
    return [b["callback_data"] for b in markup["inline_keyboard"][0]]
