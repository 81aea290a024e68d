"""Retraining from thumbs: when due, fine-tune the champion on weighted votes plus a replay of
the domain's seed data, gate the candidate against the champion, register it in MLflow.

Phases: collect votes -> evaluate champion -> cache + fine-tune -> calibrate -> evaluate
candidate -> gate -> the reply generator's part -> save + register (+ `challenger`, + `champion`
only with auto-promote). The classifier's part is ``learning.retrain.classifier``, the
generator's ``learning.generator.step``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from learning.generator.step import retrain_generator
from learning.registry.client import alias_version, configure
from learning.registry.promotion import promote
from learning.registry.training_runs import finish_run, start_run
from learning.retrain.candidate import Candidate, Champion, Thumbs
from learning.retrain.classifier import calibrate, evaluate, intent_examples, train_candidate
from learning.retrain.feedback_store import (
    correction_records,
    last_candidate_at,
    last_generator_training,
    new_votes_since,
    vote_records,
)
from learning.retrain.gate import confirmed_flips, decide, paired_votes
from learning.retrain.lock import retrain_lock
from learning.retrain.outcome import RetrainOutcome
from learning.retrain.report import register_candidate
from learning.retrain.reviewed import reviewed_examples, reviewed_stats, with_reviewed
from learning.retrain.signals import signal_stats
from learning.retrain.thumbs import reply_judgements, split_recent
from learning.seed.budget import StepBudget
from learning.seed.config import TrainConfig
from serving.model_source import resolve
from thumbloop.domain import load_domain
from thumbloop.model.bundle import load_bundle
from thumbloop.model.device import resolve_device
from thumbloop.settings import Settings
from thumbloop.store.db import session_scope

log = logging.getLogger(__name__)

RETRAIN_CONFIG = TrainConfig(
    layers_to_tune=2,  # a retrain nudges the champion; the seed tuned the whole encoder
    epochs=2,
    intent_repeats=1,
    refit_steps=0,
    lr_encoder=1e-4,
    lr_heads=1e-3,
    warmup_ratio=0.1,
    max_sentiment_examples=4000,
    time_budget_s=270,  # the target is 5 minutes for 10,000 votes on 2 CPU cores
    tail_reserve_s=60,  # calibrate, golden + held-out evaluation, registration
)
HOLDOUT = 0.2


def retrain_if_due(
    settings: Settings, engine: Engine, *, force: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Retrain when enough votes are new or the oldest new one waited long enough, unless
    another retrain holds the lock; the JSON the Celery task returns and ``thumbloop retrain``
    prints."""
    with session_scope(engine) as s:
        count, oldest = new_votes_since(s, last_candidate_at(s))
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    due = (
        force
        or count >= settings.learning.retrain_min_votes
        or (count > 0 and age > settings.learning.retrain_max_age_s)
    )
    if not due:
        return {"due": False, "new_votes": count}
    with retrain_lock(settings) as held:
        if not held:
            return {"due": True, "skipped": "another retrain is running"}
        return run_retrain(settings, engine, progress=progress).to_dict() | {"new_votes": count}


