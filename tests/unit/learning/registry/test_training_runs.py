"""Every training, seed or retrain, leaves a row in ``training_runs`` beside its MLflow run."""

from __future__ import annotations

from pathlib import Path

from learning.registry.training_runs import finish_run, start_run
from thumbloop.store.db import make_engine, session_scope, upgrade
from thumbloop.store.schema import TrainingRunRow


def test_a_finished_run_keeps_its_version_and_numeric_metrics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            run_id = start_run(s, "retrain")
        with session_scope(engine) as s:
            running = s.get(TrainingRunRow, run_id)
            assert running is not None and running.status == "running"
            finish_run(
                s,
                run_id,
                status="passed",
                mlflow_run_id="m1",
                model_version="3",
                n_votes=12,
                metrics={"seconds": 1.5, "fine_tune_steps": 4, "note": "not a number"},
            )
            finish_run(  # a run that is not there: nothing to finish
                s,
                run_id + 1,
                status="passed",
                mlflow_run_id=None,
                model_version=None,
                n_votes=0,
                metrics={},
            )
        with session_scope(engine) as s:
            row = s.get(TrainingRunRow, run_id)
            assert row is not None and s.get(TrainingRunRow, run_id + 1) is None
            assert (row.kind, row.status, row.mlflow_run_id, row.model_version, row.n_votes) == (
                "retrain",
                "passed",
                "m1",
                "3",
                12,
            )
            assert row.metrics == {"seconds": 1.5, "fine_tune_steps": 4.0}
            assert row.finished_at is not None
    finally:
        engine.dispose()
