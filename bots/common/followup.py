"""What a 👎 (or a reply that asked to clarify) is followed by: the choices a user can tap to say
what went wrong. Pure: the same decisions for Telegram, Slack and ``thumbloop chat``.

A 👎 alone says "not this", which teaches little. The follow-up asks "What went wrong?" and
offers, in one tap:

* up to three **other intents** from the prediction's ranking (never the top one, which the
  reply already answered, and never out of scope), each only when the model gave it at least
  :data:`PLAUSIBLE` (5 %): an intent below that is noise, and offering it invites a wrong label;
* **Something else** (the message meant none of them);
* **Right topic, the answer didn't help** (the intent was right; the reply was not).

A reply that asked to clarify (its ``response_id`` contains ``clarify``) offers its choices at
once, under the reply: the plausible intents of the ranking, the top one included (up to four),
and Something else; none at all when no intent but out of scope is plausible (the model is
confident the message is out of scope, so there is nothing to pick between).

Buttons carry only the place of a choice (``0``-``3``, ``o``, ``h``: :data:`bots.common.signing.
CHOICES`), so the bot remembers what it offered per interaction (:class:`FollowUp`, kept by
:mod:`bots.common.followup_store`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bots.common.signing import OTHER, UNHELPFUL
from thumbloop.contracts import (
    RANKING_SIZE,
    Correction,
    Platform,
    Prediction,
    SentimentLabel,
    intent_title,
)

PLAUSIBLE = 0.05  # the least confidence for an intent to be offered as a choice
AFTER_DOWNVOTE = 3  # other intents offered after a 👎 (the top one is what was answered)
OUT_OF_SCOPE = frozenset({"out_of_scope", "oos"})  # the names a domain gives "none of these"

QUESTION = "What went wrong?"
CLARIFY_QUESTION = "Did you mean…"
SOMETHING_ELSE = "Something else"
DIDNT_HELP = "Right topic, the answer didn't help"

Kind = Literal["intent", "unhelpful", "other"]


@dataclass(frozen=True)
class FollowUp:
    """What the bot offers for one interaction, and what it needs to answer a pick.

    ``at_once``: the choices are shown under the reply as it is sent (a reply that asked to
    clarify), not only after a 👎. ``unhelpful``: "the answer didn't help" is offered.
    """

    intents: tuple[str, ...]
    unhelpful: bool
    at_once: bool = False
    sentiment: SentimentLabel = "neutral"
    conversation: str = "default"  # the serving request's conversation id, for the answer

    def __post_init__(self) -> None:
        if len(self.intents) > RANKING_SIZE:
            raise ValueError(f"at most {RANKING_SIZE} intents can be offered")

    @property
    def choices(self) -> tuple[str, ...]:
        """The choice codes on offer, in the order they are shown."""
        extra = (OTHER, UNHELPFUL) if self.unhelpful else (OTHER,)
        return tuple(str(i) for i in range(len(self.intents))) + extra

    def label(self, choice: str) -> str:
        """What the button of ``choice`` says (an intent's human name)."""
        if choice == OTHER:
            return SOMETHING_ELSE
        if choice == UNHELPFUL:
            return DIDNT_HELP
        return intent_title(self.intents[int(choice)])

    @property
    def question(self) -> str:
        return CLARIFY_QUESTION if self.at_once else QUESTION

    def to_json(self) -> str:
        return json.dumps(
            {
                "intents": list(self.intents),
                "unhelpful": self.unhelpful,
                "at_once": self.at_once,
                "sentiment": self.sentiment,
                "conversation": self.conversation,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> FollowUp:
        data = json.loads(raw)
        return cls(
            intents=tuple(str(i) for i in data["intents"]),
            unhelpful=bool(data["unhelpful"]),
            at_once=bool(data.get("at_once", False)),
            sentiment=data.get("sentiment", "neutral"),
            conversation=str(data.get("conversation", "default")),
        )


def is_clarifying(response_id: str) -> bool:
    """Whether a reply asked the user to clarify (serving marks those ids with ``clarify``)."""
    return "clarify" in response_id


def _plausible(prediction: Prediction) -> list[str]:
    return [
        r.name
        for r in prediction.intent.ranking
        if r.name not in OUT_OF_SCOPE and r.confidence >= PLAUSIBLE
    ]


def plan(prediction: Prediction, conversation: str = "default") -> FollowUp:
    """The follow-up of a reply, decided when it is sent (the bot keeps it: a 👎 can come much
    later, when the prediction is long gone)."""
    plausible = _plausible(prediction)
    sentiment = prediction.sentiment.label
    if is_clarifying(prediction.reply.response_id):
        if plausible:
            # the reply answered no intent: "the answer didn't help" would name nothing
            intents = tuple(plausible[:RANKING_SIZE])
            return FollowUp(intents, False, True, sentiment, conversation)
        return FollowUp((), True, False, sentiment, conversation)
    top = prediction.intent.name
    others = tuple(name for name in plausible if name != top)[:AFTER_DOWNVOTE]
    return FollowUp(others, True, False, sentiment, conversation)


@dataclass(frozen=True)
class Pick:
    """A tapped choice, read against what was offered."""

    kind: Kind
    label: str | None = None  # the intent, for kind ``intent``


def read_choice(followup: FollowUp, choice: str) -> Pick | None:
    """What ``choice`` means for ``followup``; ``None`` when it was never offered."""
    if choice not in followup.choices:
        return None
    if choice == OTHER:
        return Pick("other")
    if choice == UNHELPFUL:
        return Pick("unhelpful")
    return Pick("intent", followup.intents[int(choice)])


def correction(
    pick: Pick,
    interaction_id: uuid.UUID,
    rater: str,
    platform: Platform,
    at: datetime | None = None,
) -> Correction:
    """The :class:`Correction` a pick records; ``at``: when the user tapped (default now)."""
    return Correction(
        interaction_id=interaction_id,
        rater=rater,
        kind=pick.kind,
        label=pick.label,
        platform=platform,
        at=at or datetime.now(UTC),
    )


THANKS: dict[Kind, str] = {
    "intent": "Thanks! Here is the answer about {title}.",
    "other": "Thanks, noted. Could you tell me again in other words?",
    "unhelpful": "Thanks, noted: I'll look for a better answer.",
}
WITHDRAWN = "Your choice was withdrawn."
EXPIRED = "Sorry, I no longer know which choices I offered here. Please ask again."


def thanks(pick: Pick) -> str:
    """What the bot says to a pick (a toast on Telegram, a line elsewhere)."""
    return THANKS[pick.kind].format(title=intent_title(pick.label or ""))
