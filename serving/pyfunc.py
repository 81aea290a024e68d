"""The bundle as an MLflow pyfunc model, so `mlflow.pyfunc.load_model` users can call it too.

Serving does not go through this class: it loads ``artifacts/bundle`` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.pyfunc import PythonModel


class ThumbloopPyfunc(PythonModel):  # type: ignore[misc]
    def load_context(self, context: Any) -> None:
        # torch only once MLflow loads the model: the registry imports the entry file that
        # imports this module just to log it
        from thumbloop.model.bundle import load_bundle
        from thumbloop.model.device import resolve_device

        self._bundle = load_bundle(Path(context.artifacts["bundle"]), resolve_device("auto"))

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import pandas as pd  # as in load_context: nothing heavy until the model is used

        from thumbloop.model.predictor import intent_predictions, predict_many

        if isinstance(model_input, pd.DataFrame):
            texts = [str(t) for t in model_input["text"]]
        else:
            texts = [str(t) for t in model_input]
        p_int, p_sent = predict_many(self._bundle, texts)
        sentiments = self._bundle.sentiments
        names = intent_predictions(self._bundle, p_int)
        rows = []
        for intent, pi, ps in zip(names, p_int, p_sent, strict=True):
            rows.append(
                {
                    "intent": intent,
                    "intent_confidence": float(pi.max()),
                    "sentiment": sentiments[int(ps.argmax())],
                    "sentiment_score": float(ps.max()),
                }
            )
        return pd.DataFrame(rows)
