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
from sqlalchemy import Engine, select

from learning.registry.versions import log_and_register
from learning.retrain.generator_step import GeneratorOutcome
from learning.retrain.report_plots import (
    confusion_delta_png,
    per_intent_accuracy,
    sentiment_trend_png,
    vote_rate_png,
)
from learning.retrain.thumbs import ThumbExample
from learning.seed.config import TrainConfig
from thumbloop.domain import Domain
from thumbloop.model.bundle import LoadedBundle, save_bundle
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
    gate: Any,
) -> str:
    return (
        f"Retrained from version {base_version} on {params['vote_examples_train']} thumbs "
        f"({params['positive_examples']} up, {params['negative_examples']} down) from "
        f"{params['raters']} raters plus {int(train_stats['replay_examples'])} replayed seed "
        f"examples. Golden intent accuracy {champ['golden_intent_accuracy']:.2%} -> "
        f"{cand['golden_intent_accuracy']:.2%}; gate {'passed' if gate.passed else 'failed'}: "
        + "; ".join(gate.reasons)
    )


@dataclass
class Registered:
    version: str
    run_id: str
    gate: str
    metrics: dict[str, float]


def register_candidate(
    settings: Settings,
    client: Any,
    engine: Engine,
    base: LoadedBundle,
    candidate: LoadedBundle,
    domain: Domain,
    base_dir: Path,
    votes: list[Any],
    train_ex: list[ThumbExample],
    held: list[ThumbExample],
    evaluation: tuple[dict[str, float], dict[str, float], list[str], list[str], list[str]],
    gate: Any,
    gen: GeneratorOutcome,
    train_stats: dict[str, float],
    cfg: TrainConfig,
    base_version: str,
    seconds: float,
) -> tuple[Registered, bool]:
    champ_metrics, cand_metrics, gold, champ_pred, cand_pred = evaluation
    passed = gate.passed and gen.status != "failed"

    out_dir = settings.ensure_home() / "bundles" / f"retrain-{int(time.time())}"
    meta = {
        k: v
        for k, v in base.meta.items()
        if k not in ("format_version", "created_at", "heads", "versions")
    }
    meta |= {
        "oos_threshold": candidate.meta["oos_threshold"],
        "base_version": base_version,
        "train_config": cfg.model_dump(),
        "validation_metrics": cand_metrics,
    }
    save_bundle(
        out_dir,
        candidate.model.cpu(),
        candidate.tokenizer,
        meta,
        base_dir / "responses.json",
        generator_dir=gen.folder,
    )

    raters = {v.rater for v in votes}
    metrics: dict[str, float] = {f"champion_{k}": v for k, v in champ_metrics.items()}
    metrics |= {f"candidate_{k}": v for k, v in cand_metrics.items()}
    metrics |= {f"delta_{k}": cand_metrics[k] - champ_metrics[k] for k in cand_metrics}
    metrics |= {"seconds": seconds, **train_stats, **gen.metrics}
    metrics = {k: v for k, v in metrics.items() if not np.isnan(v)}
    params = {
        "base_version": base_version,
        "domain": domain.name,
        "votes": len(votes),
        "vote_examples_train": len(train_ex),
        "vote_examples_heldout": len(held),
        "positive_examples": sum(e.sign > 0 for e in train_ex),
        "negative_examples": sum(e.sign < 0 for e in train_ex),
        "raters": len(raters),
        "max_rater_share": settings.max_rater_share,
        "gate_tolerance": settings.gate_tolerance,
        **{f"cfg_{k}": v for k, v in cfg.model_dump().items()},
        **gen.params,
    }
    per_intent = {
        "champion": per_intent_accuracy(gold, champ_pred),
        "candidate": per_intent_accuracy(gold, cand_pred),
    }
    vote_rows, moods = _activity(engine)
    tags = {
        "kind": "retrain",
        "gate": "passed" if passed else "failed",
        "gate.classifier": "passed" if gate.passed else "failed",
        "gate.generator": gen.status,
        "base_version": base_version,
        "domain": domain.name,
        "golden_intent_accuracy": f"{cand_metrics['golden_intent_accuracy']:.4f}",
        "golden_sentiment_accuracy": f"{cand_metrics['golden_sentiment_accuracy']:.4f}",
    }
    if gen.version:
        tags["generator"] = gen.version
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        figs = {
            "delta": confusion_delta_png(
                gold, champ_pred, cand_pred, base.intents, t / "confusion_delta.png"
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
                "gate.json": {
                    "passed": passed,
                    "classifier": {"passed": gate.passed, "reasons": gate.reasons},
                    "generator": {"status": gen.status, "reasons": gen.reasons},
                },
            },
            tags=tags,
            set_champion_if_missing=False,
            inputs=[(train_ex, "thumbs_train"), (held, "thumbs_heldout")],
        )
    version = registered.version
    description = _describe(base_version, params, train_stats, champ_metrics, cand_metrics, gate)
    description += f" Reply generator {gen.status}: " + "; ".join(gen.reasons)
    client.update_model_version(settings.model_name, version, description=description)
    return Registered(version, registered.run_id, tags["gate"], metrics), passed
