"""Reviewers' labels as gold intent examples: what the review inbox (``learning/review``)
stored in ``reviewed_interactions``.

A reviewer read the message and chose its intent (confirmed the prediction, relabelled it or
marked it out of scope), so the label is taken as true: a positive example that replaces the
thumbs on the same message, weighted as much as the most trusted vote example (at least 1, a
fully trusted rater's vote) and never capped like a rater. Ignored messages give no label; a
label the model does not know (a retired intent) is skipped. Examples carry the message's time,
so they fall into the held-back share for the gate as the votes of that time do.

The retrain's MLflow run logs the reviewed set it used (:func:`reviewed_set`): as two dataset
inputs (``reviewed_train``, ``reviewed_heldout``) and as ``reviewed_set.json`` (each labelled
message's id, predicted intent, label, action, reviewer and time, and whether the gate held it
back; never its text, which ``thumbloop forget`` could not erase from the registry)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from learning.retrain.thumbs import ThumbExample
from thumbloop.store.db import session_scope
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


@dataclass(frozen=True)
class ReviewedRecord:
    """One reviewed message a retrain used, as its run logs it (no text)."""

    interaction_id: str
    predicted: str
    label: str
    action: str  # confirm | relabel | out_of_scope
    reviewer: str
    reviewed_at: str  # ISO 8601, UTC
    heldout: bool


@dataclass(frozen=True)
class ReviewedSet:
    train: list[ReviewedRecord]
    held: list[ReviewedRecord]

    def inputs(self) -> list[tuple[list[Any], str]]:
        """The run's dataset inputs (an empty one is not logged)."""
        return [(self.train, "reviewed_train"), (self.held, "reviewed_heldout")]

    def artifact(self) -> dict[str, Any]:
        """``reviewed_set.json``: the counts and every record."""
        rows = [*self.train, *self.held]
        return {
            "reviewed_set.json": {
                "train": len(self.train),
                "heldout": len(self.held),
                "actions": dict(Counter(r.action for r in rows)),
                "labels": dict(Counter(r.label for r in rows)),
                "rows": [asdict(r) for r in rows],
            }
        }


def reviewed_set(
    engine: Engine, train: Sequence[ThumbExample], held: Sequence[ThumbExample]
) -> ReviewedSet:
    """The reviewed examples among a retrain's ``train`` and ``held`` examples, with their
    reviews (the labelled reviews are few: read whole, matched here, no long IN lists)."""
    r, i = ReviewedInteractionRow, InteractionRow
    with session_scope(engine) as s:
        reviews = {
            iid: (predicted, label, action, reviewer, _aware(at))
            for iid, predicted, label, action, reviewer, at in s.execute(
                select(r.interaction_id, i.intent, r.label, r.action, r.reviewer, r.reviewed_at)
                .join(i, i.interaction_id == r.interaction_id)
                .where(r.label.is_not(None))
            )
        }

    def records(examples: Sequence[ThumbExample], heldout: bool) -> list[ReviewedRecord]:
        out = []
        for e in examples:
            found = reviews.get(e.interaction_id)
            # a vote example on a reviewed message kept its place: the label was unknown
            if found is not None and found[1] == e.label:
                predicted, _, action, reviewer, at = found
                out.append(
                    ReviewedRecord(
                        e.interaction_id,
                        predicted,
                        e.label,
                        action,
                        reviewer,
                        at.isoformat(),
                        heldout,
                    )
                )
        return out

    return ReviewedSet(records(train, False), records(held, True))
