"""The intent classifier's part of a retrain: which votes it learns from, tuning the champion's
model on them, its out-of-scope threshold, and measuring a model for the gate.

While seed rows + votes are few per intent (``TrainConfig.tuned_layers``), the encoder stays
frozen and only the intent head is refit (a logistic regression, 👎 as complementary labels).
Thumbs on clarifying replies label the out-of-scope class (``learning.clarifying_votes``).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from learning.retrain.candidate import Evaluation
from learning.retrain.gate import vote_agreement
from learning.retrain.replay import replay_set
from learning.retrain.signals import CorrectionRecord, build_examples
from learning.retrain.thumbs import ThumbExample, VoteRecord
from learning.seed.batches import INTENT, SENTIMENT, cache_lower
from learning.seed.budget import StepBudget
from learning.seed.calibrate import choose_oos_threshold
from learning.seed.config import TrainConfig
from learning.seed.heads import features, fit_logistic
from learning.seed.train import evaluate_bundle, fine_tune
from thumbloop.contracts import SENTIMENT_LABELS
from thumbloop.domain import Domain
from thumbloop.model.bundle import LoadedBundle
from thumbloop.model.predictor import intent_predictions, predict_many
from thumbloop.settings import Settings


def intent_examples(
    votes: list[VoteRecord],
    intents: list[str],
    out_of_scope: str | None,
    settings: Settings,
    corrections: list[CorrectionRecord] | None = None,
) -> list[ThumbExample]:
    """The votes and follow-ups a retrain learns the intents from: on the model's own intents,
    and on its clarifying replies (predicted out of scope) unless ``learning.clarifying_votes``
    is off (picks on them still count: they name the intent); picks of intents the model does
    not know are left out."""
    oos = frozenset({out_of_scope} if out_of_scope else set())
    known = set(intents)
    return build_examples(
        [v for v in votes if v.intent in known],
        settings.learning.max_rater_share,
        skip_intents=frozenset() if settings.learning.clarifying_votes else oos,
        no_belief=oos,
        corrections=[
            c
            for c in corrections or []
            if c.intent in known and (c.label is None or c.label in known)
        ],
    )


def evaluate(bundle: LoadedBundle, domain: Domain, held: list[ThumbExample]) -> Evaluation:
    """``bundle`` on the domain's golden messages and on the held-back votes."""
    metrics, preds = evaluate_bundle(bundle, domain)
    agreement, predicted, confidence = float("nan"), list[str](), list[float]()
    if held:
        p_int, _ = predict_many(bundle, [e.text for e in held])
        predicted = intent_predictions(bundle, p_int)
        confidence = [float(x) for x in p_int.max(axis=1)]
        agreement = vote_agreement(held, predicted)
    return Evaluation(
        golden_intent_accuracy=metrics["intent_accuracy"],
        golden_sentiment_accuracy=metrics["sentiment_accuracy"],
        golden_intent_macro_f1=metrics["intent_macro_f1"],
        heldout_vote_agreement=agreement,
        golden_labels=preds["intent_gold"],
        golden_predicted=preds["intent_pred"],
        heldout_predicted=predicted,
        heldout_confidence=confidence,
    )


def train_candidate(
    bundle: LoadedBundle,
    domain: Domain,
    train_ex: list[ThumbExample],
    cfg: TrainConfig,
    progress: bool,
    budget: StepBudget | None = None,
) -> dict[str, float]:
    """Tune ``bundle`` in place on the vote examples plus a replay of the seed rows; return what
    the MLflow run records of it. Few labels per intent: only the intent head is refit."""
    model, tok, device = bundle.model, bundle.tokenizer, bundle.device
    ids = {name: i for i, name in enumerate(bundle.intents)}
    rng = random.Random(cfg.seed)
    # scaled by the undiscounted mean: a lone bare 👎 on a confident prediction stays weak
    mean_w = float(np.mean([e.weight / e.discount for e in train_ex])) or 1.0
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


def calibrate(bundle: LoadedBundle, domain: Domain, cfg: TrainConfig) -> float:
    """The out-of-scope threshold for the tuned model, chosen on the domain's validation set."""
    oos = bundle.out_of_scope
    if oos is None:
        return 0.0
    ids = {name: i for i, name in enumerate(bundle.intents)}
    p_int, _ = predict_many(bundle, [e.text for e in domain.validation])
    gold = np.array([ids[e.label] for e in domain.validation])
    threshold, _ = choose_oos_threshold(p_int, gold, ids[oos], cfg.max_inscope_drop)
    return threshold