def run_retrain(settings: Settings, engine: Engine, *, progress: bool = False) -> RetrainOutcome:
    """Train, gate and register one candidate from the champion and the votes on record, now:
    no due check and no lock (``retrain_if_due`` holds them), so callers that own the timing,
    the simulator and the benchmark, call this."""
    start = time.perf_counter()
    budget = StepBudget.from_now(RETRAIN_CONFIG.time_budget_s, RETRAIN_CONFIG.tail_reserve_s)
    client = configure(settings)
    current = alias_version(client, settings.model_name, "champion")
    if current is None:
        return RetrainOutcome(skipped="no champion to start from")
    base_version = str(current.version)
    domain = load_domain(settings.learning.domain_dir)
    device = resolve_device(settings.compute.device, settings.compute.cpu_threads)
    resolved = resolve(
        f"models:/{settings.model_name}/{base_version}",
        settings.effective_tracking_uri,
        settings.home / "models",
    )
    base = load_bundle(resolved.bundle_dir, device)
    if list(domain.intents) != base.intents:
        raise ValueError(f"domain {domain.root} does not match the champion's intents")
    with session_scope(engine) as s:
        votes = vote_records(s)
        corrections = correction_records(s)  # what raters said after a 👎
        reviewed = reviewed_examples(s, base.intents)  # the review inbox's gold labels
        generator_trained = last_generator_training(s)
        run_row = start_run(s, "retrain")
    examples = with_reviewed(
        intent_examples(votes, base.intents, base.out_of_scope, settings, corrections), reviewed
    )
    train_ex, held = split_recent(examples, HOLDOUT)
    if not train_ex:
        with session_scope(engine) as s:
            finish_run(
                s,
                run_row,
                status="skipped",
                mlflow_run_id=None,
                model_version=None,
                n_votes=len(votes),
                metrics={},
            )
        return RetrainOutcome(skipped="no usable votes yet", votes=len(votes))

    thumbs = Thumbs(votes, train_ex, held)
    champion = Champion(base_version, base, resolved.bundle_dir, evaluate(base, domain, held))
    cfg = RETRAIN_CONFIG.model_copy(update={"device": settings.compute.device})
    tuned = load_bundle(resolved.bundle_dir, device)  # trained in place; `base` stays as is
    train_stats = train_candidate(tuned, domain, train_ex, cfg, progress, budget)
    train_stats |= reviewed_stats(reviewed, train_ex, held)
    train_stats |= signal_stats(corrections, train_ex)
    tuned.meta["oos_threshold"] = calibrate(tuned, domain, cfg)
    champ_eval, cand_eval = champion.evaluation, evaluate(tuned, domain, held)
    flips = confirmed_flips(
        held,
        champ_eval.heldout_predicted,
        champ_eval.heldout_confidence,
        cand_eval.heldout_predicted,
    )
    train_stats |= {
        "confirmed_flips": float(flips.flipped),
        "confirmed_heldout": float(flips.confirmed),
    }
    candidate = Candidate(tuned, domain, cfg, train_stats, cand_eval)
    paired = (
        paired_votes(held, champ_eval.heldout_predicted, cand_eval.heldout_predicted)
        if held
        else None
    )
    gate = decide(
        champ_eval.metrics(),
        cand_eval.metrics(),
        settings.learning.gate_tolerance,
        paired,
        flips,
    )
    work = Path(tempfile.mkdtemp(prefix="generator-", dir=settings.ensure_home()))
    try:
        gen = retrain_generator(
            settings,
            reply_judgements(votes, settings.learning.max_rater_share),
            base.generator_dir,
            domain,
            base.responses,
            work / "adapter",
            device,
            progress=progress,
            last_trained=generator_trained,
        )
        registered = register_candidate(
            settings,
            client,
            engine,
            champion,
            candidate,
            thumbs,
            gate,
            gen,
            time.perf_counter() - start,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    version = registered.version
    passed = registered.passed
    aliases: list[str] = []
    if passed:
        client.set_registered_model_alias(settings.model_name, "challenger", version)
        aliases.append("challenger")
        if settings.learning.auto_promote:
            promote(settings, version, who="auto-promote")
            aliases.append("champion")
    with session_scope(engine) as s:
        finish_run(
            s,
            run_row,
            status="passed" if passed else "failed",
            mlflow_run_id=registered.run_id,
            model_version=version,
            n_votes=len(votes),
            # a generator that passed its gate is thrown away with a failed classifier: the
            # next retrain trains it again without waiting for new votes
            metrics=registered.metrics
            | {"generator_discarded": float(gen.status == "passed" and not passed)},
        )
    reasons = gate.reasons + [f"generator {gen.status}: {r}" for r in gen.reasons]
    log.info("retrain -> version %s, gate %s (%s)", version, registered.gate, "; ".join(reasons))
    return RetrainOutcome(
        version=version,
        gate=registered.gate,
        classifier_gate="passed" if gate.passed else "failed",
        generator_gate=gen.status,
        reasons=tuple(reasons),
        aliases=tuple(aliases),
        metrics=registered.metrics,
        run_id=registered.run_id,
    )
