"""Figures logged with each run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from thumbloop.scoring import confusion


def confusion_png(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], out: Path
) -> Path:
    """Row-normalised confusion matrix; with many intents the labels are drawn small."""
    matrix = np.array(confusion(gold, pred, labels), dtype=float)
    matrix /= np.maximum(matrix.sum(1, keepdims=True), 1.0)
    n = len(labels)
    size = max(6.0, min(30.0, n * 0.22))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    font = max(3.0, min(9.0, 400 / max(n, 1)))
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Intent confusion on validation (row-normalised)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def loss_png(losses: Sequence[float], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1) * 50, losses)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (50-step mean)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
