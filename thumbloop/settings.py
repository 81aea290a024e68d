"""Runtime settings, read once from the environment (prefix ``THUMBLOOP_``) at an entry point.

Nothing else in the code base reads the environment: build a :class:`Settings` where the
process starts and pass it down. The settings are grouped by the part that uses them
(``settings.serving.max_batch_size``, ``settings.learning.retrain_min_votes``); every variable
keeps its flat name (``THUMBLOOP_MAX_BATCH_SIZE``), and ``Settings(max_batch_size=8)`` or
``settings.replace(max_batch_size=8)`` take the flat names too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from thumbloop.setting_groups import (  # re-exported: the groups are part of this interface
    CONFIG,
    DEV_KEY,
    GROUPS,
    BotSettings,
    ComputeSettings,
    DeviceName,
    LearningSettings,
    ReplySettings,
    ReviewSettings,
    ServingSettings,
)

__all__ = [
    "DEV_KEY",
    "GROUPS",
    "BotSettings",
    "ComputeSettings",
    "DeviceName",
    "LearningSettings",
    "ReplySettings",
    "ReviewSettings",
    "ServingSettings",
    "Settings",
]


class Settings(BaseSettings):
    """Where state lives (stores, registry, the key for ids) and one group per part."""

    model_config = CONFIG

    home: Path = Field(
        default=Path(".thumbloop"),
        description="Folder of the embedded default stores (SQLite files, MLflow artifacts).",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file under `home`."
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker; default: kombu SQLAlchemy transport on SQLite. In production "
        "amqp:// (RabbitMQ takes back a killed worker's tasks; redis:// can lose one in flight).",
    )
    result_backend: str | None = Field(default=None, description="Celery result backend.")
    redis_url: str | None = Field(
        default=None, description="Redis for shared state (history, posteriors); optional."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI; default: SQLite under `home`."
    )
    mlflow_artifact_root: str | None = Field(
        default=None, description="Where MLflow stores artifacts; default: `home`/mlartifacts."
    )
    model_name: str = Field(default="thumbloop", description="Registered model name in MLflow.")
    model_alias: str = Field(default="champion", description="Alias the serving worker follows.")
    experiment_name: str = Field(default="thumbloop", description="MLflow experiment of all runs.")
    hmac_secret: SecretStr = Field(
        default=SecretStr(DEV_KEY),
        description="The one key of deployments from before `id_key` and `signing_key`: each of "
        "them falls back to it. The default is a public development key the bots refuse outside "
        "`dev` mode.",
    )
    id_key: SecretStr | None = Field(
        default=None,
        description="Key that hashes user and chat ids (HMAC-SHA256); default: `hmac_secret`. "
        "Choose it once (`openssl rand -hex 32`): a new one makes every known user a stranger.",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="Key that signs the vote buttons; default: `hmac_secret`. Rotate it with "
        "`signing_key_previous` (docs/operations.md).",
    )
    signing_key_previous: SecretStr | None = Field(
        default=None,
        description="During a rotation, the signing key before `signing_key`: buttons it signed "
        "still count. Unset it to refuse them.",
    )

    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    replies: ReplySettings = Field(default_factory=ReplySettings)
    bots: BotSettings = Field(default_factory=BotSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)

    def __init__(self, **values: Any) -> None:
        # Flat names (``device="cpu"``) are part of the interface; the validator below groups
        # them, so the signature takes any keyword instead of the generated grouped one.
        super().__init__(**values)

    @model_validator(mode="before")
    @classmethod
    def _group_flat_names(cls, data: Any) -> Any:
        """Route flat keyword names (``device="cpu"``) into their group; the group's other
        fields still come from the environment, as they would without the keyword."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for group, model in GROUPS.items():
            given = data.get(group)
            if isinstance(given, BaseSettings):
                given = given.model_dump()
            flat = {k: data.pop(k) for k in list(data) if k in model.model_fields}
            if flat or isinstance(given, dict):
                data[group] = model(**{**(given or {}), **flat})
        return data

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @classmethod
    def fields(cls) -> dict[str, FieldInfo]:
        """Every setting by its flat name (the variable is ``THUMBLOOP_`` + the name, upper)."""
        found = {k: v for k, v in cls.model_fields.items() if k not in GROUPS}
        for model in GROUPS.values():
            found.update(model.model_fields)
        return found

    def flat(self) -> dict[str, Any]:
        """Every setting's value by its flat name."""
        values = {k: getattr(self, k) for k in type(self).model_fields if k not in GROUPS}
        for group in GROUPS:
            part = getattr(self, group)
            values.update({k: getattr(part, k) for k in type(part).model_fields})
        return values

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (flat names), validated like the original."""
        unknown = set(changes) - set(self.fields())
        if unknown:
            raise TypeError(f"not settings: {sorted(unknown)}")
        return type(self)(**{**self.flat(), **changes})

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'thumbloop.db'}"

    @property
    def effective_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def effective_artifact_root(self) -> str:
        return self.mlflow_artifact_root or (self.home / "mlartifacts").as_uri()

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.home / 'broker.db'}"

    @property
    def effective_result_backend(self) -> str:
        return self.result_backend or f"db+sqlite:///{self.home / 'results.db'}"

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.model_alias}"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
