"""The simulator's data and report: a k-shot seed domain, the supervised reference, the curve."""

from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression

from learning.registry.client import configure, experiment_id
from thumbloop.domain import Domain, Example
from thumbloop.model.device import resolve_device
from thumbloop.model.sentences import SentenceEncoder
from thumbloop.settings import Settings


def few_shot_domain(full: Domain, shots: int, out: Path, seed: int) -> tuple[Path, list[Example]]:
    """Write a domain with ``shots`` training examples per intent (same validation, responses
    and sentiment); return it and the unseen rest of the training data, shuffled."""
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for e in full.train:
        by_label[e.label].append(e)
    seed_rows: list[Example] = []
    pool: list[Example] = []
    for label in sorted(by_label):
        items = by_label[label][:]
        rng.shuffle(items)
        seed_rows += items[:shots]
        pool += items[shots:]
    rng.shuffle(pool)
    if out.exists():
        shutil.rmtree(out)
    (out / "intents").mkdir(parents=True)

    def dump(path: Path, rows: list[Example]) -> None:
        path.write_text(
            "".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in rows)
        )

    dump(out / "intents/train.jsonl", seed_rows)
    dump(out / "intents/validation.jsonl", full.validation)
    shutil.copyfile(full.root / "responses.json", out / "responses.json")
    manifest = full.manifest.model_copy(
        update={"name": f"{full.name}-{shots}shot", "sentiment": str(full.sentiment_dir)}
    )
    (out / "domain.json").write_text(manifest.model_dump_json(indent=2))
    return out, pool


def reference_accuracy(full: Domain, device: str, shown: Sequence[Example] = ()) -> dict[str, Any]:
    """Fully supervised reference: the frozen encoder's mean-pooled, normalised embeddings and a
    logistic regression on all training data, scored on the same validation set. With ``shown``
    (training rows the loop saw: the seed rows and the messages the raters voted on) also the
    same fit on just those rows with their true labels: the most votes on them could teach."""
    embed = SentenceEncoder(device=resolve_device(device)).embed
    x_train = embed([e.text for e in full.train])
    x_val = embed([e.text for e in full.validation])
    gold = np.array([e.label for e in full.validation])

    def fit_score(rows: np.ndarray) -> float:
        labels = [full.train[i].label for i in rows]
        clf = LogisticRegression(C=10.0, max_iter=3000).fit(x_train[rows], labels)
        return float((clf.predict(x_val) == gold).mean())

    report: dict[str, Any] = {
        "method": "frozen encoder + logistic regression, all training data",
        "train_examples": len(full.train),
        "accuracy": fit_score(np.arange(len(full.train))),
    }
    if shown:
        where = {(e.text, e.label): i for i, e in enumerate(full.train)}
        rows = np.array(sorted({where[(e.text, e.label)] for e in shown}))
        report["shown"] = {
            "method": "the same, on the seed rows and the messages the raters saw, true labels",
            "train_examples": len(rows),
            "accuracy": fit_score(rows),
        }
    return report


def curve_png(report: dict[str, Any], out: Path) -> Path:
    rounds = report["rounds"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        [r["votes"] for r in rounds], [r["accuracy"] for r in rounds], marker="o", label="champion"
    )
    ref = report.get("supervised_reference") or {}
    if "accuracy" in ref:
        ax.axhline(ref["accuracy"], ls="--", color="grey", label="fully supervised reference")
    if "shown" in ref:
        ax.axhline(
            ref["shown"]["accuracy"],
            ls=":",
            color="black",
            label="seed + the voted messages, true labels",
        )
    for r in rounds:
        if r["gate"] == "failed":
            ax.annotate("gate failed", (r["votes"], r["accuracy"]), fontsize=7)
    ax.set_xlabel("votes received")
    ax.set_ylabel("validation intent accuracy")
    cfg = report["config"]
    ax.set_title(
        f"{report['domain']}: {cfg['seed_shots']}-shot seed, noise {cfg['noise']}, "
        f"{cfg['adversaries']} adversaries"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def log_curve(
    settings: Settings, json_path: Path, png_path: Path, curve: list[dict[str, Any]]
) -> None:
    client = configure(settings)
    with mlflow.start_run(
        experiment_id=experiment_id(settings, client),
        run_name="simulation",
        tags={"kind": "simulation"},
    ):
        for row in curve:
            mlflow.log_metric("validation_accuracy", row["accuracy"], step=row["votes"])
        mlflow.log_artifact(str(json_path))
        mlflow.log_artifact(str(png_path))
