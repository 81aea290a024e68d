"""The ``training_runs`` table: how every registered version was trained (seed or retrain), beside
its MLflow run, so the database alone tells which votes a version learned from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from thumbloop.store.schema import TrainingRunRow


def start_run(session: Session, kind: str, started_at: datetime | None = None) -> int:
    row = TrainingRunRow(
        kind=kind, status="running", metrics={}, started_at=started_at or datetime.now(UTC)
    )
    session.add(row)
    session.flush()
    return int(row.id)


def finish_run(
    session: Session,
    run_id: int,
    *,
    status: str,
    mlflow_run_id: str | None,
    model_version: str | None,
    n_votes: int,
    metrics: dict[str, Any],
) -> None:
    row = session.get(TrainingRunRow, run_id)
    if row is None:
        return
    row.status = status
    row.mlflow_run_id = mlflow_run_id
    row.model_version = model_version
    row.n_votes = n_votes
    row.metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    row.finished_at = datetime.now(UTC)
