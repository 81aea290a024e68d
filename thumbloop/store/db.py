"""Engine, sessions, migrations and the few writes every part needs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, case, create_engine, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, sessionmaker

from thumbloop.contracts import Correction, Interaction, Vote
from thumbloop.store.schema import (
    CORRECTION_WITHDRAWN,
    LIVE,
    WITHDRAWN,
    CorrectionRow,
    InteractionRow,
    VoteRow,
)

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str) -> Engine:
    """An engine whose errors never quote the rows they were writing: an error is logged (a
    Celery retry, a failed task) and a row holds a user's message. ``hide_parameters`` keeps
    the bound values out of SQLAlchemy's messages; :func:`_hide_row_values` the database's own
    quotes of them."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
    event.listen(engine, "handle_error", _hide_row_values)
    return engine


# PostgreSQL's DETAIL ("Failing row contains (...)", "Key (...)=(...)") and CONTEXT lines quote
# the values written; its first line names the constraint, which is what an operator needs
_QUOTING_LINES = re.compile(r"^(DETAIL|CONTEXT): .*$", re.MULTILINE)


def _hide_row_values(ctx: ExceptionContext) -> None:
    orig = ctx.original_exception
    message = str(orig)
    hidden = _QUOTING_LINES.sub(r"\1:  (hidden: it can quote the values written)", message)
    if hidden == message:
        return
    orig.args = (hidden,)  # what a traceback prints for the driver's exception
    wrapped = ctx.sqlalchemy_exception
    if wrapped is not None:  # its message was built from the driver's before this hook ran
        wrapped.args = (f"({type(orig).__module__}.{type(orig).__name__}) {hidden}",)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    make_engine(url).dispose()  # creates the SQLite folder if needed
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    maker = sessionmaker(engine, expire_on_commit=False)
    with maker() as session, session.begin():
        yield session


