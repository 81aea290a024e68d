"""The messages every part exchanges (pydantic only: importing this must stay cheap).

``SCHEMA_VERSION`` is bumped on any incompatible change; consumers reject versions they
do not know instead of guessing.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1

Platform = Literal["telegram", "slack", "cli", "api", "simulator"]
SentimentLabel = Literal["negative", "neutral", "positive"]
SENTIMENT_LABELS: tuple[SentimentLabel, ...] = ("negative", "neutral", "positive")

_HEX_ID = re.compile(r"^[0-9a-f]{16,128}$")

NonEmptyText = Annotated[str, StringConstraints(min_length=1)]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Turn(_Contract):
    role: Literal["user", "assistant"]
    text: str = Field(max_length=16_384)


class IncomingMessage(_Contract):
    """One user message as the bots hand it to the serving worker."""

    text: str = Field(description="The user's message; must contain a non-space character.")
    conversation_id: str = Field(default="default", min_length=1, max_length=256)
    history: list[Turn] = Field(default_factory=list, max_length=20)
    platform: Platform = "api"

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text must contain at least one non-whitespace character")
        return v


class IntentAnswerRequest(_Contract):
    """Ask for the reply to a known intent: what a bot sends after a user picked the intent
    they meant (``POST /v1/answer``)."""

    intent: str = Field(min_length=1, max_length=128)
    sentiment: SentimentLabel = "neutral"
    conversation_id: str = Field(default="default", min_length=1, max_length=256)
    platform: Platform = "api"


class RankedIntent(_Contract):
    name: str
    confidence: float = Field(ge=0.0, le=1.0)


RANKING_SIZE = 4  # the top intent and up to three others: what a 👎 follow-up can offer


class IntentResult(_Contract):
    name: str
    confidence: float = Field(ge=0.0, le=1.0)
    ranking: list[RankedIntent] = Field(
        max_length=RANKING_SIZE, description="The most likely intents, best first (top included)."
    )


class SentimentResult(_Contract):
    label: SentimentLabel
    score: float = Field(ge=0.0, le=1.0)


class PromptMessage(_Contract):
    role: Literal["system", "user", "assistant"]
    content: str


class Reply(_Contract):
    text: str
    response_id: str
    strategy: str = Field(
        default="template",
        description="`template`, `generative`, or `template:fallback-<why>` when a generated "
        "reply was refused (guardrail, length, budget, unavailable, busy, error).",
    )
    generator: str | None = Field(
        default=None, description="Version of the generator consulted for this reply, if any."
    )
    prompt: list[PromptMessage] | None = Field(
        default=None,
        description="The chat messages the generator wrote this reply from (generative replies "
        "only). The bots record it with the interaction so that votes can train the generator.",
    )


class Prediction(_Contract):
    schema_version: int = SCHEMA_VERSION
    interaction_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    intent: IntentResult
    sentiment: SentimentResult
    reply: Reply
    model_version: str
    latency_ms: float = Field(ge=0.0)


def _check_hex_id(v: str) -> str:
    if not _HEX_ID.match(v):
        raise ValueError("must be a lowercase hex HMAC digest (16-128 chars), never a raw id")
    return v


class Interaction(_Contract):
    """A delivered reply, as the learning side stores it."""

    schema_version: int = SCHEMA_VERSION
    interaction_id: uuid.UUID
    platform: Platform
    user: str = Field(description="HMAC of the platform user id")
    conversation: str = Field(description="HMAC of the platform chat/channel id")
    text: NonEmptyText
    intent: str
    intent_confidence: float = Field(ge=0.0, le=1.0)
    sentiment: SentimentLabel
    response_id: str
    reply_text: str
    model_version: str
    message_ref: str | None = Field(default=None, description="platform reference of the reply")
    reply_strategy: str = Field(default="template", description="Reply.strategy")
    generator: str | None = Field(default=None, description="Reply.generator")
    reply_prompt: list[PromptMessage] | None = Field(default=None, description="Reply.prompt")
    at: datetime = Field(default_factory=_utcnow)

    _user = field_validator("user", "conversation")(_check_hex_id)

    @classmethod
    def of_reply(
        cls,
        prediction: Prediction,
        *,
        text: str,
        platform: Platform,
        user: str,
        conversation: str,
        message_ref: str | None = None,
    ) -> Interaction:
        """The interaction a platform records after delivering ``prediction``'s reply."""
        return cls(
            interaction_id=prediction.interaction_id,
            platform=platform,
            user=user,
            conversation=conversation,
            text=text,
            intent=prediction.intent.name,
            intent_confidence=prediction.intent.confidence,
            sentiment=prediction.sentiment.label,
            response_id=prediction.reply.response_id,
            reply_text=prediction.reply.text,
            model_version=prediction.model_version,
            message_ref=message_ref,
            reply_strategy=prediction.reply.strategy,
            generator=prediction.reply.generator,
            reply_prompt=prediction.reply.prompt,
        )


class Vote(_Contract):
    """A thumb on a reply. One per (interaction, rater); a newer vote replaces an older one."""

    schema_version: int = SCHEMA_VERSION
    interaction_id: uuid.UUID
    rater: str = Field(description="HMAC of the platform user id")
    value: Literal[-1, 1]
    platform: Platform
    at: datetime = Field(default_factory=_utcnow)

    _rater = field_validator("rater")(_check_hex_id)


CorrectionKind = Literal["intent", "unhelpful", "other"]


class Correction(_Contract):
    """What a rater said after a 👎 (or to a reply that asked to clarify): the message meant
    ``label`` (``intent``), the intent was right but the answer did not help (``unhelpful``), or
    it meant none of the intents offered (``other``). One per (interaction, rater); the one made
    last (by ``at``) wins, and a withdrawal made after it removes it, as with votes."""

    schema_version: int = SCHEMA_VERSION
    interaction_id: uuid.UUID
    rater: str = Field(description="HMAC of the platform user id")
    kind: CorrectionKind
    label: str | None = Field(
        default=None, max_length=128, description="The picked intent; only for kind `intent`."
    )
    platform: Platform
    at: datetime = Field(default_factory=_utcnow)

    _rater = field_validator("rater")(_check_hex_id)

    @model_validator(mode="after")
    def _label_iff_intent(self) -> Correction:
        if (self.kind == "intent") != bool(self.label):
            raise ValueError("a label is given for kind `intent`, and only for it")
        return self


def intent_title(intent: str) -> str:
    """How an intent is named to a user: ``card_arrival`` → ``card arrival``."""
    return intent.replace("_", " ").strip(" ?").lower()
