"""The inbox's index (``review_items``): each interaction's near-duplicate group and the fields
the inbox filters on, copied once so that a page of groups is one scan of one table (a join
with ``interactions`` on 100,000 rows costs seconds on SQLite; the scan, tens of ms).

The review app keeps it up to date (:func:`sync`, at start and every
``review_sync_interval_s``): new interactions are indexed (the group key is computed in Python,
:func:`learning.review.redact.group_key`), rows of deleted interactions (a forgotten user) are
dropped, and messages blanked by retention are marked ``gone``. Each step is one set operation
over indexes, so a sync with nothing new costs a few tens of ms on 100,000 interactions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, select, update

from learning.review.redact import group_key
from thumbloop.store.db import insert_for, session_scope
from thumbloop.store.schema import InteractionRow, ReviewItemRow

GONE = "gone"  # the group key of a message without text
CHUNK = 500  # ids per IN (...) and rows per INSERT: under SQLite's bound-variable limit
M, K = InteractionRow, ReviewItemRow


def _item(row: Any) -> dict[str, Any]:
    return {
        "interaction_id": row.interaction_id,
        "group_key": group_key(row.text) if row.text is not None else GONE,
        "user_hash": row.user_hash,
        "created_at": row.created_at,
        "intent": row.intent,
        "model_version": row.model_version,
        "platform": row.platform,
        "confidence": row.intent_confidence,
        "unsure": "clarify" in row.response_id,  # how clarifying replies are marked
        "reviewed": False,
        "gone": row.text is None,
    }


def index_new(engine: Engine) -> int:
    """Index the interactions not indexed yet; returns how many. Two inbox processes indexing
    the same rows at once is harmless (conflicts are skipped)."""
    with session_scope(engine) as s:
        new = list(
            s.scalars(
                select(M.interaction_id).where(M.interaction_id.not_in(select(K.interaction_id)))
            )
        )
        for start in range(0, len(new), CHUNK):
            rows = s.execute(
                select(
                    M.interaction_id,
                    M.text,
                    M.user_hash,
                    M.created_at,
                    M.intent,
                    M.model_version,
                    M.platform,
                    M.intent_confidence,
                    M.response_id,
                ).where(M.interaction_id.in_(new[start : start + CHUNK]))
            ).all()
            if rows:  # one statement, many rows: compiled once, not once per chunk size
                stmt = insert_for(s)(K).on_conflict_do_nothing(index_elements=["interaction_id"])
                s.execute(stmt, [_item(r) for r in rows])
    return len(new)


def purge_gone(engine: Engine) -> tuple[int, int]:
    """(deleted, blanked): drop index rows whose interaction was deleted (``thumbloop
    forget``), mark those whose text retention blanked."""
    with session_scope(engine) as s:
        deleted: Any = s.execute(
            delete(K)
            .where(K.interaction_id.not_in(select(M.interaction_id)))
            .execution_options(synchronize_session=False)
        )
        blanked: Any = s.execute(
            update(K)
            .where(
                K.gone.is_(False),
                K.interaction_id.in_(select(M.interaction_id).where(M.text.is_(None))),
            )
            .values(gone=True)
            .execution_options(synchronize_session=False)
        )
    return int(deleted.rowcount or 0), int(blanked.rowcount or 0)


def sync(engine: Engine) -> tuple[int, int, int]:
    """(indexed, deleted, blanked): what the inbox runs at start and every few seconds."""
    indexed = index_new(engine)
    deleted, blanked = purge_gone(engine)
    return indexed, deleted, blanked
