"""The queue contract: task names and payloads shared by the bots (producers) and
``learning/`` (the Celery worker). Pure data: importing this needs neither Celery nor torch.

Payloads are JSON-able dicts built from the pydantic contracts, so a worker validates them with
the same models (``Interaction.model_validate(payload["interaction"])``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from thumbloop.contracts import Correction, Interaction, Vote

RECORD_INTERACTION = "learning.record_interaction"
RECORD_VOTE = "learning.record_vote"
WITHDRAW_VOTE = "learning.withdraw_vote"
RECORD_CORRECTION = "learning.record_correction"
WITHDRAW_CORRECTION = "learning.withdraw_correction"
FORGET_USER = "learning.forget_user"
RETRAIN_IF_DUE = "learning.retrain_if_due"

DEFAULT_QUEUE = "thumbloop"
TRAINING_QUEUE = "training"  # its own queue, so GPU hosts can consume only training
ROUTES = {RETRAIN_IF_DUE: {"queue": TRAINING_QUEUE}}


def interaction_payload(item: Interaction) -> dict[str, Any]:
    return {"interaction": item.model_dump(mode="json")}


def vote_payload(vote: Vote) -> dict[str, Any]:
    return {"vote": vote.model_dump(mode="json")}


def correction_payload(correction: Correction) -> dict[str, Any]:
    return {"correction": correction.model_dump(mode="json")}


def withdraw_payload(
    interaction_id: str, rater: str, platform: str, at: datetime | None = None
) -> dict[str, Any]:
    """``at``: when the rater withdrew (default now); a vote (or, sent as
    ``learning.withdraw_correction``, a correction) made before it, even if the queue delivers
    it later, stays withdrawn."""
    when = at or datetime.now(UTC)
    return {
        "interaction_id": interaction_id,
        "rater": rater,
        "platform": platform,
        "at": when.isoformat(),
    }


def forget_payload(user: str, platform: str, at: datetime | None = None) -> dict[str, Any]:
    """``user`` is the HMAC of the platform user id, as everywhere else; ``at``: when the user
    asked (default now), so the tombstone covers exactly what they made before asking."""
    return {"user": user, "platform": platform, "at": (at or datetime.now(UTC)).isoformat()}
