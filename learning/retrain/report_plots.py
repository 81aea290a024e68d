"""Figures for a retrain's MLflow run: what changed, and how people are rating the bot."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from thumbloop.scoring import confusion


def per_intent_accuracy(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for g, p in zip(gold, pred, strict=True):
        hits[g].append(g == p)
    return {k: float(np.mean(v)) for k, v in sorted(hits.items())}


def confusion_delta_png(
    gold: Sequence[str],
    champion: Sequence[str],
    candidate: Sequence[str],
    labels: Sequence[str],
    out: Path,
) -> Path:
    """Candidate minus champion, row-normalised: red = more of that (gold, predicted) pair."""

    def norm(pred: Sequence[str]) -> np.ndarray:
        m = np.array(confusion(gold, pred, labels), dtype=float)
        return m / np.maximum(m.sum(1, keepdims=True), 1.0)

    delta = norm(candidate) - norm(champion)
    n = len(labels)
    size = max(6.0, min(30.0, n * 0.22))
    fig, ax = plt.subplots(figsize=(size, size))
    lim = max(0.05, float(np.abs(delta).max()))
    im = ax.imshow(delta, cmap="RdBu_r", vmin=-lim, vmax=lim)
    font = max(3.0, min(9.0, 400 / max(n, 1)))
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Confusion change on the golden set (candidate - champion)")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def vote_rate_png(votes: Sequence[tuple[str, datetime, int]], out: Path) -> Path:
    """Share of 👍 per model version per day; ``votes`` are (model_version, time, ±1)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    by_version: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for version, at, value in votes:
        by_version[version][at.strftime("%Y-%m-%d %H:00")].append(value)
    for version, buckets in sorted(by_version.items()):
        keys = sorted(buckets)
        ax.plot(
            keys, [np.mean([v > 0 for v in buckets[k]]) for k in keys], marker="o", label=version
        )
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of thumbs up")
    ax.set_xlabel("hour")
    ax.set_title("Thumbs-up rate per model version")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    if by_version:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def sentiment_trend_png(points: Sequence[tuple[datetime, str]], out: Path) -> Path:
    """Share of each sentiment among user messages per hour."""
    buckets: dict[str, list[str]] = defaultdict(list)
    for at, label in points:
        buckets[at.strftime("%Y-%m-%d %H:00")].append(label)
    keys = sorted(buckets)
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, colour in (
        ("negative", "tab:red"),
        ("neutral", "tab:grey"),
        ("positive", "tab:green"),
    ):
        ax.plot(
            keys,
            [np.mean([x == label for x in buckets[k]]) for k in keys],
            marker="o",
            color=colour,
            label=label,
        )
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of messages")
    ax.set_title("User sentiment over time")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
