"""The generator's prompt, as chat messages: pure, so it is tested without a model.

A short persona and rules in the system turn (plus a tone line when the customer is upset); the
recent conversation as earlier turns; the last user turn carries the customer's message, then the
predicted intent and the reference answer the reply must be grounded in (the template variant that
Thompson sampling chose for this message). A small model passes the guard rails more often with
this layout than with the reference in the system turn or the message framed as "Customer
question about ...:", which it tends to echo back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from thumbloop.contracts import Turn

PERSONA = (
    "You are the customer support assistant of a bank. Reply in at most two short sentences. "
    "Only use the facts from the reference answer. "
    "Never invent numbers, links, email addresses or phone numbers."
)
EMPATHY = " The customer is upset: be warm and empathetic."
MAX_TURN_CHARS = 500  # a long earlier turn is cut: the prompt stays small and fast


@dataclass(frozen=True)
class PromptInput:
    text: str
    intent: str
    sentiment: str
    reference: str  # the answer the reply must be grounded in
    history: Sequence[Turn] = ()


def topic(intent: str) -> str:
    return intent.replace("_", " ").strip(" ?").lower()


def _clip(text: str, limit: int = MAX_TURN_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def build_messages(p: PromptInput, history_turns: int = 4) -> list[dict[str, str]]:
    system = PERSONA + (EMPATHY if p.sentiment == "negative" else "")
    messages = [{"role": "system", "content": system}]
    recent = list(p.history)[-history_turns:] if history_turns > 0 else []
    while (
        recent and recent[0].role != "user"
    ):  # a conversation shown to the model opens with the user
        recent.pop(0)
    messages += [{"role": t.role, "content": _clip(t.text)} for t in recent]
    messages.append(
        {
            "role": "user",
            "content": f"{_clip(p.text)}\n\n"
            f"Answer using this reference answer about {topic(p.intent)}: {p.reference}",
        }
    )
    return messages
