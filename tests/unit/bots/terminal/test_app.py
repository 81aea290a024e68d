"""The chat session: what it sends to the learning queue, and the history it keeps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from bots.terminal.app import ChatSession
from thumbloop import task_names as tasks
from thumbloop.contracts import (
    IntentResult,
    Interaction,
    Prediction,
    RankedIntent,
    Reply,
    SentimentResult,
    Vote,
)
from thumbloop.identity import hash_id


class RecordingSender:
    """A TaskSender that keeps what it was given (the broker side is tested in integration)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, name: str, kwargs: dict[str, Any]) -> str:
        self.sent.append((name, kwargs))
        return uuid.uuid4().hex


def prediction(intent: str = "card_arrival") -> Prediction:
    return Prediction(
        intent=IntentResult(name=intent, confidence=0.9, ranking=[]),
        sentiment=SentimentResult(label="negative", score=0.7),
        reply=Reply(text="Your card is on its way.", response_id=f"{intent}/1"),
        model_version="thumbloop/3",
        latency_ms=12.0,
    )


def test_a_reply_is_recorded_as_an_interaction_and_a_vote_rates_it() -> None:
    sender = RecordingSender()
    session = ChatSession(queue=sender, id_key="s", user="ann", conversation="cli-x")
    with pytest.raises(ValueError, match="nothing to rate"):
        session.vote(1)
    predicted = prediction()
    session.record("my card is late", predicted)
    vote = session.vote(-1)

    (name, payload), (vname, vpayload) = sender.sent
    assert name == tasks.RECORD_INTERACTION and vname == tasks.RECORD_VOTE
    item = Interaction.model_validate(payload["interaction"])
    assert item.interaction_id == predicted.interaction_id
    assert item.user == hash_id("s", "cli", "ann") != "ann"
    assert item.conversation == hash_id("s", "cli", "cli-x")
    assert (item.intent, item.response_id, item.model_version) == (
        "card_arrival",
        "card_arrival/1",
        "thumbloop/3",
    )
    assert Vote.model_validate(vpayload["vote"]) == vote
    assert (vote.value, vote.rater, vote.platform) == (-1, item.user, "cli")


def test_history_goes_with_the_next_message_and_is_capped() -> None:
    session = ChatSession(queue=RecordingSender(), id_key="s", user="ann", history_turns=2)
    for i in range(4):
        session.record(f"message {i}", prediction())
    message = session.message("next")
    assert [t.text for t in message.history if t.role == "user"] == ["message 2", "message 3"]
    assert len(message.history) == 4 and message.platform == "cli"


def test_forget_asks_the_queue_to_erase_the_user() -> None:
    sender = RecordingSender()
    session = ChatSession(queue=sender, id_key="s", user="ann")
    session.record("hi", prediction("greeting"))
    session.forget()
    name, payload = sender.sent[-1]
    assert name == tasks.FORGET_USER
    assert (payload["user"], payload["platform"]) == (hash_id("s", "cli", "ann"), "cli")
    assert datetime.fromisoformat(payload["at"]) <= datetime.now(UTC)  # when the user asked
    assert session.last is None and session.history == [] and session.followup is None
    assert session.last_text == "", "nothing the user said is kept in the session"


def test_a_pick_after_a_downvote_is_recorded_as_a_correction() -> None:
    sender = RecordingSender()
    session = ChatSession(queue=sender, id_key="s", user="ann")
    with pytest.raises(ValueError, match="nothing to correct"):
        session.correct("o")
    ranked = Prediction(
        intent=IntentResult(
            name="card_arrival",
            confidence=0.7,
            ranking=[
                RankedIntent(name="card_arrival", confidence=0.7),
                RankedIntent(name="lost_or_stolen_card", confidence=0.2),
            ],
        ),
        sentiment=SentimentResult(label="negative", score=0.7),
        reply=Reply(text="Your card is on its way.", response_id="card_arrival/1"),
        model_version="thumbloop/3",
        latency_ms=12.0,
    )
    session.record("where is my card", ranked)
    made = session.correct("0")
    assert (made.kind, made.label, made.platform) == ("intent", "lost_or_stolen_card", "cli")
    assert sender.sent[-1] == (tasks.RECORD_CORRECTION, tasks.correction_payload(made))
    assert made.interaction_id == ranked.interaction_id
    assert made.rater == hash_id("s", "cli", "ann")
    with pytest.raises(ValueError, match="not one of the choices"):
        session.correct("1")  # only one other intent was offered
    asked = session.answer_request("lost_or_stolen_card")
    assert (asked.sentiment, asked.conversation_id) == ("negative", session.conversation)
