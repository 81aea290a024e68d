"""The learning side's reads and writes: votes and follow-up corrections joined with their
interactions, when the last retrains ran, dropped messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from learning.retrain.signals import CorrectionRecord
from learning.retrain.thumbs import VoteRecord
from thumbloop.store.schema import (
    LIVE,
    LIVE_CORRECTION,
    CorrectionRow,
    DroppedTaskRow,
    InteractionRow,
    TrainingRunRow,
    VoteRow,
)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def vote_records(session: Session) -> list[VoteRecord]:
    """Every vote whose interaction is known and still has its text (votes waiting for their
    interaction, and those on interactions redacted by retention, are left out)."""
    rows = session.execute(
        select(VoteRow, InteractionRow)
        .join(InteractionRow, InteractionRow.interaction_id == VoteRow.interaction_id)
        .where(LIVE, InteractionRow.text.is_not(None))
    )
    return [
        VoteRecord(
            interaction_id=i.interaction_id,
            text=i.text or "",  # never empty: redacted rows are filtered out above
            intent=i.intent,
            confidence=i.intent_confidence,
            rater=v.rater,
            value=v.value,
            at=_aware(v.updated_at),
            strategy=i.reply_strategy,
            reply_text=i.reply_text or "",
            prompt=i.reply_prompt,
            generator=i.generator,
        )
        for v, i in rows
    ]


def correction_records(session: Session) -> list[CorrectionRecord]:
    """Every live correction whose interaction is known and still has its text, as votes are
    read (withdrawn ones, those waiting for their interaction and redacted ones left out)."""
    rows = session.execute(
        select(CorrectionRow, InteractionRow)
        .join(InteractionRow, InteractionRow.interaction_id == CorrectionRow.interaction_id)
        .where(LIVE_CORRECTION, InteractionRow.text.is_not(None))
    )
    return [
        CorrectionRecord(
            interaction_id=i.interaction_id,
            text=i.text or "",
            intent=i.intent,
            confidence=i.intent_confidence,
            rater=c.rater,
            kind=c.kind,
            label=c.label,
            at=_aware(c.updated_at),
            strategy=i.reply_strategy,
        )
        for c, i in rows
    ]


def last_candidate_at(session: Session) -> datetime | None:
    t = session.scalar(
        select(func.max(TrainingRunRow.started_at)).where(TrainingRunRow.kind == "retrain")
    )
    return _aware(t) if t else None


def last_generator_training(session: Session) -> datetime | None:
    """Start of the latest retrain that trained a reply generator (its run logged KTO steps)
    and kept the result (registered as a candidate, or refused by the generator's own gate):
    votes on generated replies after it have not been learnt from yet."""
    rows = session.execute(
        select(TrainingRunRow.started_at, TrainingRunRow.metrics)
        .where(TrainingRunRow.kind == "retrain")
        .order_by(TrainingRunRow.started_at.desc())
    )
    for started, metrics in rows:
        m = metrics or {}
        if "generator_kto_steps" in m and not m.get("generator_discarded"):
            return _aware(started)
    return None


def new_votes_since(session: Session, since: datetime | None) -> tuple[int, datetime | None]:
    """(count, oldest time) of votes and corrections newer than ``since`` (all when None): a
    pick on a reply that asked to clarify may come without a vote."""
    count, oldest = 0, None
    for when, live in ((VoteRow.updated_at, LIVE), (CorrectionRow.updated_at, LIVE_CORRECTION)):
        q = select(func.count(), func.min(when)).where(live)
        if since is not None:
            q = q.where(when > since)
        n, first = session.execute(q).one()
        count += int(n or 0)
        if first is not None:
            first = _aware(first)
            oldest = first if oldest is None else min(oldest, first)
    return count, oldest


def record_drop(session: Session, task: str, reason: str, payload: Any) -> None:
    text = json.dumps(payload, default=str)[:4000]
    session.add(DroppedTaskRow(task=task, reason=reason[:2000], payload=text))


def dropped_count(session: Session, task: str | None = None) -> int:
    q = select(func.count(DroppedTaskRow.id))
    if task:
        q = q.where(DroppedTaskRow.task == task)
    return int(session.scalar(q) or 0)
