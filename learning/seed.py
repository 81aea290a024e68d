"""`thumbloop train`: train a domain, evaluate, plot, log to MLflow, register a version."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from learning.config import TrainConfig
from learning.evaluate import evaluate_file
from learning.plots import confusion_png, loss_png
from learning.registry import Registered, log_and_register
from learning.train import train_domain
from serving.bundle import load_bundle
from serving.device import resolve_device
from thumbloop.domain import load_domain
from thumbloop.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class SeedResult:
    bundle_dir: Path
    metrics: dict[str, float]
    seconds: dict[str, float]
    registered: Registered | None


def extra_sentiment_evals(sentiment_dir: Path) -> list[Path]:
    """Further sentiment sets shipped beside the domain's (``eval/*.jsonl``)."""
    return sorted((sentiment_dir / "eval").glob("*.jsonl"))


def train_and_register(
    settings: Settings,
    domain_dir: Path,
    cfg: TrainConfig,
    *,
    out_dir: Path | None = None,
    register: bool = True,
    progress: bool = True,
) -> SeedResult:
    start = time.perf_counter()
    domain = load_domain(domain_dir)
    out_dir = out_dir or settings.ensure_home() / "bundles" / f"{domain.name}-{int(time.time())}"
    result = train_domain(domain, out_dir, cfg, progress=progress)
    metrics = dict(result.metrics)
    bundle = load_bundle(result.bundle_dir, resolve_device(cfg.device))
    for path in extra_sentiment_evals(domain.sentiment_dir):
        scores = evaluate_file(bundle, path, "sentiment")
        metrics[f"sentiment_{path.stem}_accuracy"] = scores["accuracy"]
    seconds = dict(result.seconds)
    seconds["total_before_mlflow"] = round(time.perf_counter() - start, 2)
    registered = None
    if register:
        with tempfile.TemporaryDirectory() as tmp:
            figs = {
                "confusion": confusion_png(
                    result.predictions["intent_gold"],
                    result.predictions["intent_pred"],
                    list(domain.intents),
                    Path(tmp) / "confusion_matrix.png",
                ),
                "loss": loss_png(result.predictions["losses"], Path(tmp) / "training_loss.png"),
            }
            registered = log_and_register(
                settings,
                result.bundle_dir,
                params=cfg.model_dump()
                | {
                    "domain": domain.name,
                    "n_intents": len(domain.intents),
                    "n_train": len(domain.train),
                    "n_validation": len(domain.validation),
                },
                metrics=metrics | {f"seconds_{k}": v for k, v in seconds.items()},
                artifacts=figs,
                dicts={"data_manifest.json": domain.manifest_digest()},
                tags={
                    "kind": "seed",
                    "domain": domain.name,
                    "golden_intent_accuracy": f"{metrics['intent_accuracy']:.4f}",
                    "golden_sentiment_accuracy": f"{metrics['sentiment_accuracy']:.4f}",
                },
            )
    seconds["total"] = round(time.perf_counter() - start, 2)
    return SeedResult(result.bundle_dir, metrics, seconds, registered)
