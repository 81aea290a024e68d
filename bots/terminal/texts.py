"""What `thumbloop chat` prints: the prompt's help, each reply's summary line, and the JSON
records of ``--json``. Pure."""

from __future__ import annotations

import json
from typing import Any

from bots.common.followup import FollowUp
from bots.common.signing import OTHER, UNHELPFUL
from thumbloop.contracts import Correction, Prediction, Vote

HELP = (
    "Type a message and press Enter. On an empty line press '+' for 👍 or '-' for 👎 "
    "on the last reply; after a 👎 pick what went wrong (a number, s or h; Enter skips). "
    "/forget erases what you sent, /help shows this, /quit or Ctrl-D leaves."
)
PICK_PROMPT = "pick ▸ "


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


def vote_text(value: int) -> str:
    return "      👍 recorded" if value > 0 else "      👎 recorded"


def choices_text(followup: FollowUp) -> str:
    """The follow-up as numbered lines: ``1) card arrival`` …, ``s) Something else``, ``h) …``."""
    keys = {OTHER: "s", UNHELPFUL: "h"}
    lines = [f"      {followup.question}"]
    for choice in followup.choices:
        key = keys.get(choice, str(int(choice) + 1) if choice.isdigit() else choice)
        lines.append(f"        {key}) {followup.label(choice)}")
    lines.append("      (Enter skips)")
    return "\n".join(lines)


def correction_record(correction: Correction, answer: str | None) -> dict[str, Any]:
    return {
        "step": "pick",
        "kind": correction.kind,
        "label": correction.label,
        "interaction_id": str(correction.interaction_id),
        "answer": answer,
    }
