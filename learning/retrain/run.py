"""Retraining from thumbs: when due, fine-tune the champion on weighted votes plus a replay of
the domain's seed data, gate the candidate against the champion, register it in MLflow.

Phases: collect votes -> evaluate champion -> cache + fine-tune -> calibrate -> evaluate
candidate -> gate -> save + register (+ `challenger`, + `champion` only with auto-promote).
While seed rows + votes are few per intent (``TrainConfig.tuned_layers``), the encoder stays
frozen and only the intent head is refit (a logistic regression, 👎 as complementary labels).
Thumbs on clarifying replies label the out-of-scope class (``Settings.clarifying_votes``).
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine

from learning.registry.promotion import promote
from learning.registry.versions import alias_version, configure
from learning.retrain.feedback_store import (
    finish_run,
    last_candidate_at,
    last_generator_training,
    new_votes_since,
    start_run,
    vote_records,
)
from learning.retrain.gate import decide, paired_votes, vote_agreement
from learning.retrain.generator_step import retrain_generator
from learning.retrain.replay import replay_set
from learning.retrain.report import register_candidate
from learning.retrain.thumbs import (
    ThumbExample,
    VoteRecord,
    build_examples,
    reply_judgements,
    split_recent,
)
from learning.seed.batches import INTENT, SENTIMENT, cache_lower
from learning.seed.budget import StepBudget
from learning.seed.calibrate import choose_oos_threshold
from learning.seed.config import TrainConfig
from learning.seed.heads import features, fit_logistic
from learning.seed.train import evaluate_bundle, fine_tune
from learning.worker.lock import retrain_lock
from serving.model_source import resolve
from thumbloop.contracts import SENTIMENT_LABELS
from thumbloop.domain import Domain, load_domain
from thumbloop.model.bundle import LoadedBundle, load_bundle
from thumbloop.model.device import resolve_device
from thumbloop.model.predictor import intent_predictions, predict_many
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
    with session_scope(engine) as s:
        count, oldest = new_votes_since(s, last_candidate_at(s))
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
    due = (
        force
        or count >= settings.retrain_min_votes
        or (count > 0 and age > settings.retrain_max_age_s)
    )
    if not due:
        return {"due": False, "new_votes": count}
    with retrain_lock(settings) as held:
        if not held:
            return {"due": True, "skipped": "another retrain is running"}
        return run_retrain(settings, engine, progress=progress) | {"new_votes": count}


def intent_examples(
    votes: list[VoteRecord], intents: list[str], out_of_scope: str | None, settings: Settings
) -> list[ThumbExample]:
    """The votes a retrain learns the intents from: on the model's own intents, and on its
    clarifying replies (predicted out of scope) unless ``settings.clarifying_votes`` is off."""
    oos = frozenset({out_of_scope} if out_of_scope else set())
    known = set(intents)
    return build_examples(
        [v for v in votes if v.intent in known],
        settings.max_rater_share,
        skip_intents=frozenset() if settings.clarifying_votes else oos,
        no_belief=oos,
    )


def _golden(bundle: LoadedBundle, domain: Domain) -> tuple[dict[str, float], list[str], list[str]]:
    metrics, preds = evaluate_bundle(bundle, domain)
    return (
        {
            "golden_intent_accuracy": metrics["intent_accuracy"],
            "golden_sentiment_accuracy": metrics["sentiment_accuracy"],
            "golden_intent_macro_f1": metrics["intent_macro_f1"],
        },
        preds["intent_gold"],
        preds["intent_pred"],
    )


def _heldout(bundle: LoadedBundle, held: list[ThumbExample]) -> tuple[float, list[str]]:
    if not held:
        return float("nan"), []
    p_int, _ = predict_many(bundle, [e.text for e in held])
    predicted = intent_predictions(bundle, p_int)
    return vote_agreement(held, predicted), predicted


def _train_candidate(
    bundle: LoadedBundle,
    domain: Domain,
    train_ex: list[ThumbExample],
    cfg: TrainConfig,
    progress: bool,
    budget: StepBudget | None = None,
) -> dict[str, float]:
    model, tok, device = bundle.model, bundle.tokenizer, bundle.device
    ids = {name: i for i, name in enumerate(bundle.intents)}
    rng = random.Random(cfg.seed)
    mean_w = float(np.mean([e.weight for e in train_ex])) or 1.0
    vote_w = [e.weight / mean_w for e in train_ex]
    replay, replay_w = replay_set(domain.train, train_ex, vote_w, bundle.out_of_scope, cfg.seed)
    replay_n = len(replay)
    texts = [e.text for e in train_ex] + [e.text for e in replay]
    labels = [ids[e.label] for e in train_ex] + [ids[e.label] for e in replay]
    weights = vote_w + replay_w
    signs = [e.sign for e in train_ex] + [1] * len(replay)
    tuned = cfg.tuned_layers(len(domain.train) + len(train_ex), len(bundle.intents))
    frozen = model.n_layers - tuned
    common: dict[str, Any] = dict(
        frozen_layers=frozen,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        device=device,
        seed=cfg.seed,
        progress=progress,
    )
    batches = cache_lower(
        model, tok, INTENT, texts, labels, weights, signs=signs, desc="cache votes", **common
    )
    stats = {
        "replay_examples": float(replay_n),
        "replay_oos_weight": max(replay_w, default=1.0),
        "tuned_layers": float(tuned),
    }
    if not tuned:  # few labels yet: the encoder stays as it is, the intent head is refit
        fit_logistic(model.intent_head, features(model, batches, frozen, INTENT), cfg.head_c)
        return stats | {"final_loss": float("nan")}
    sent = domain.sentiment("train")
    sent = rng.sample(sent, min(len(sent), cfg.max_sentiment_examples or len(sent)))
    sids: dict[str, int] = {name: i for i, name in enumerate(SENTIMENT_LABELS)}
    batches += cache_lower(
        model,
        tok,
        SENTIMENT,
        [e.text for e in sent],
        [sids[e.label] for e in sent],
        None,
        desc="cache sentiment replay",
        **common,
    )
    # learning without forgetting: the sentiment replay is taught the champion's own outputs,
    # so what the votes do to the shared encoder does not drift sentiment
    with torch.no_grad():
        for b in batches:
            if b.task == SENTIMENT:
                hidden = (
                    model.upper(b.hidden, b.mask, frozen) if frozen < model.n_layers else b.hidden
                )
                b.soft = torch.softmax(model.heads(model.pool(hidden, b.mask))[1].float(), -1)
    budget = budget or StepBudget(deadline=None)
    losses = fine_tune(model, batches, cfg, frozen, device, progress, budget)
    batches.clear()
    return stats | {
        "final_loss": losses[-1] if losses else float("nan"),
        "fine_tune_steps": float(budget.total),
        "fine_tune_planned_steps": float(budget.planned),
    }


def _calibrate(bundle: LoadedBundle, domain: Domain, cfg: TrainConfig) -> float:
    oos = bundle.out_of_scope
    if oos is None:
        return 0.0
    ids = {name: i for i, name in enumerate(bundle.intents)}
    p_int, _ = predict_many(bundle, [e.text for e in domain.validation])
    gold = np.array([ids[e.label] for e in domain.validation])
    threshold, _ = choose_oos_threshold(p_int, gold, ids[oos], cfg.max_inscope_drop)
    return threshold


def run_retrain(settings: Settings, engine: Engine, *, progress: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    budget = StepBudget.from_now(RETRAIN_CONFIG.time_budget_s, RETRAIN_CONFIG.tail_reserve_s)
    client = configure(settings)
    champion = alias_version(client, settings.model_name, "champion")
    if champion is None:
        return {"skipped": "no champion to start from"}
    base_version = str(champion.version)
    domain = load_domain(settings.domain_dir)
    device = resolve_device(settings.device, settings.cpu_threads)
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
        generator_trained = last_generator_training(s)
        run_row = start_run(s, "retrain")
    examples = intent_examples(votes, base.intents, base.out_of_scope, settings)
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
        return {"skipped": "no usable votes yet", "votes": len(votes)}

    champ_metrics, gold, champ_pred = _golden(base, domain)
    champ_metrics["heldout_vote_agreement"], champ_held = _heldout(base, held)
    cfg = RETRAIN_CONFIG.model_copy(update={"device": settings.device})
    candidate = load_bundle(resolved.bundle_dir, device)  # trained in place; `base` stays as is
    train_stats = _train_candidate(candidate, domain, train_ex, cfg, progress, budget)
    candidate.meta["oos_threshold"] = _calibrate(candidate, domain, cfg)
    cand_metrics, _, cand_pred = _golden(candidate, domain)
    cand_metrics["heldout_vote_agreement"], cand_held = _heldout(candidate, held)
    paired = paired_votes(held, champ_held, cand_held) if held else None
    gate = decide(champ_metrics, cand_metrics, settings.gate_tolerance, paired)
    work = Path(tempfile.mkdtemp(prefix="generator-", dir=settings.ensure_home()))
    try:
        gen = retrain_generator(
            settings,
            reply_judgements(votes, settings.max_rater_share),
            base.generator_dir,
            domain,
            base.responses,
            work / "adapter",
            device,
            progress=progress,
            last_trained=generator_trained,
        )
        registered, passed = register_candidate(
            settings,
            client,
            engine,
            base,
            candidate,
            domain,
            resolved.bundle_dir,
            votes,
            train_ex,
            held,
            (champ_metrics, cand_metrics, gold, champ_pred, cand_pred),
            gate,
            gen,
            train_stats,
            cfg,
            base_version,
            time.perf_counter() - start,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    version = registered.version
    aliases: list[str] = []
    if passed:
        client.set_registered_model_alias(settings.model_name, "challenger", version)
        aliases.append("challenger")
        if settings.auto_promote:
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
    return {
        "version": version,
        "gate": registered.gate,
        "classifier_gate": "passed" if gate.passed else "failed",
        "generator_gate": gen.status,
        "reasons": reasons,
        "aliases": aliases,
        "metrics": registered.metrics,
        "run_id": registered.run_id,
    }
