"""What `thumbloop chat` prints: the prompt's help, each reply's summary line, and the JSON
records of ``--json``. Pure."""

from __future__ import annotations

import json
from typing import Any

from thumbloop.contracts import Prediction, Vote

HELP = (
    "Type a message and press Enter. On an empty line press '+' for 👍 or '-' for 👎 "
    "on the last reply. /forget erases what you sent, /help shows this, /quit or Ctrl-D leaves."
)


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
