"""`thumbloop chat`: talk to a running serving worker from a terminal and rate its replies.

A chat is a platform like Telegram or Slack (platform ``cli``): each reply is recorded as an
interaction and each 👍/👎 as a vote, through the same queue and tasks the bots use.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from thumbloop import task_names as tasks
from thumbloop.contracts import IncomingMessage, Interaction, Prediction, Turn, Vote
from thumbloop.identity import hash_id
from thumbloop.queue import TaskSender

PLATFORM: Final = "cli"
SCRIPT_HELP = "one step per line: '> text' sends a message, '+' or '-' rates the last reply"


class ScriptError(ValueError):
    """A script line that is neither a message nor a vote (names the line)."""


@dataclass(frozen=True)
class Step:
    kind: Literal["message", "vote"]
    line: int
    text: str = ""
    value: int = 0


def parse_script(lines: Iterable[str]) -> list[Step]:
    """Steps of a chat script; blank lines and lines starting with '#' are skipped."""
    steps: list[Step] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line in ("+", "-"):
            if not any(s.kind == "message" for s in steps):
                raise ScriptError(f"line {number}: a vote before any message")
            steps.append(Step("vote", number, value=1 if line == "+" else -1))
        elif line.startswith(">"):
            text = line[1:].strip()
            if not text:
                raise ScriptError(f"line {number}: '>' needs a message after it")
            steps.append(Step("message", number, text=text))
        else:
            raise ScriptError(f"line {number}: expected '> text', '+' or '-' ({line[:40]!r})")
    return steps


@dataclass
class ChatSession:
    """One person's conversation: history, the last reply, and the queue to record into."""

    queue: TaskSender
    secret: str
    user: str
    conversation: str = field(default_factory=lambda: f"cli-{uuid.uuid4().hex[:12]}")
    history_turns: int = 6
    history: list[Turn] = field(default_factory=list)
    last: Prediction | None = None
    last_text: str = ""

    @property
    def user_hash(self) -> str:
        return hash_id(self.secret, PLATFORM, self.user)

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
        self.history += [
            Turn(role="user", text=text),
            Turn(role="assistant", text=_short(prediction)),
        ]
        interaction = Interaction.of_reply(
            prediction,
            text=text,
            platform=PLATFORM,
            user=self.user_hash,
            conversation=hash_id(self.secret, PLATFORM, self.conversation),
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

    def forget(self) -> None:
        self.queue.send(tasks.FORGET_USER, tasks.forget_payload(self.user_hash, PLATFORM))
        self.history.clear()
        self.last = None


def _short(prediction: Prediction) -> str:
    return prediction.reply.text[:2000]


def reply_record(text: str, p: Prediction) -> dict[str, Any]:
    return {
        "step": "message",
        "text": text,
        "reply": p.reply.text,
        "response_id": p.reply.response_id,
        "intent": p.intent.name,
        "confidence": round(p.intent.confidence, 4),
        "sentiment": p.sentiment.label,
        "sentiment_score": round(p.sentiment.score, 4),
        "model_version": p.model_version,
        "interaction_id": str(p.interaction_id),
        "latency_ms": round(p.latency_ms, 1),
    }


def vote_record(vote: Vote) -> dict[str, Any]:
    return {"step": "vote", "value": vote.value, "interaction_id": str(vote.interaction_id)}


def as_json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


def describe(p: Prediction) -> str:
    """The one-line summary printed under each reply."""
    return (
        f"intent {p.intent.name} {p.intent.confidence:.2f} · sentiment {p.sentiment.label} "
        f"{p.sentiment.score:.2f} · model {p.model_version} · {p.latency_ms:.0f} ms"
    )
