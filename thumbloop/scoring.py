"""Classification metrics (plain Python: the CLI uses them without numpy or torch)."""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    if not gold:
        raise ValueError("no examples")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def macro_f1(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
) -> float:
    """Mean F1 over the labels that occur in ``gold`` (or the given ``labels``)."""
    labels = sorted(set(gold)) if labels is None else list(labels)
    if not labels:
        raise ValueError("no labels")
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores)


def oos_metrics(gold: Sequence[str], pred: Sequence[str], oos: str) -> dict[str, float]:
    """In-scope accuracy, OOS recall and OOS precision (CLINC150's definitions)."""
    in_scope = [(g, p) for g, p in zip(gold, pred, strict=True) if g != oos]
    oos_gold = sum(g == oos for g in gold)
    oos_pred = sum(p == oos for p in pred)
    oos_hit = sum(g == oos and p == oos for g, p in zip(gold, pred, strict=True))
    return {
        "in_scope_accuracy": sum(g == p for g, p in in_scope) / len(in_scope) if in_scope else 0.0,
        "oos_recall": oos_hit / oos_gold if oos_gold else 0.0,
        "oos_precision": oos_hit / oos_pred if oos_pred else 0.0,
    }


def confusion(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        if g in index and p in index:
            matrix[index[g]][index[p]] += 1
    return matrix
