"""A model registered before the layout moved still loads: MLflow keeps a copy of the entry file
that was logged with it ("models from code"), and that copy imports ``serving.pyfunc``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.tiny_bundle import INTENTS, SENTIMENTS, make_tiny_bundle

# serving/pyfunc_entry.py as commit 416e38f logged it, before the move into sub-packages
ENTRY_416E38F = Path(__file__).parent / "fixtures" / "pyfunc_entry_416e38f.py"
TEXTS = ["where is my card?", "I want to change my PIN", "hello", "what is the meaning of life"]


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh MLflow store for this test; the process's tracking URI is put back after it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # mlflow sets it too; restored at teardown
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)


def _log_as_before(bundle_dir: Path, tmp_path: Path) -> str:
    """Log the bundle the way learning/registry/versions.py did at 416e38f."""
    entry = tmp_path / "pyfunc_entry.py"
    shutil.copyfile(ENTRY_416E38F, entry)
    experiment = mlflow.create_experiment(
        "pyfunc-compat", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(entry),
            artifacts={"bundle": str(bundle_dir)},
            pip_requirements=["thumbloop"],  # nothing to infer: the test loads it in process
        )
    return str(info.model_uri)


def test_a_model_logged_with_the_previous_entry_file_loads_and_predicts(
    tracking: str, tmp_path: Path
) -> None:
    bundle_dir = make_tiny_bundle(tmp_path / "bundle")
    model = mlflow.pyfunc.load_model(_log_as_before(bundle_dir, tmp_path))
    out = model.predict(pd.DataFrame({"text": TEXTS}))
    assert list(out.columns) == ["intent", "intent_confidence", "sentiment", "sentiment_score"]
    assert len(out) == len(TEXTS)
    assert set(out["intent"]) <= set(INTENTS)
    assert set(out["sentiment"]) <= set(SENTIMENTS)
    for column in ("intent_confidence", "sentiment_score"):
        assert ((out[column] >= 0.0) & (out[column] <= 1.0)).all(), out[column]
    # a plain list of texts is taken too
    assert list(model.predict(TEXTS)["intent"]) == list(out["intent"])
