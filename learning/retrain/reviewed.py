"""Reviewers' labels as gold intent examples: what the review inbox (``learning/review``)
stored in ``reviewed_interactions``.

A reviewer read the message and chose its intent (confirmed the prediction, relabelled it or
marked it out of scope), so the label is taken as true: a positive example that replaces the
thumbs on the same message, weighted as much as the most trusted vote example (at least 1, a
fully trusted rater's vote) and never capped like a rater. Ignored messages give no label; a
label the model does not know (a retired intent) is skipped. Examples carry the message's time,
so they fall into the held-back share for the gate as the votes of that time do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from learning.retrain.thumbs import ThumbExample
from thumbloop.store.schema import InteractionRow, ReviewedInteractionRow


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def reviewed_examples(session: Session, intents: Sequence[str]) -> list[ThumbExample]:
    """The labelled reviews whose message is still there (not forgotten, not blanked by
    retention), as positive examples of weight 1 (:func:`with_reviewed` sets the weight)."""
    known = set(intents)
    r, i = ReviewedInteractionRow, InteractionRow
    rows = session.execute(
        select(r.interaction_id, r.label, i.text, i.created_at)
        .join(i, i.interaction_id == r.interaction_id)
        .where(r.label.is_not(None), i.text.is_not(None))
        .order_by(r.interaction_id)
    )
    return [
        ThumbExample(iid, text, label, 1, 1.0, _aware(at))
        for iid, label, text, at in rows
        if label in known and text
    ]


def with_reviewed(
    examples: Sequence[ThumbExample], reviewed: Sequence[ThumbExample]
) -> list[ThumbExample]:
    """The vote examples, those on reviewed messages replaced by the reviewers' labels, each
    weighted as the most trusted vote example."""
    top = max([1.0, *(e.weight for e in examples)])
    ids = {e.interaction_id for e in reviewed}
    kept = [e for e in examples if e.interaction_id not in ids]
    return kept + [replace(e, weight=top) for e in reviewed]


def reviewed_stats(
    reviewed: Sequence[ThumbExample],
    train: Sequence[ThumbExample],
    held: Sequence[ThumbExample],
) -> dict[str, float]:
    """The run's metrics: reviewed examples trained on, and held back for the gate."""
    ids = {e.interaction_id for e in reviewed}
    return {
        "reviewed_examples": float(sum(e.interaction_id in ids for e in train)),
        "reviewed_examples_heldout": float(sum(e.interaction_id in ids for e in held)),
    }
