"""SQLAlchemy 2 tables: interactions, votes, corrections, dropped tasks, forgotten users,
training runs and the review inbox's.

Votes carry no foreign key to interactions on purpose: a vote may arrive before the
interaction it rates (two queues, two workers) and is joined later by id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Integer,
    LargeBinary,
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
    # the user's message, the reply and the prompt are NULL once retention redacted them
    # (THUMBLOOP_RETENTION_DAYS); the labels and votes stay, retrains skip the row
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    intent: Mapped[str] = mapped_column(String(128))
    intent_confidence: Mapped[float] = mapped_column(Float)
    sentiment: Mapped[str] = mapped_column(String(16))
    response_id: Mapped[str] = mapped_column(String(256))
    reply_text: Mapped[str | None] = mapped_column(Text, nullable=True)
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


CORRECTION_KINDS = ("intent", "unhelpful", "other")
CORRECTION_WITHDRAWN = "withdrawn"


class CorrectionRow(Base):
    """What a rater said after a 👎 (``thumbloop.contracts.Correction``): one row per
    (interaction, rater). Like votes, a withdrawal stays as a tombstone (kind ``withdrawn``) so a
    correction made before it and delivered after it does not come back; readers count
    ``LIVE_CORRECTION`` rows. No foreign key: it may arrive before its interaction."""

    __tablename__ = "corrections"
    __table_args__ = (
        UniqueConstraint("interaction_id", "rater", name="uq_correction_rater"),
        CheckConstraint(
            "kind IN ('intent', 'unhelpful', 'other', 'withdrawn')", name="ck_correction_kind"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    interaction_id: Mapped[str] = mapped_column(String(36), index=True)
    rater: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    platform: Mapped[str] = mapped_column(String(32))
    corrected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


LIVE_CORRECTION = CorrectionRow.kind != CORRECTION_WITHDRAWN


MALFORMED, FAILED, FORGOTTEN = "malformed", "failed", "forgotten"  # DroppedTaskRow.kind


class DroppedTaskRow(Base):
    """A task the worker did not store. ``malformed``: a payload that never will be (kept to
    read). ``failed``: a dead letter, a task that ran out of retries (the database was down
    longer than the retry budget): ``thumbloop redrive`` and beat send it again, then blank its
    payload; ``fingerprint`` (task and payload hashed) makes a dead letter recorded twice one
    row, and ``attempts`` counts how often it failed for good. ``forgotten``: a task for a user
    who asked to be forgotten before it was sent (no payload kept)."""

    __tablename__ = "dropped_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    dropped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    kind: Mapped[str] = mapped_column(String(16), default=MALFORMED, server_default=MALFORMED)
    fingerprint: Mapped[str | None] = mapped_column(
        String(64), nullable=True, unique=True, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    redriven_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ForgottenUserRow(Base):
    """A /forget tombstone: interactions and votes of this user made before ``forgotten_at``
    that reach the worker later (a retry, a redelivery, a bot's outbox) are dropped."""

    __tablename__ = "forgotten_users"

    user_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    forgotten_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


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


# --- The review inbox (learning/review; migration 0006) ---

REVIEW_ACTIONS = ("confirm", "relabel", "out_of_scope", "ignore")


class ReviewItemRow(Base):
    """The review inbox's index: each interaction's near-duplicate group and what the inbox
    filters on, copied once so a page of groups is one scan of one table. The review app
    writes it as interactions arrive (the key is computed in Python); actions set
    ``reviewed``; ``gone`` marks a message blanked by retention. A forgotten user's rows are
    left out through ``forgotten_users`` at once, and deleted at the next sync."""

    __tablename__ = "review_items"
    # clustered by group on SQLite (the primary key is the table's order): the inbox reads whole
    # groups and scans the table in group order, so rows of one group sit together
    __table_args__ = ({"sqlite_with_rowid": False},)

    group_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    interaction_id: Mapped[str] = mapped_column(String(36), primary_key=True, unique=True)
    user_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    intent: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float)
    unsure: Mapped[bool] = mapped_column(Boolean)  # the reply asked to clarify
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    gone: Mapped[bool] = mapped_column(Boolean, default=False)


class ReviewGroupRow(Base):
    """Near-duplicate groups by meaning (``learning/review/similar.py``, run by the worker):
    each text key the inbox has seen, the group it was put in, and the interaction whose text
    stood for it. A group's leader (``text_key == group_key``) keeps its sentence embedding; a
    member does not. Rows whose interaction was deleted (a forgotten user) or blanked
    (retention) are dropped with their embedding at the next run."""

    __tablename__ = "review_groups"

    text_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_key: Mapped[str] = mapped_column(String(64), index=True)
    interaction_id: Mapped[str] = mapped_column(String(36), index=True)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float16
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ReviewActionRow(Base):
    """The log of reviewers' actions: one row per action on a group, never changed."""

    __tablename__ = "review_actions"
    __table_args__ = (
        CheckConstraint(
            "action IN ('confirm', 'relabel', 'out_of_scope', 'ignore')", name="ck_review_action"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reviewer: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    group_key: Mapped[str] = mapped_column(String(64))
    interaction_ids: Mapped[list[str]] = mapped_column(JSON)
    count: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)


class ReviewedInteractionRow(Base):
    """The latest review of each interaction (the log is ``review_actions``): what the inbox
    leaves out and what a retrain reads as gold labels (``label`` is None for ``ignore``)."""

    __tablename__ = "reviewed_interactions"

    interaction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    reviewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
