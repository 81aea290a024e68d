"""Evaluation files for ``thumbloop eval``: JSONL of {"text", "label"}, checked line by line.

Intent labels are strings (``oos`` and ``out_of_scope`` both mean out of scope). Sentiment
labels are ``negative|neutral|positive`` or SST-2's ints 0/1 (negative/positive); data with
only those two classes is scored negative-vs-positive, ignoring the neutral output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from thumbloop.contracts import SENTIMENT_LABELS
from thumbloop.scoring import accuracy, macro_f1, oos_metrics

OOS_ALIASES = {"oos", "out_of_scope"}
Task = Literal["intent", "sentiment"]


class EvalDataError(ValueError):
    """The evaluation file cannot be scored; the message names the line."""


@dataclass(frozen=True)
class EvalSet:
    texts: list[str]
    labels: list[str]
    lines: list[int]
    binary: bool = False  # sentiment with only negative/positive


def read_eval_file(path: Path, task: Task) -> EvalSet:
    if not path.is_file():
        raise EvalDataError(f"{path}: no such file")
    texts: list[str] = []
    labels: list[str] = []
    lines: list[int] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict) or "text" not in row or "label" not in row:
                raise EvalDataError(f"{path}:{lineno}: expected an object with 'text' and 'label'")
            text, label = row["text"], row["label"]
            if not isinstance(text, str) or not text.strip():
                raise EvalDataError(f"{path}:{lineno}: 'text' must be a non-empty string")
            texts.append(text)
            labels.append(_normalise_label(label, task, path, lineno))
            lines.append(lineno)
    if not texts:
        raise EvalDataError(f"{path}: no examples (empty file)")
    binary = task == "sentiment" and "neutral" not in labels
    return EvalSet(texts, labels, lines, binary)


def _normalise_label(label: object, task: Task, path: Path, lineno: int) -> str:
    if isinstance(label, bool) or not isinstance(label, str | int):
        raise EvalDataError(f"{path}:{lineno}: label must be a string (or 0/1 for sentiment)")
    if task == "sentiment":
        if isinstance(label, int) or label in {"0", "1"}:
            if int(label) not in (0, 1):
                raise EvalDataError(f"{path}:{lineno}: unknown sentiment label {label!r}")
            return "positive" if int(label) == 1 else "negative"
        if label.lower() not in SENTIMENT_LABELS:
            raise EvalDataError(
                f"{path}:{lineno}: unknown sentiment label {label!r} "
                f"(expected one of {', '.join(SENTIMENT_LABELS)} or 0/1)"
            )
        return label.lower()
    if not isinstance(label, str) or not label:
        raise EvalDataError(f"{path}:{lineno}: intent label must be a non-empty string")
    return label


def check_intent_labels(
    data: EvalSet, known: Sequence[str], oos: str | None, path: Path
) -> list[str]:
    """Map OOS aliases to the model's OOS label; reject labels the model cannot predict."""
    known_set = set(known)
    out = []
    for label, lineno in zip(data.labels, data.lines, strict=True):
        if label in OOS_ALIASES and oos is not None:
            out.append(oos)
        elif label in known_set:
            out.append(label)
        else:
            raise EvalDataError(
                f"{path}:{lineno}: unknown intent label {label!r}: the model does not know it"
            )
    return out


def score_intent(gold: list[str], pred: list[str], oos: str | None) -> dict[str, float]:
    result = {
        "n": float(len(gold)),
        "accuracy": accuracy(gold, pred),
        "macro_f1": macro_f1(gold, pred),
    }
    if oos is not None and oos in gold:
        result |= oos_metrics(gold, pred, oos)
    return result


def score_sentiment(gold: list[str], pred: list[str], binary: bool) -> dict[str, float]:
    labels = ("negative", "positive") if binary else SENTIMENT_LABELS
    return {
        "n": float(len(gold)),
        "accuracy": accuracy(gold, pred),
        "macro_f1": macro_f1(gold, pred, labels),
    }
