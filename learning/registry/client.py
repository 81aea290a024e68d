"""The MLflow client every registry module shares: where the registry is, the experiment all runs
go to, and which version an alias points at."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from serving.admission import is_missing
from thumbloop.settings import Settings


def configure(settings: Settings) -> MlflowClient:
    settings.ensure_home()
    mlflow.set_tracking_uri(settings.effective_tracking_uri)
    mlflow.set_registry_uri(settings.effective_tracking_uri)
    return MlflowClient(settings.effective_tracking_uri, settings.effective_tracking_uri)


def experiment_id(settings: Settings, client: MlflowClient) -> str:
    exp = client.get_experiment_by_name(settings.experiment_name)
    if exp is not None:
        return str(exp.experiment_id)
    location = f"{settings.effective_artifact_root.rstrip('/')}/{settings.experiment_name}"
    return str(client.create_experiment(settings.experiment_name, artifact_location=location))


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at; None when the model or the alias does not exist. Any other
    failure (a refused login, an unreachable server) is raised: it must not read as "no
    champion", which would train and register a new seed over the real one."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise
