"""Erasure: ``/forget`` (every row that holds a user's words, and a tombstone against tasks that
arrive after it) and retention (old messages redacted; their labels and votes stay)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, delete, null, or_, select, text, update
from sqlalchemy.orm import Session

from thumbloop.store.db import insert_for
from thumbloop.store.schema import (
    LIVE,
    CorrectionRow,
    DroppedTaskRow,
    ForgottenUserRow,
    InteractionRow,
    ReviewGroupRow,
    VoteRow,
)


def aware(t: datetime) -> datetime:
    """UTC, whatever zone ``t`` came in; a naive time is taken as UTC (SQLite returns those)."""
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Forgotten:
    interactions: int
    votes: int  # live votes (withdrawals are removed too, not counted)
    corrections: int  # the user's corrections and those of the user's messages
    dropped: int  # dropped_tasks rows whose payload named the user
    prompts: int  # other users' generator prompts that quoted the user's messages
    intents: frozenset[str]  # intents whose reply posteriors this changed


def guard_user(session: Session, user_hash: str, *, exclusive: bool = False) -> None:
    """PostgreSQL: a forget (exclusive) waits for the user's recording tasks under way (shared)
    and they for it, to the end of the transaction; without it a task that checked for a
    tombstone just before a forget committed would store its row just after the forget deleted
    the others. (SQLite serialises writers by itself: the loser's task fails and retries.)"""
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(text(f"SELECT {lock}(hashtext(:key))"), {"key": f"user:{user_hash}"})


def forgotten_before(session: Session, user_hash: str, at: datetime) -> bool:
    """True when the user asked to be forgotten after ``at``: a task made before the forget
    that reaches the worker after it (a retry, a redelivery, a redriven dead letter)."""
    guard_user(session, user_hash)
    when = session.scalar(
        select(ForgottenUserRow.forgotten_at).where(ForgottenUserRow.user_hash == user_hash)
    )
    return when is not None and aware(at) < aware(when)


def forget_user(session: Session, user_hash: str, at: datetime | None = None) -> Forgotten:
    """Delete the user's interactions, votes and corrections (withdrawals too), the corrections
    of their messages, the dropped tasks that name them and other users' generator prompts that
    quote their messages (history turns of a group chat), and record a tombstone as of ``at``
    (default now)."""
    guard_user(session, user_hash, exclusive=True)
    when = aware(at or datetime.now(UTC))
    stmt = insert_for(session)(ForgottenUserRow).values(user_hash=user_hash, forgotten_at=when)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_hash"],
            set_={  # a second forget never moves the tombstone back in time
                "forgotten_at": case(
                    (
                        ForgottenUserRow.forgotten_at < stmt.excluded.forgotten_at,
                        stmt.excluded.forgotten_at,
                    ),
                    else_=ForgottenUserRow.forgotten_at,
                )
            },
        )
    )
    mine = session.execute(
        select(InteractionRow.conversation_hash, InteractionRow.text, InteractionRow.intent).where(
            InteractionRow.user_hash == user_hash
        )
    ).all()
    voted_on = session.scalars(
        select(InteractionRow.intent)
        .join(VoteRow, VoteRow.interaction_id == InteractionRow.interaction_id)
        .where(VoteRow.rater == user_hash, LIVE)
    ).all()
    votes: Any = session.execute(delete(VoteRow).where(VoteRow.rater == user_hash, LIVE))
    session.execute(delete(VoteRow).where(VoteRow.rater == user_hash))
    # the user's picks, and every correction of the user's messages (a pick quotes nothing, but
    # labels a message that is gone)
    mine_ids = select(InteractionRow.interaction_id).where(InteractionRow.user_hash == user_hash)
    corrections: Any = session.execute(
        delete(CorrectionRow).where(
            or_(CorrectionRow.rater == user_hash, CorrectionRow.interaction_id.in_(mine_ids))
        )
    )
    # the inbox's groups their messages stood for, with the sentence embedding made from them
    session.execute(delete(ReviewGroupRow).where(ReviewGroupRow.interaction_id.in_(mine_ids)))
    inter: Any = session.execute(
        delete(InteractionRow).where(InteractionRow.user_hash == user_hash)
    )
    prompts = _erase_quotes(session, {c for c, _, _ in mine}, [t for _, t, _ in mine])
    # payloads are JSON with the user's hash in them (a malformed task kept to read, a dead
    # letter waiting to be redriven): the hash is hex, no LIKE wildcard in it
    dropped: Any = session.execute(
        delete(DroppedTaskRow).where(DroppedTaskRow.payload.contains(user_hash))
    )
    return Forgotten(
        interactions=int(inter.rowcount or 0),
        votes=int(votes.rowcount or 0),
        corrections=int(corrections.rowcount or 0),
        dropped=int(dropped.rowcount or 0),
        prompts=prompts,
        intents=frozenset({i for _, _, i in mine} | set(voted_on)),
    )


def _needle(message: str) -> str:
    # a prompt holds an earlier turn whitespace-collapsed and cut at 500 characters
    # (serving/replies/prompt.py): its first 400 characters are in there whatever the cut
    return " ".join(message.split())[:400]


def _erase_quotes(session: Session, conversations: set[str], texts: Iterable[str | None]) -> int:
    """Drop the prompts (set NULL) of interactions in the user's conversations that carry one of
    the user's messages as a user turn. A short message can match another one's text by
    chance: that prompt goes too (erring toward erasure; it costs one KTO example)."""
    needles = {n for t in texts if t and (n := _needle(t))}
    if not needles or not conversations:
        return 0
    rows = session.execute(
        select(InteractionRow.interaction_id, InteractionRow.reply_prompt).where(
            InteractionRow.conversation_hash.in_(conversations),
            InteractionRow.reply_prompt.is_not(None),
        )
    ).all()
    hits = [
        iid
        for iid, prompt in rows
        if prompt
        and any(
            m.get("role") == "user" and any(n in str(m.get("content", "")) for n in needles)
            for m in prompt
        )
    ]
    if hits:
        session.execute(
            update(InteractionRow)
            .where(InteractionRow.interaction_id.in_(hits))
            .values(reply_prompt=null())
        )
    return len(hits)


def redact_older_than(session: Session, cutoff: datetime) -> tuple[int, int]:
    """Retention: NULL the message, reply and prompt of interactions made before ``cutoff``
    (intent, sentiment, response and votes stay, so counts and posteriors do not move) and
    delete dropped tasks recorded before it (their payloads hold messages). Returns (interactions
    redacted, dropped tasks deleted)."""
    cutoff = aware(cutoff)
    redacted: Any = session.execute(
        update(InteractionRow)
        .where(
            InteractionRow.created_at < cutoff,
            or_(InteractionRow.text.is_not(None), InteractionRow.reply_text.is_not(None)),
        )
        .values(text=None, reply_text=None, reply_prompt=null())
    )
    dropped: Any = session.execute(delete(DroppedTaskRow).where(DroppedTaskRow.dropped_at < cutoff))
    return int(redacted.rowcount or 0), int(dropped.rowcount or 0)
