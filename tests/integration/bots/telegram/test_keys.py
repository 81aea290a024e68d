"""The keys under a running bot, against the local Bot API server: ids are hashed with the id
key, buttons signed with the previous signing key count during a rotation and are refused once
it is dropped, as are buttons naming a key the bot never had; a bot on a home whose keys
`thumbloop up` generated starts without development mode and uses them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from bots.common.signing import SigningKeys, sign_vote
from bots.telegram import texts
from tests.integration.bots.telegram.alone import BotFactory, queued_tasks, replies_in
from tests.integration.fakes.telegram_bot import wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from thumbloop.identity import ensure_home_keys, hash_id
from thumbloop.settings import DEV_KEY, Settings
from thumbloop.task_names import DEFAULT_QUEUE, RECORD_VOTE

pytestmark = [pytest.mark.redis]

ID_KEY = "id-key-" + "a" * 40
OLD, NEW = "old-signing-key-" + "b" * 40, "new-signing-key-" + "c" * 40


def legacy_token(key: str, iid: uuid.UUID, value: int) -> str:
    """A button's data as bots signed it before key ids (``t1``): still under posted replies."""
    sign = b"+" if value > 0 else b"-"
    mac = hmac.new(key.encode(), iid.bytes + sign, hashlib.sha256).digest()[:12]

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"t1.{b64(iid.bytes)}.{'u' if value > 0 else 'd'}.{b64(mac)}"


def press_all(
    api: FakeBotApi, user: dict[str, Any], message: dict[str, Any], data: list[str]
) -> list[bool]:
    """Presses each button (the bot handles them concurrently); returns, per press, whether it
    was refused (an alert)."""
    queries = [api.press(user, message, d) for d in data]
    wait_until(lambda: all(api.query_answered(q) for q in queries))
    answers = {c.params["callback_query_id"]: c.params for c in api.calls_to("answerCallbackQuery")}
    return [answers[q].get("show_alert") is True for q in queries]


def voted(broker: redis.Redis, n: int) -> list[dict[str, Any]]:
    return wait_until(
        lambda: (
            (got := [k["vote"] for t, k in queued_tasks(broker) if t == RECORD_VOTE])
            and len(got) >= n
            and got
        )
    )


def a_message(api: FakeBotApi, user: dict[str, Any]) -> dict[str, Any]:
    chat = api.private_chat(user)
    api.user_message(chat, user, "/start")
    return wait_until(lambda: replies_in(api, chat["id"]))[0]


def test_the_previous_signing_key_counts_until_it_is_dropped(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory, broker: redis.Redis
) -> None:
    api, _ = fake
    keys = {"id_key": SecretStr(ID_KEY), "signing_key": SecretStr(NEW)}
    rotating = start_bot(**keys, signing_key_previous=SecretStr(OLD))
    ada = api.user(3001)
    message = a_message(api, ada)
    before, during, posted = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    old_button = sign_vote(SigningKeys(OLD), before, 1)  # posted before the rotation
    assert press_all(
        api,
        ada,
        message,
        [old_button, sign_vote(SigningKeys(NEW), during, -1), legacy_token(OLD, posted, 1)],
    ) == [False, False, False]
    votes = voted(broker, 3)
    assert {v["interaction_id"] for v in votes} == {str(before), str(during), str(posted)}
    # the rater is hashed with the id key: neither signing key, nor the fallback key
    assert {v["rater"] for v in votes} == {hash_id(ID_KEY, "telegram", ada["id"])}
    assert hash_id(NEW, "telegram", ada["id"]) != votes[0]["rater"]
    broker.delete(DEFAULT_QUEUE)
    rotating.stop()

    start_bot(**keys)  # the rotation is over: THUMBLOOP_SIGNING_KEY_PREVIOUS is unset
    other_key = SigningKeys("a-key-this-bot-never-had-" + "d" * 30)
    forged_kid = sign_vote(SigningKeys(NEW), before, 1).split(".")
    forged_kid[1] = sign_vote(other_key, before, 1).split(".")[1]
    refused = [
        old_button,
        legacy_token(OLD, posted, 1),
        sign_vote(other_key, before, 1),  # a key id the bot does not know
        ".".join(forged_kid),  # the current key's signature under another key's id
    ]
    control = uuid.uuid4()
    assert press_all(api, ada, message, [*refused, sign_vote(SigningKeys(NEW), control, 1)]) == [
        True,
        True,
        True,
        True,
        False,
    ]
    assert [v["interaction_id"] for v in voted(broker, 1)] == [str(control)]
    alerts = [c.params for c in api.calls_to("answerCallbackQuery") if c.params.get("show_alert")]
    assert {a["text"] for a in alerts} == {texts.BUTTON_INVALID}


def test_a_home_with_generated_keys_starts_without_dev_mode_and_uses_them(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory, broker: redis.Redis, tmp_path: Path
) -> None:
    api, _ = fake
    assert ensure_home_keys(Settings(home=tmp_path, hmac_secret=DEV_KEY)) is not None
    generated = json.loads((tmp_path / "keys.json").read_text())
    start_bot(hmac_secret=SecretStr(DEV_KEY))  # nothing set: the home's keys are in effect
    ada = api.user(3002)
    message = a_message(api, ada)
    iid = uuid.uuid4()
    token = sign_vote(SigningKeys(generated["signing_key"]), iid, -1)
    assert press_all(api, ada, message, [token]) == [False]
    (vote,) = voted(broker, 1)
    assert vote["rater"] == hash_id(generated["id_key"], "telegram", ada["id"])
