"""Reviewers' actions on a group: label it (confirm the predicted intent or relabel it), mark it
out of scope, or ignore it. One action covers every message of the group the reviewer saw (the
group under the same filters, not yet reviewed); it is logged in ``review_actions`` with the
reviewer and the time, and each message's latest review is kept in ``reviewed_interactions``,
which the next retrain reads as gold labels (``learning/retrain/reviewed.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, select, update

from learning.review.filters import Filters, conditions
from thumbloop.store.db import insert_for, session_scope
from thumbloop.store.schema import (
    ReviewActionRow,
    ReviewedInteractionRow,
    ReviewItemRow,
)

Choice = Literal["label", "out_of_scope", "ignore"]  # what a reviewer's form can ask for
CHUNK = 1_000


class ActionError(ValueError):
    """An action that cannot apply (an unknown intent, an unknown action)."""


@dataclass(frozen=True)
class Applied:
    action_id: int
    action: str  # as logged: confirm | relabel | out_of_scope | ignore
    label: str | None
    count: int  # messages it covered; 0: nothing was left to review in the group


def resolve(
    choice: str, label: str, intents: Sequence[str], out_of_scope: str | None
) -> str | None:
    """The label an action stores (None: ignore); refuses what the domain does not know."""
    if choice == "ignore":
        return None
    if choice == "out_of_scope":
        if not out_of_scope or out_of_scope not in intents:
            raise ActionError("this domain has no out-of-scope intent")
        return out_of_scope
    if choice != "label":
        raise ActionError(f"unknown action {choice!r}")
    label = label.strip()
    if label not in intents:
        raise ActionError(f"unknown intent {label!r}: nothing changed")
    return label


def _kind(label: str | None, predicted: str, out_of_scope: str | None) -> str:
    if label is None:
        return "ignore"
    if label == out_of_scope:
        return "out_of_scope"
    return "confirm" if label == predicted else "relabel"


def apply_action(
    engine: Engine,
    reviewer: str,
    key: str,
    f: Filters,
    threshold: float,
    label: str | None,
    out_of_scope: str | None,
) -> Applied:
    """Record ``label`` (from :func:`resolve`) for every message of group ``key`` under ``f``,
    in one transaction: the log row and each message's review, or nothing."""
    now = datetime.now(UTC)
    K = ReviewItemRow
    with session_scope(engine) as s:
        members = s.execute(
            select(K.interaction_id, K.intent)
            .where(*conditions(f, threshold), K.group_key == key)
            .order_by(K.interaction_id)
            .with_for_update()  # PostgreSQL: two reviewers acting on one group take turns
        ).all()
        if not members:
            return Applied(0, "ignore" if label is None else "relabel", label, 0)
        kinds = {iid: _kind(label, intent, out_of_scope) for iid, intent in members}
        distinct_kinds = set(kinds.values())
        logged = distinct_kinds.pop() if len(distinct_kinds) == 1 else "relabel"
        row = ReviewActionRow(
            reviewer=reviewer,
            action=logged,
            label=label,
            group_key=key,
            interaction_ids=[iid for iid, _ in members],
            count=len(members),
            at=now,
        )
        s.add(row)
        s.flush()  # the log row's id, which each review points to
        values = [
            {
                "interaction_id": iid,
                "action_id": row.id,
                "action": kind,
                "label": label,
                "reviewer": reviewer,
                "reviewed_at": now,
            }
            for iid, kind in kinds.items()
        ]
        for start in range(0, len(values), CHUNK):
            chunk = [v["interaction_id"] for v in values[start : start + CHUNK]]
            s.execute(
                update(K)
                .where(K.interaction_id.in_(chunk))
                .values(reviewed=True)
                .execution_options(synchronize_session=False)
            )
            stmt = insert_for(s)(ReviewedInteractionRow).values(values[start : start + CHUNK])
            s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["interaction_id"],
                    set_={
                        c: stmt.excluded[c]
                        for c in ("action_id", "action", "label", "reviewer", "reviewed_at")
                    },
                )
            )
        return Applied(row.id, logged, label, len(members))


def recent_labels(engine: Engine, reviewer: str, limit: int = 5) -> list[str]:
    """The labels this reviewer used last, newest first: the likeliest next picks."""
    seen: list[str] = []
    with session_scope(engine) as s:
        for label in s.scalars(
            select(ReviewActionRow.label)
            .where(ReviewActionRow.reviewer == reviewer, ReviewActionRow.label.is_not(None))
            .order_by(ReviewActionRow.id.desc())
            .limit(50)
        ):
            if label is not None and label not in seen:
                seen.append(label)
            if len(seen) == limit:
                break
    return seen
