"""A retrain's candidate: saved as a bundle, logged to one MLflow run with its evidence (metrics of
both models, confusion change, per-intent table, vote-rate and sentiment plots, the votes as dataset
inputs) and registered as a model version with its gate verdicts and a generated description."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from sqlalchemy import Engine, select

from learning.generator.step import GeneratorOutcome
from learning.registry.versions import log_and_register
from learning.retrain.candidate import Candidate, Champion, Thumbs
from learning.retrain.gate import GateResult
from learning.retrain.outcome import GateVerdict
from learning.retrain.report_plots import (
    confusion_delta_png,
    per_intent_accuracy,
    sentiment_trend_png,
    vote_rate_png,
)
from learning.retrain.reviewed import reviewed_set
from thumbloop.model.bundle import save_bundle
from thumbloop.settings import Settings
from thumbloop.store.db import session_scope
from thumbloop.store.schema import LIVE, InteractionRow, VoteRow


def _activity(engine: Engine) -> tuple[list[tuple[str, datetime, int]], list[tuple[datetime, str]]]:
    with session_scope(engine) as s:
        votes = s.execute(
            select(InteractionRow.model_version, VoteRow.updated_at, VoteRow.value)
            .join(InteractionRow, InteractionRow.interaction_id == VoteRow.interaction_id)
            .where(LIVE)
        ).all()
        moods = s.execute(select(InteractionRow.created_at, InteractionRow.sentiment)).all()
    return [(str(v), t, int(x)) for v, t, x in votes], [(t, str(m)) for t, m in moods]


def _describe(
    base_version: str,
    params: dict[str, Any],
    train_stats: dict[str, float],
    champ: dict[str, float],
    cand: dict[str, float],
    gate: GateResult,
) -> str:
    return (
        f"Retrained from version {base_version} on {params['vote_examples_train']} thumbs "
        f"({params['positive_examples']} up, {params['negative_examples']} down) from "
        f"{params['raters']} raters plus {int(train_stats['replay_examples'])} replayed seed "
        f"examples. Golden intent accuracy {champ['golden_intent_accuracy']:.2%} -> "
        f"{cand['golden_intent_accuracy']:.2%}; gate {'passed' if gate.passed else 'failed'}: "
        + "; ".join(gate.reasons)
    )


@dataclass(frozen=True)
class RegisteredCandidate:
    version: str
    run_id: str
    gate: GateVerdict  # the classifier's gate and the generator's together
    metrics: dict[str, float]  # as logged to the run (NaNs left out)

    @property
    def passed(self) -> bool:
        return self.gate == "passed"


def register_candidate(
    settings: Settings,
    client: MlflowClient,
    engine: Engine,
    champion: Champion,
    candidate: Candidate,
    thumbs: Thumbs,
    gate: GateResult,
    gen: GeneratorOutcome,
    seconds: float,
) -> RegisteredCandidate:
    """Save ``candidate`` as a bundle beside the champion's responses, log its evidence to one
    run and register it; it passes when the classifier's gate did and the generator's did not
    fail (a skipped generator part carries the champion's over)."""
    champ, cand = champion.evaluation, candidate.evaluation
    champ_metrics, cand_metrics = champ.metrics(), cand.metrics()
    votes, train_ex, held = thumbs.votes, thumbs.train, thumbs.held
    domain, cfg = candidate.domain, candidate.config
    passed = gate.passed and gen.status != "failed"

    out_dir = settings.ensure_home() / "bundles" / f"retrain-{int(time.time())}"
    meta = {
        k: v
        for k, v in champion.bundle.meta.items()
        if k not in ("format_version", "created_at", "heads", "versions")
    }
    meta |= {
        "oos_threshold": candidate.bundle.meta["oos_threshold"],
        "base_version": champion.version,
        "train_config": cfg.model_dump(),
        "validation_metrics": cand_metrics,
    }
    save_bundle(
        out_dir,
        candidate.bundle.model.cpu(),
        candidate.bundle.tokenizer,
        meta,
        champion.bundle_dir / "responses.json",
        generator_dir=gen.folder,
    )

    raters = {v.rater for v in votes}
    metrics: dict[str, float] = {f"champion_{k}": v for k, v in champ_metrics.items()}
    metrics |= {f"candidate_{k}": v for k, v in cand_metrics.items()}
    metrics |= {f"delta_{k}": cand_metrics[k] - champ_metrics[k] for k in cand_metrics}
    metrics |= {"seconds": seconds, **candidate.train_stats, **gen.metrics}
    metrics = {k: v for k, v in metrics.items() if not np.isnan(v)}
    params = {
        "base_version": champion.version,
        "domain": domain.name,
        "votes": len(votes),
        "vote_examples_train": len(train_ex),
        "vote_examples_heldout": len(held),
        "positive_examples": sum(e.sign > 0 for e in train_ex),
        "negative_examples": sum(e.sign < 0 for e in train_ex),
        "raters": len(raters),
        "max_rater_share": settings.learning.max_rater_share,
        "gate_tolerance": settings.learning.gate_tolerance,
        **{f"cfg_{k}": v for k, v in cfg.model_dump().items()},
        **gen.params,
    }
    per_intent = {
        "champion": per_intent_accuracy(champ.golden_labels, champ.golden_predicted),
        "candidate": per_intent_accuracy(cand.golden_labels, cand.golden_predicted),
    }
    vote_rows, moods = _activity(engine)
    reviewed = reviewed_set(engine, train_ex, held)
    verdict: GateVerdict = "passed" if passed else "failed"
    tags = {
        "kind": "retrain",
        "gate": verdict,
        "gate.classifier": "passed" if gate.passed else "failed",
        "gate.generator": gen.status,
        "base_version": champion.version,
        "domain": domain.name,
        "golden_intent_accuracy": f"{cand_metrics['golden_intent_accuracy']:.4f}",
        "golden_sentiment_accuracy": f"{cand_metrics['golden_sentiment_accuracy']:.4f}",
    }
    if gen.version:
        tags["generator"] = gen.version
    if "confirmed_flips" in candidate.train_stats:  # confident answers users confirmed, changed
        tags["confirmed_flips"] = str(int(candidate.train_stats["confirmed_flips"]))
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        figs = {
            "delta": confusion_delta_png(
                champ.golden_labels,
                champ.golden_predicted,
                cand.golden_predicted,
                champion.bundle.intents,
                t / "confusion_delta.png",
            ),
            "votes": vote_rate_png(vote_rows, t / "vote_rate_by_version.png"),
            "mood": sentiment_trend_png(moods, t / "sentiment_trend.png"),
        }
        registered = log_and_register(
            settings,
            out_dir,
            params=params,
            metrics=metrics,
            artifacts=figs,
            dicts={
                "per_intent_accuracy.json": per_intent,
                **reviewed.artifact(),  # the review inbox's labels it used (no text)
                "gate.json": {
                    "passed": passed,
                    "classifier": {"passed": gate.passed, "reasons": gate.reasons},
                    "generator": {"status": gen.status, "reasons": gen.reasons},
                },
            },
            tags=tags,
            set_champion_if_missing=False,
            inputs=[(train_ex, "thumbs_train"), (held, "thumbs_heldout"), *reviewed.inputs()],
        )
    version = registered.version
    description = _describe(
        champion.version, params, candidate.train_stats, champ_metrics, cand_metrics, gate
    )
    description += f" Reply generator {gen.status}: " + "; ".join(gen.reasons)
    client.update_model_version(settings.model_name, version, description=description)
    return RegisteredCandidate(version, registered.run_id, verdict, metrics)
