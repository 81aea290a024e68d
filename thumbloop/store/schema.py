"""SQLAlchemy 2 tables: interactions, votes, training runs.

Votes carry no foreign key to interactions on purpose: a vote may arrive before the
interaction it rates (two queues, two workers) and is joined later by id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class InteractionRow(Base):
    __tablename__ = "interactions"

    interaction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    user_hash: Mapped[str] = mapped_column(String(128), index=True)
    conversation_hash: Mapped[str] = mapped_column(String(128), index=True)
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str] = mapped_column(String(128))
    intent_confidence: Mapped[float] = mapped_column(Float)
    sentiment: Mapped[str] = mapped_column(String(16))
    response_id: Mapped[str] = mapped_column(String(256))
    reply_text: Mapped[str] = mapped_column(Text)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    message_ref: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    # how the reply was made; the prompt only for generated replies (votes on them train it)
    reply_strategy: Mapped[str] = mapped_column(String(64), default="template", index=True)
    generator: Mapped[str | None] = mapped_column(String(256), nullable=True)
    reply_prompt: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class VoteRow(Base):
    """One row per (interaction, rater): +1, -1, or 0 for a withdrawn vote. The withdrawal is
    kept as a row (a tombstone with its time) so a vote cast before it and delivered after it
    by the queue is recognised as stale instead of coming back. Readers count ``LIVE`` rows."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("interaction_id", "rater", name="uq_vote_rater"),
        CheckConstraint("value IN (-1, 0, 1)", name="ck_vote_value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    interaction_id: Mapped[str] = mapped_column(String(36), index=True)
    rater: Mapped[str] = mapped_column(String(128), index=True)
    value: Mapped[int] = mapped_column(SmallInteger)
    platform: Mapped[str] = mapped_column(String(32))
    voted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


WITHDRAWN = 0
LIVE = VoteRow.value != WITHDRAWN  # the filter every reader of votes applies


class DroppedTaskRow(Base):
    __tablename__ = "dropped_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    dropped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class TrainingRunRow(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    n_votes: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