def insert_for(session: Session):  # type: ignore[no-untyped-def]
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL and SQLite)."""
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert  # type: ignore[union-attr]


def _without_nul(text: str) -> str:
    """PostgreSQL refuses NUL in text and JSON strings; a chat message never means one, so it is
    dropped here rather than failing (and dead-lettering) the whole interaction."""
    return text.replace("\x00", "")


def upsert_interaction(session: Session, item: Interaction) -> None:
    """Idempotent: storing the same interaction twice leaves one row."""
    values = {
        "interaction_id": str(item.interaction_id),
        "platform": item.platform,
        "user_hash": item.user,
        "conversation_hash": item.conversation,
        "text": _without_nul(item.text),
        "intent": item.intent,
        "intent_confidence": item.intent_confidence,
        "sentiment": item.sentiment,
        "response_id": item.response_id,
        "reply_text": _without_nul(item.reply_text),
        "model_version": item.model_version,
        "message_ref": item.message_ref,
        "reply_strategy": item.reply_strategy,
        "generator": item.generator,
        "reply_prompt": (
            [{**m.model_dump(), "content": _without_nul(m.content)} for m in item.reply_prompt]
            if item.reply_prompt is not None
            else None
        ),
        # one zone for every stored time: SQLite compares them as text (retention's cutoff)
        "created_at": item.at.astimezone(UTC) if item.at.tzinfo else item.at.replace(tzinfo=UTC),
    }
    stmt = insert_for(session)(InteractionRow).values(**values)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["interaction_id"]))


def upsert_vote(session: Session, vote: Vote) -> bool:
    """One vote per (interaction, rater): the vote cast last (``Vote.at``) wins, whatever order
    the queue delivers them in (a retried or redelivered task can overtake a newer one), and a
    withdrawal counts as a cast (see :func:`withdraw_vote`).
    Returns False when a newer vote was already stored and this one changed nothing."""
    return _cast(session, str(vote.interaction_id), vote.rater, vote.value, vote.platform, vote.at)


def withdraw_vote(
    session: Session, interaction_id: str, rater: str, platform: str, at: datetime
) -> tuple[bool, int | None]:
    """Withdraw the rater's vote as of ``at``: a vote cast later stays, and one cast earlier
    but delivered later is refused as stale. Returns (applied, the live value it replaced)."""
    old = live_vote(session, interaction_id, rater)
    applied = _cast(session, interaction_id, rater, WITHDRAWN, platform, at)
    return applied, (old if applied else None)


def live_vote(session: Session, interaction_id: str, rater: str) -> int | None:
    """The rater's live vote, read under a per-(interaction, rater) lock held to the end of the
    transaction on PostgreSQL: two workers casting for the same rater at once would otherwise
    both read the same old value, and the incremental posterior update would count it wrong.
    (SQLite serialises writers by itself: the second one fails with "database is locked" and
    its task retries.)"""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"vote:{interaction_id}:{rater}"},
        )
    value = session.scalar(
        select(VoteRow.value).where(
            VoteRow.interaction_id == interaction_id, VoteRow.rater == rater, LIVE
        )
    )
    return int(value) if value is not None else None


def _utc(at: datetime) -> datetime:
    # one zone for every stored time: SQLite compares them as text
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def _cast(
    session: Session, interaction_id: str, rater: str, value: int, platform: str, at: datetime
) -> bool:
    at = _utc(at)
    stmt = insert_for(session)(VoteRow).values(
        interaction_id=interaction_id,
        rater=rater,
        value=value,
        platform=platform,
        voted_at=at,
        updated_at=datetime.now(UTC),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["interaction_id", "rater"],
        set_={
            "value": stmt.excluded.value,
            "voted_at": stmt.excluded.voted_at,
            # `updated_at` says when the vote last changed (what retrains count as new): the
            # same vote sent again (a redelivery, a bot's outbox after a restart) is not news
            "updated_at": case(
                (VoteRow.value != stmt.excluded.value, stmt.excluded.updated_at),
                else_=VoteRow.updated_at,
            ),
        },
        where=VoteRow.voted_at <= stmt.excluded.voted_at,
    )
    result: Any = session.execute(stmt)
    return bool(result.rowcount)


def votes_for(session: Session, interaction_id: str) -> list[VoteRow]:
    """The live votes on an interaction (withdrawals left out)."""
    return list(
        session.scalars(select(VoteRow).where(VoteRow.interaction_id == interaction_id, LIVE))
    )


def upsert_correction(session: Session, correction: Correction) -> bool:
    """One correction per (interaction, rater), the one made last (``Correction.at``) winning
    whatever order the queue delivers them in, as :func:`upsert_vote`. Returns False when a
    newer one (or a newer withdrawal) was already stored."""
    return _correct(
        session,
        str(correction.interaction_id),
        correction.rater,
        correction.kind,
        correction.label,
        correction.platform,
        correction.at,
    )


def withdraw_correction(
    session: Session, interaction_id: str, rater: str, platform: str, at: datetime
) -> bool:
    """Withdraw the rater's correction as of ``at`` (a tombstone row); False when a correction
    made after ``at`` is already stored."""
    return _correct(session, interaction_id, rater, CORRECTION_WITHDRAWN, None, platform, at)


def _correct(
    session: Session,
    interaction_id: str,
    rater: str,
    kind: str,
    label: str | None,
    platform: str,
    at: datetime,
) -> bool:
    stmt = insert_for(session)(CorrectionRow).values(
        interaction_id=interaction_id,
        rater=rater,
        kind=kind,
        label=label,
        platform=platform,
        corrected_at=_utc(at),
        updated_at=datetime.now(UTC),
    )
    changed = (CorrectionRow.kind != stmt.excluded.kind) | (
        func.coalesce(CorrectionRow.label, "") != func.coalesce(stmt.excluded.label, "")
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["interaction_id", "rater"],
        set_={
            "kind": stmt.excluded.kind,
            "label": stmt.excluded.label,
            "corrected_at": stmt.excluded.corrected_at,
            # the same correction sent again is not news to a retrain
            "updated_at": case((changed, stmt.excluded.updated_at), else_=CorrectionRow.updated_at),
        },
        where=CorrectionRow.corrected_at <= stmt.excluded.corrected_at,
    )
    result: Any = session.execute(stmt)
    return bool(result.rowcount)
