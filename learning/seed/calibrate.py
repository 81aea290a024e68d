"""Choose the out-of-scope confidence threshold on validation data."""

from __future__ import annotations

import numpy as np


def choose_oos_threshold(
    probs: np.ndarray,
    gold: np.ndarray,
    oos_index: int,
    max_inscope_drop: float,
) -> tuple[float, dict[str, float]]:
    """Highest balanced score (mean of in-scope accuracy and OOS recall) among thresholds that
    cost at most ``max_inscope_drop`` in-scope accuracy against no threshold at all.

    A prediction whose top probability is below the threshold becomes out of scope.
    """
    top = probs.argmax(1)
    conf = probs.max(1)
    in_scope = gold != oos_index
    is_oos = ~in_scope

    def score(t: float) -> tuple[float, float]:
        pred = np.where(conf < t, oos_index, top)
        acc = float((pred[in_scope] == gold[in_scope]).mean()) if in_scope.any() else 0.0
        rec = float((pred[is_oos] == oos_index).mean()) if is_oos.any() else 0.0
        return acc, rec

    base_acc, base_rec = score(0.0)
    best_t, best = 0.0, (base_acc + base_rec) / 2
    for t in np.linspace(0.05, 0.95, 91):
        acc, rec = score(float(t))
        if acc < base_acc - max_inscope_drop:
            continue
        if (acc + rec) / 2 > best + 1e-9:
            best_t, best = float(t), (acc + rec) / 2
    acc, rec = score(best_t)
    return best_t, {"in_scope_accuracy": acc, "oos_recall": rec, "base_in_scope_accuracy": base_acc}
