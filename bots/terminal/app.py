"""`thumbloop chat`: talk to a running serving worker from a terminal and rate its replies.

A chat is a platform like Telegram or Slack (platform ``cli``): each reply is recorded as an
interaction and each 👍/👎 as a vote, through the same queue and tasks the bots use. The session
here is what the adapter remembers and sends; :mod:`bots.terminal.runner` drives it from a script
or a prompt, and :mod:`bots.terminal.cli` is the command.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

from bots.common import followup as fu
from thumbloop import task_names as tasks
from thumbloop.contracts import (
    Correction,
    IncomingMessage,
    IntentAnswerRequest,
    Interaction,
    Prediction,
    Turn,
    Vote,
)
from thumbloop.identity import hash_id
from thumbloop.queue import TaskSender

PLATFORM: Final = "cli"


@dataclass
class ChatSession:
    """One person's conversation: history, the last reply, and the queue to record into."""

    queue: TaskSender
    id_key: str  # hashes the user and conversation names
    user: str
    conversation: str = field(default_factory=lambda: f"cli-{uuid.uuid4().hex[:12]}")
    history_turns: int = 6
    history: list[Turn] = field(default_factory=list)
    last: Prediction | None = None
    last_text: str = ""
    followup: fu.FollowUp | None = None  # what the last reply's follow-up offers

    @property
    def user_hash(self) -> str:
        return hash_id(self.id_key, PLATFORM, self.user)

    def message(self, text: str) -> IncomingMessage:
        return IncomingMessage(
            text=text,
            conversation_id=self.conversation,
            history=self.history[-min(2 * self.history_turns, 20) :] if self.history_turns else [],
            platform=PLATFORM,
        )

    def record(self, text: str, prediction: Prediction) -> None:
        """Remember the reply and send it to the learning queue as an interaction."""
        self.last, self.last_text = prediction, text
        self.followup = fu.plan(prediction, self.conversation)
        self.history += [
            Turn(role="user", text=text),
            Turn(role="assistant", text=_short(prediction)),
        ]
        interaction = Interaction.of_reply(
            prediction,
            text=text,
            platform=PLATFORM,
            user=self.user_hash,
            conversation=hash_id(self.id_key, PLATFORM, self.conversation),
        )
        self.queue.send(tasks.RECORD_INTERACTION, tasks.interaction_payload(interaction))

    def vote(self, value: int) -> Vote:
        if self.last is None:
            raise ValueError("nothing to rate yet: send a message first")
        vote = Vote(
            interaction_id=self.last.interaction_id,
            rater=self.user_hash,
            value=value,
            platform=PLATFORM,
        )
        self.queue.send(tasks.RECORD_VOTE, tasks.vote_payload(vote))
        return vote

    def correct(self, choice: str) -> Correction:
        """Record what went wrong with the last reply: ``choice`` is one its follow-up offers
        (``0``-``3``, ``o``, ``h``). A new pick replaces the earlier one (the last one wins)."""
        if self.last is None or self.followup is None:
            raise ValueError("nothing to correct yet: send a message first")
        pick = fu.read_choice(self.followup, choice)
        if pick is None:
            raise ValueError(f"{choice!r} is not one of the choices offered")
        made = fu.correction(pick, self.last.interaction_id, self.user_hash, PLATFORM)
        self.queue.send(tasks.RECORD_CORRECTION, tasks.correction_payload(made))
        return made

    def answer_request(self, intent: str) -> IntentAnswerRequest:
        """What to ask the serving worker for the reply to a picked intent."""
        sentiment = self.last.sentiment.label if self.last is not None else "neutral"
        return IntentAnswerRequest(
            intent=intent, sentiment=sentiment, conversation_id=self.conversation, platform=PLATFORM
        )

    def forget(self) -> None:
        self.queue.send(tasks.FORGET_USER, tasks.forget_payload(self.user_hash, PLATFORM))
        self.history.clear()  # all of the session's turns are this user's
        self.last = self.followup = None
        self.last_text = ""


def _short(prediction: Prediction) -> str:
    return prediction.reply.text[:2000]
