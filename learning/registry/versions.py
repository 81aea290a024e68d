"""MLflow: one run per training, the bundle as a registered model version, aliases."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
import pandas as pd

from learning.registry.client import alias_version, configure, experiment_id
from learning.registry.promotion import promote
from thumbloop.settings import Settings

log = logging.getLogger(__name__)

# The pyfunc model's own environment: what `mlflow models serve` would install.
PYFUNC_REQUIREMENTS = [
    "torch==2.13.0",
    "transformers>=5.24,<6",
    "safetensors>=0.8",
    "numpy>=2",
    "pandas",
    "thumbloop",
]


@dataclass
class Registered:
    run_id: str
    version: str
    aliases: list[str]


def log_and_register(
    settings: Settings,
    bundle_dir: Path,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: dict[str, Path],
    dicts: dict[str, Any],
    tags: dict[str, str],
    set_champion_if_missing: bool = True,
    inputs: list[tuple[list[Any], str]] | None = None,
) -> Registered:
    """Log a run with the bundle as a pyfunc model and register it as a new version."""
    client = configure(settings)
    exp = experiment_id(settings, client)
    with mlflow.start_run(experiment_id=exp, tags=tags) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        for name, obj in dicts.items():
            mlflow.log_dict(obj, name)
        for path in artifacts.values():
            mlflow.log_artifact(str(path))
        for rows, name in inputs or []:
            _log_dataset(rows, name)
        with warnings.catch_warnings():
            # predict takes a DataFrame or a list of texts; type hints would force one of them
            warnings.filterwarnings(
                "ignore", message=".*type hints? (to the `predict`|is inferred)"
            )
            # importing the entry point runs its set_model(): only when a model is logged
            import serving.pyfunc_entry as entry

            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=entry.__file__,  # models from code: nothing is pickled
                artifacts={"bundle": str(bundle_dir)},
                pip_requirements=PYFUNC_REQUIREMENTS,
                registered_model_name=settings.model_name,
            )
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    aliases: list[str] = []
    if set_champion_if_missing and alias_version(client, settings.model_name, "champion") is None:
        promote(settings, version, who="first-registration")
        aliases.append("champion")
        log.info("no champion yet: version %s is now @champion", version)
    return Registered(run_id, version, aliases)


def _log_dataset(rows: list[Any], name: str) -> None:
    """Record a training/evaluation input (as a table of its rows) in the active run."""
    frame = pd.DataFrame([_row(r) for r in rows])
    if frame.empty:
        return
    context = "evaluation" if "heldout" in name else "training"
    dataset = mlflow.data.from_pandas(frame, name=name)  # type: ignore[attr-defined]
    mlflow.log_input(dataset, context=context)


def _row(item: Any) -> Any:
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    return item
