"""Interactions, votes and users' corrections for the review tests, stored the way the worker
stores them (``upsert_interaction`` / ``upsert_vote`` / ``upsert_correction`` with the
contracts), user ids hashed as the bots do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from thumbloop.contracts import Correction, Interaction, Vote
from thumbloop.identity import hash_id
from thumbloop.store.db import (
    make_engine,
    session_scope,
    upgrade,
    upsert_correction,
    upsert_interaction,
    upsert_vote,
    withdraw_correction,
)

SECRET = "review-test-secret"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def user(raw: str | int, platform: str = "telegram") -> str:
    return hash_id(SECRET, platform, raw)


@dataclass
class Msg:
    text: str
    intent: str = "card_arrival"
    confidence: float = 0.9
    votes: list[int] = field(default_factory=list)  # one rater each
    platform: str = "telegram"
    model: str = "thumbloop/1"
    raw_user: str | int = 1
    response_id: str = "card_arrival-1"
    reply: str = "Your card is on its way."
    minutes: int = 0  # after T0
    sentiment: str = "neutral"
    # users' follow-ups, one rater each (the k-th voter): (kind, label); kind "withdrawn"
    # withdraws that rater's correction made just before
    corrections: list[tuple[str, str | None]] = field(default_factory=list)


def store(engine: Engine, messages: list[Msg]) -> list[str]:
    """Store the messages and their votes; returns the interaction ids in order."""
    ids: list[str] = []
    with session_scope(engine) as s:
        for k, m in enumerate(messages):
            iid = uuid.uuid4()
            at = T0 + timedelta(minutes=m.minutes)
            upsert_interaction(
                s,
                Interaction(
                    interaction_id=iid,
                    platform=m.platform,  # type: ignore[arg-type]
                    user=user(m.raw_user, m.platform),
                    conversation=user(f"chat-{m.raw_user}", m.platform),
                    text=m.text,
                    intent=m.intent,
                    intent_confidence=m.confidence,
                    sentiment=m.sentiment,  # type: ignore[arg-type]
                    response_id=m.response_id,
                    reply_text=m.reply,
                    model_version=m.model,
                    at=at,
                ),
            )
            for r, value in enumerate(m.votes):
                upsert_vote(
                    s,
                    Vote(
                        interaction_id=iid,
                        rater=user(f"rater-{k}-{r}", m.platform),
                        value=value,
                        platform=m.platform,  # type: ignore[arg-type]
                        at=at + timedelta(seconds=5),
                    ),
                )
            for r, (kind, label) in enumerate(m.corrections):
                rater, when = user(f"rater-{k}-{r}", m.platform), at + timedelta(seconds=10)
                if kind == "withdrawn":
                    rater = user(f"rater-{k}-{r - 1}", m.platform)
                    withdraw_correction(s, str(iid), rater, m.platform, when)
                    continue
                upsert_correction(
                    s,
                    Correction(
                        interaction_id=iid,
                        rater=rater,
                        kind=kind,  # type: ignore[arg-type]
                        label=label,
                        platform=m.platform,  # type: ignore[arg-type]
                        at=when - timedelta(seconds=1),
                    ),
                )
            ids.append(str(iid))
    return ids


def fresh_db(folder: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{folder / 'thumbloop.db'}"
    upgrade(url)
    return url, make_engine(url)


def complaints(n: int = 40) -> list[Msg]:
    """One complaint sent by many users, with different card numbers and punctuation: one
    group, downvoted, predicted as the wrong intent."""
    return [
        Msg(
            f"My card {4000 + k} was charged twice{'!' if k % 2 else ''}",
            intent="card_arrival",
            confidence=0.62,
            votes=[-1],
            raw_user=k,
            minutes=k,
            reply="Your card is on its way: it usually takes 3-5 working days.",
        )
        for k in range(n)
    ]
