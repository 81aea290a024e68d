"""`thumbloop train`: train a domain, evaluate, plot, log to MLflow, register a version."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from learning.registry.training_runs import finish_run, start_run
from learning.registry.versions import Registered, log_and_register
from learning.seed.config import TrainConfig
from learning.seed.evaluate import evaluate_file
from learning.seed.plots import confusion_png, loss_png
from learning.seed.train import train_domain
from thumbloop.domain import load_domain
from thumbloop.model.bundle import load_bundle
from thumbloop.model.device import resolve_device
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope, upgrade

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
    started_at = datetime.now(UTC)
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
                metrics=metrics | seconds_metrics(seconds),
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
    if registered is not None:
        record_seed_run(settings, registered, metrics | seconds_metrics(seconds), started_at)
    return SeedResult(result.bundle_dir, metrics, seconds, registered)


def seconds_metrics(seconds: dict[str, float]) -> dict[str, float]:
    return {f"seconds_{k}": v for k, v in seconds.items()}


def record_seed_run(
    settings: Settings, registered: Registered, metrics: dict[str, float], started_at: datetime
) -> None:
    """The seed beside the retrains in the ``training_runs`` table (kind ``seed``), so the
    database lists how every registered version was trained. The run is in MLflow either way,
    so a database that cannot be reached is a warning, not a failed training."""
    url = settings.effective_database_url
    try:
        upgrade(url)
        engine = make_engine(url)
        try:
            with session_scope(engine) as s:
                row = start_run(s, "seed", started_at=started_at)
                finish_run(
                    s,
                    row,
                    status="registered",
                    mlflow_run_id=registered.run_id,
                    model_version=registered.version,
                    n_votes=0,
                    metrics=metrics,
                )
        finally:
            engine.dispose()
    except Exception as exc:  # any database trouble; the model is registered regardless
        log.warning("seed run not recorded in %s: %s", url.split("@")[-1], exc)
