"""Celery tasks: record interactions and votes (idempotent), withdraw, forget, retrain when due.

Payloads are the dicts from ``thumbloop.task_names``; a malformed one is logged, stored in
``dropped_tasks`` and acknowledged (never retried). Transient database errors retry with
exponential backoff; with ``acks_late`` a task whose worker dies is delivered again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from learning.retrain.feedback_store import record_drop
from learning.worker.posterior_sync import PosteriorWriter
from thumbloop.contracts import Interaction, Vote
from thumbloop.settings import Settings
from thumbloop.store.db import (
    forget_user,
    live_vote,
    make_engine,
    session_scope,
    upsert_interaction,
    upsert_vote,
    votes_for,
)
from thumbloop.store.db import withdraw_vote as store_withdraw
from thumbloop.store.schema import InteractionRow
from thumbloop.task_names import (
    FORGET_USER,
    RECORD_INTERACTION,
    RECORD_VOTE,
    RETRAIN_IF_DUE,
    WITHDRAW_VOTE,
)

log = logging.getLogger(__name__)

RETRY = {
    "bind": True,
    # closures over this app's settings: never shared with other Celery apps in the process
    "shared": False,
    "acks_late": True,
    "autoretry_for": (OperationalError, ConnectionError),
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 10,
}


def reply_of(session: Session, interaction_id: str) -> tuple[str, str] | None:
    """(intent, response id) of a stored interaction: the posterior a vote on it moves."""
    row = session.get(InteractionRow, interaction_id)
    return (row.intent, row.response_id) if row else None


def register_tasks(app: Celery, settings: Settings) -> None:
    engine = make_engine(settings.effective_database_url)
    posteriors = PosteriorWriter(settings.redis_url, settings.model_name)

    def drop(task: str, reason: str, payload: Any) -> str:
        log.warning("dropping %s: %s", task, reason)
        with session_scope(engine) as s:
            record_drop(s, task, reason, payload)
        return "dropped"

    def safe_posterior(intent: str, response_id: str, old: int | None, new: int | None) -> None:
        try:
            posteriors.apply(intent, response_id, old, new)
        except Exception as exc:  # the vote is stored; posteriors catch up on the next vote
            log.warning("posterior update failed (%s)", type(exc).__name__)

    @app.task(name=RECORD_INTERACTION, **RETRY)
    def record_interaction(self: Task, **payload: Any) -> str:
        try:
            item = Interaction.model_validate(payload.get("interaction"))
        except ValidationError as exc:
            return drop(RECORD_INTERACTION, str(exc), payload)
        iid = str(item.interaction_id)
        with session_scope(engine) as s:
            existed = s.get(InteractionRow, iid) is not None
            upsert_interaction(s, item)
            early = [] if existed else [v.value for v in votes_for(s, iid)]
        for value in early:  # votes that arrived first are joined now
            safe_posterior(item.intent, item.response_id, None, value)
        return "stored"

    @app.task(name=RECORD_VOTE, **RETRY)
    def record_vote(self: Task, **payload: Any) -> str:
        try:
            vote = Vote.model_validate(payload.get("vote"))
        except ValidationError as exc:
            return drop(RECORD_VOTE, str(exc), payload)
        iid = str(vote.interaction_id)
        with session_scope(engine) as s:
            old = live_vote(s, iid, vote.rater)
            if not upsert_vote(s, vote):
                return "stale"  # delivered after a newer vote by the same rater: nothing changes
            target = reply_of(s, iid)
        if target:
            safe_posterior(target[0], target[1], old, vote.value)
        return "stored"

    @app.task(name=WITHDRAW_VOTE, **RETRY)
    def withdraw_vote(self: Task, **payload: Any) -> str:
        try:
            iid = str(uuid.UUID(str(payload["interaction_id"])))
            rater = str(payload["rater"])
            platform = str(payload.get("platform") or "unknown")
            # payloads sent before withdrawals carried a time have none: take it as of now
            at = datetime.fromisoformat(payload["at"]) if payload.get("at") else datetime.now(UTC)
        except (KeyError, ValueError, TypeError) as exc:
            return drop(WITHDRAW_VOTE, f"bad payload: {exc}", payload)
        with session_scope(engine) as s:
            applied, old = store_withdraw(s, iid, rater, platform, at)
            if not applied:
                return "stale"  # the rater voted again after this withdrawal
            target = reply_of(s, iid) if old is not None else None
        if target:
            safe_posterior(target[0], target[1], old, None)
        return "withdrawn" if old is not None else "absent"

    @app.task(name=FORGET_USER, **RETRY)
    def forget(self: Task, **payload: Any) -> dict[str, int] | str:
        user = payload.get("user")
        if not isinstance(user, str) or not user:
            return drop(FORGET_USER, "missing user", payload)
        with session_scope(engine) as s:
            n_inter, n_votes = forget_user(s, user)
        log.info("forgot a user: %d interactions, %d votes", n_inter, n_votes)
        return {"interactions": n_inter, "votes": n_votes}

    @app.task(name=RETRAIN_IF_DUE, bind=True, acks_late=True, shared=False)
    def retrain_if_due(self: Task, force: bool = False) -> dict[str, Any]:
        # torch loads only where a retrain runs: a worker that records votes stays light
        from learning.retrain.run import retrain_if_due as run

        return run(settings, engine, force=force)
