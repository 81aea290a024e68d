"""Score a loaded bundle on an evaluation file (the engine behind ``thumbloop eval``)."""

from __future__ import annotations

from pathlib import Path

from thumbloop.evaldata import (
    Task,
    check_intent_labels,
    read_eval_file,
    score_intent,
    score_sentiment,
)
from thumbloop.model.bundle import LoadedBundle
from thumbloop.model.predictor import intent_predictions, predict_many


def evaluate_file(
    bundle: LoadedBundle, path: Path, task: Task, progress: bool = False
) -> dict[str, float]:
    data = read_eval_file(path, task)
    if task == "intent":
        gold = check_intent_labels(data, bundle.intents, bundle.out_of_scope, path)
        p_int, _ = predict_many(bundle, data.texts, progress=progress)
        return score_intent(gold, intent_predictions(bundle, p_int), bundle.out_of_scope)
    _, p_sent = predict_many(bundle, data.texts, progress=progress)
    names = bundle.sentiments
    if data.binary:
        neg, pos = names.index("negative"), names.index("positive")
        pred = ["positive" if p[pos] >= p[neg] else "negative" for p in p_sent]
    else:
        pred = [names[int(i)] for i in p_sent.argmax(1)]
    return score_sentiment(data.labels, pred, data.binary)
