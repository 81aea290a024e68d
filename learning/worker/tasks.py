"""Celery tasks: record interactions, votes and corrections (idempotent), withdraw, forget,
retrain when due.

Payloads are the dicts from ``thumbloop.task_names``; a malformed one is logged, stored in
``dropped_tasks`` and acknowledged (never retried). Transient database and broker errors retry
with exponential backoff, ``THUMBLOOP_TASK_MAX_RETRIES`` times; a task still failing after that
(or failing on anything else) becomes a dead letter that a redrive sends again
(``learning/worker/dead_letters.py``). With ``acks_late`` a task whose worker dies is delivered
again. A task about a user who was forgotten after it was made is dropped without its payload.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject, TaskPredicate
from celery.utils.time import get_exponential_backoff_interval
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session

from learning.retrain.feedback_store import record_drop
from learning.worker.broker import broker_connection
from learning.worker.dead_letters import is_transient, publish, reason_of, record_failure
from learning.worker.maintenance import register_maintenance
from learning.worker.posterior_sync import PosteriorWriter, reconcile
from thumbloop.contracts import Correction, Interaction, Vote
from thumbloop.settings import Settings
from thumbloop.store.db import (
    live_vote,
    make_engine,
    session_scope,
    upsert_correction,
    upsert_interaction,
    upsert_vote,
    votes_for,
)
from thumbloop.store.db import withdraw_correction as store_unpick
from thumbloop.store.db import withdraw_vote as store_withdraw
from thumbloop.store.privacy import forget_user, forgotten_before
from thumbloop.store.schema import FORGOTTEN, DroppedTaskRow, InteractionRow
from thumbloop.task_names import (
    FORGET_USER,
    RECORD_CORRECTION,
    RECORD_INTERACTION,
    RECORD_VOTE,
    RETRAIN_IF_DUE,
    WITHDRAW_CORRECTION,
    WITHDRAW_VOTE,
)

log = logging.getLogger(__name__)

TASK = {
    "bind": True,
    # closures over this app's settings: never shared with other Celery apps in the process
    "shared": False,
    "acks_late": True,
}
BACKOFF_MAX_S = 60


def reply_of(session: Session, interaction_id: str) -> tuple[str, str] | None:
    """(intent, response id) of a stored interaction: the posterior a vote on it moves."""
    row = session.get(InteractionRow, interaction_id)
    return (row.intent, row.response_id) if row else None


def brief(exc: ValidationError) -> str:
    """What was wrong with a payload, without the values (they can be a user's message)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )


def withdrawal_of(payload: dict[str, Any]) -> tuple[dict[str, Any], str, str, str, datetime]:
    """(payload, interaction id, rater, platform, time) of a withdrawal; raises KeyError,
    ValueError or TypeError when malformed. Payloads sent before withdrawals carried a time
    have none: it is taken as of now, written into the payload so a retry or a dead letter
    keeps that time."""
    iid = str(uuid.UUID(str(payload["interaction_id"])))
    rater = str(payload["rater"])
    platform = str(payload.get("platform") or "unknown")
    if not payload.get("at"):
        payload = {**payload, "at": datetime.now(UTC).isoformat()}
    return payload, iid, rater, platform, datetime.fromisoformat(payload["at"])


def hold_interaction(session: Session, interaction_id: str, *, shared: bool) -> None:
    """Order an interaction's recording against the votes on it (PostgreSQL; SQLite serialises
    writers by itself): votes share the lock, the interaction's first store takes it alone, so
    a vote either sees the interaction stored or is among the early votes it joins, never both
    and never neither."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        session.execute(
            text(f"SELECT {lock}(hashtext(:key))"), {"key": f"interaction:{interaction_id}"}
        )


def _note_forgotten(session: Session, task: str) -> str:
    # counted, so an operator sees late tasks arrive; the payload is what must not be kept
    session.add(DroppedTaskRow(task=task, reason="user forgotten", payload="", kind=FORGOTTEN))
    return "forgotten"


def register_tasks(app: Celery, settings: Settings) -> None:
    engine = make_engine(settings.effective_database_url)
    posteriors = PosteriorWriter(settings.redis_url, settings.model_name)
    max_retries = settings.learning.task_max_retries

    def drop(task: str, reason: str, payload: Any) -> str:
        log.warning("dropping %s: %s", task, reason)
        with session_scope(engine) as s:
            record_drop(s, task, reason, payload)
        return "dropped"

    def dead_letter(task: str, payload: dict[str, Any], exc: Exception) -> str:
        reason = reason_of(exc)
        try:
            with session_scope(engine) as s:
                record_failure(s, task, payload, reason)
            kept = "dropped_tasks"
        except Exception:  # the database is what failed: the broker keeps it instead
            try:
                with broker_connection(settings) as conn:
                    publish(conn, task, payload, reason)
                kept = "the dead-letter queue"
            except Exception as again:
                # nowhere to keep it: back on the broker's queue rather than acknowledged
                log.error("%s: no dead letter could be kept (%s)", task, reason_of(again))
                raise Reject(reason, requeue=True) from None
        log.error("%s failed for good (%s); kept in %s for a redrive", task, reason, kept)
        return "dead-lettered"

    def durable(self: Task, task: str, payload: dict[str, Any], work: Callable[[], Any]) -> Any:
        try:
            return work()
        except TaskPredicate:
            raise
        except Exception as exc:
            if not is_transient(exc):  # retrying at once would fail the same way
                return dead_letter(task, payload, exc)
            tries = self.request.retries
            if tries < max_retries:
                countdown = get_exponential_backoff_interval(
                    factor=1, retries=tries, maximum=BACKOFF_MAX_S, full_jitter=True
                )
                raise self.retry(
                    kwargs=payload, exc=exc, countdown=countdown, max_retries=max_retries
                ) from None
            return dead_letter(task, payload, exc)

    def safe_posterior(intent: str, response_id: str, old: int | None, new: int | None) -> None:
        try:
            posteriors.apply(intent, response_id, old, new)
        except Exception as exc:  # the vote is stored; beat's reconcile restores the counts
            log.warning("posterior update failed (%s)", type(exc).__name__)

    def resync(intents: Collection[str]) -> None:
        if not intents or not posteriors.enabled:
            return
        try:
            with session_scope(engine) as s:
                reconcile(s, posteriors, intents)
        except Exception as exc:  # beat's next reconcile catches up
            log.warning("posterior reconcile failed (%s)", type(exc).__name__)

    # The posterior moves below happen inside the transaction, under the locks that order the
    # writes they mirror: applied after the commit, two workers' moves for one rater could land
    # in the other order (the clamp at zero then keeps a count the votes table does not have),
    # and two copies of one interaction could both join its early votes. A commit that fails
    # after the move leaves one count too many until beat's reconcile.
    def store_interaction(item: Interaction) -> str:
        iid = str(item.interaction_id)
        with session_scope(engine) as s:
            if forgotten_before(s, item.user, item.at):
                return _note_forgotten(s, RECORD_INTERACTION)
            hold_interaction(s, iid, shared=False)
            existed = s.get(InteractionRow, iid) is not None
            upsert_interaction(s, item)
            early = [] if existed else [v.value for v in votes_for(s, iid)]
            for value in early:  # votes that arrived first are joined now
                safe_posterior(item.intent, item.response_id, None, value)
        return "stored"

    def store_vote(vote: Vote) -> str:
        iid = str(vote.interaction_id)
        with session_scope(engine) as s:
            if forgotten_before(s, vote.rater, vote.at):
                return _note_forgotten(s, RECORD_VOTE)
            hold_interaction(s, iid, shared=True)
            old = live_vote(s, iid, vote.rater)
            if not upsert_vote(s, vote):
                return "stale"  # delivered after a newer vote by the same rater: nothing changes
            target = reply_of(s, iid)
            if target:
                safe_posterior(target[0], target[1], old, vote.value)
        return "stored"

    def store_withdrawal(iid: str, rater: str, platform: str, at: datetime) -> str:
        with session_scope(engine) as s:
            if forgotten_before(s, rater, at):
                return _note_forgotten(s, WITHDRAW_VOTE)
            hold_interaction(s, iid, shared=True)
            applied, old = store_withdraw(s, iid, rater, platform, at)
            if not applied:
                return "stale"  # the rater voted again after this withdrawal
            target = reply_of(s, iid) if old is not None else None
            if target:
                safe_posterior(target[0], target[1], old, None)
        return "withdrawn" if old is not None else "absent"

    def store_pick(correction: Correction) -> str:
        # corrections move no posterior: the 👎 that came with them already did
        with session_scope(engine) as s:
            if forgotten_before(s, correction.rater, correction.at):
                return _note_forgotten(s, RECORD_CORRECTION)
            return "stored" if upsert_correction(s, correction) else "stale"

    def store_unpick_at(iid: str, rater: str, platform: str, at: datetime) -> str:
        with session_scope(engine) as s:
            if forgotten_before(s, rater, at):
                return _note_forgotten(s, WITHDRAW_CORRECTION)
            return "withdrawn" if store_unpick(s, iid, rater, platform, at) else "stale"

    def erase(user: str, at: datetime) -> dict[str, int]:
        with session_scope(engine) as s:
            done = forget_user(s, user, at)
        resync(done.intents)  # the user's votes leave the posteriors serving samples from
        log.info(
            "forgot a user: %d interactions, %d votes, %d corrections, %d dropped tasks, "
            "%d prompts quoting them",
            done.interactions,
            done.votes,
            done.corrections,
            done.dropped,
            done.prompts,
        )
        return {
            "interactions": done.interactions,
            "votes": done.votes,
            "corrections": done.corrections,
            "dropped_tasks": done.dropped,
            "prompts": done.prompts,
        }

    @app.task(name=RECORD_INTERACTION, **TASK)
    def record_interaction(self: Task, **payload: Any) -> str:
        try:
            item = Interaction.model_validate(payload.get("interaction"))
        except ValidationError as exc:
            return drop(RECORD_INTERACTION, brief(exc), payload)
        return str(durable(self, RECORD_INTERACTION, payload, lambda: store_interaction(item)))

    @app.task(name=RECORD_VOTE, **TASK)
    def record_vote(self: Task, **payload: Any) -> str:
        try:
            vote = Vote.model_validate(payload.get("vote"))
        except ValidationError as exc:
            return drop(RECORD_VOTE, brief(exc), payload)
        return str(durable(self, RECORD_VOTE, payload, lambda: store_vote(vote)))

    @app.task(name=WITHDRAW_VOTE, **TASK)
    def withdraw_vote(self: Task, **payload: Any) -> str:
        try:
            payload, iid, rater, platform, at = withdrawal_of(payload)
        except (KeyError, ValueError, TypeError) as exc:
            return drop(WITHDRAW_VOTE, f"bad payload: {exc}", payload)
        work = lambda: store_withdrawal(iid, rater, platform, at)  # noqa: E731
        return str(durable(self, WITHDRAW_VOTE, payload, work))

    @app.task(name=RECORD_CORRECTION, **TASK)
    def record_correction(self: Task, **payload: Any) -> str:
        try:
            correction = Correction.model_validate(payload.get("correction"))
        except ValidationError as exc:
            return drop(RECORD_CORRECTION, brief(exc), payload)
        return str(durable(self, RECORD_CORRECTION, payload, lambda: store_pick(correction)))

    @app.task(name=WITHDRAW_CORRECTION, **TASK)
    def withdraw_correction(self: Task, **payload: Any) -> str:
        try:
            payload, iid, rater, platform, at = withdrawal_of(payload)
        except (KeyError, ValueError, TypeError) as exc:
            return drop(WITHDRAW_CORRECTION, f"bad payload: {exc}", payload)
        work = lambda: store_unpick_at(iid, rater, platform, at)  # noqa: E731
        return str(durable(self, WITHDRAW_CORRECTION, payload, work))

    @app.task(name=FORGET_USER, **TASK)
    def forget(self: Task, **payload: Any) -> dict[str, int] | str:
        user = payload.get("user")
        if not isinstance(user, str) or not user:
            return drop(FORGET_USER, "missing user", payload)
        try:
            # the tombstone's time: when the user asked, if the producer says; else when this
            # worker first saw it, written into the payload so a retry or redrive keeps it
            if not payload.get("at"):
                payload = {**payload, "at": datetime.now(UTC).isoformat()}
            at = datetime.fromisoformat(str(payload["at"]))
        except ValueError as exc:
            return drop(FORGET_USER, f"bad time: {exc}", payload)
        result: dict[str, int] | str = durable(self, FORGET_USER, payload, lambda: erase(user, at))
        return result

    @app.task(name=RETRAIN_IF_DUE, bind=True, acks_late=True, shared=False)
    def retrain_if_due(self: Task, force: bool = False) -> dict[str, Any]:
        # torch loads only where a retrain runs: a worker that records votes stays light
        from learning.retrain.run import retrain_if_due as run

        return run(settings, engine, force=force)

    register_maintenance(app, settings, engine, posteriors)
