"""Runtime settings, read once from the environment (prefix ``THUMBLOOP_``) at an entry point.

Nothing else in the code base reads the environment: build a :class:`Settings` where the
process starts and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DeviceName = Literal["auto", "cpu", "cuda"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="THUMBLOOP_", env_file=None, extra="ignore", frozen=True
    )

    home: Path = Field(
        default=Path(".thumbloop"),
        description="Folder of the embedded default stores (SQLite files, MLflow artifacts).",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file under `home`."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; default: kombu SQLAlchemy transport on SQLite."
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
    model_name: str = "thumbloop"
    model_alias: str = "champion"
    experiment_name: str = "thumbloop"
    device: DeviceName = "auto"
    cpu_threads: int | None = Field(
        default=None, ge=1, description="torch threads on CPU; default: all cores."
    )

    # serving
    serving_url: str = "http://127.0.0.1:8000"
    max_batch_size: int = Field(default=32, ge=1)
    max_wait_ms: float = Field(default=5.0, ge=0)
    sub_batch_size: int = Field(
        default=16, ge=1, description="A batch runs as length-sorted chunks of this size."
    )
    max_queue: int = Field(default=1024, ge=1)
    request_timeout_s: float = Field(default=10.0, gt=0)
    max_text_bytes: int = Field(default=16_384, ge=1)
    max_seq_len: int = Field(default=128, ge=8, le=512)
    watch_interval_s: float = Field(default=10.0, gt=0)
    low_confidence: float | None = Field(
        default=None, ge=0, le=1, description="Override the bundle's out-of-scope threshold."
    )
    reply_strategy: Literal["template"] = "template"

    # bots
    history_turns: int = Field(default=6, ge=0, le=20, description="Turns kept per conversation.")
    history_ttl_s: int = Field(default=86_400, ge=60, description="How long history is kept.")
    telegram_base_url: str = Field(
        default="https://api.telegram.org/bot",
        description="Bot API base in python-telegram-bot's base_url form (local servers, tests).",
    )
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="Slack Web API base (tests, proxies)."
    )

    # secrets
    hmac_secret: SecretStr = SecretStr("thumbloop-dev-secret-change-me")
    telegram_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None

    # learning
    domain_dir: Path = Field(
        default=Path("data/banking"), description="Domain the retrains replay and gate on."
    )
    auto_promote: bool = False
    retrain_check_interval_s: float = Field(default=60.0, gt=0)
    retrain_min_votes: int = Field(default=200, ge=1)
    retrain_max_age_s: float = Field(default=86_400.0, gt=0)
    retrain_lock_ttl_s: int = Field(default=3_600, ge=10)
    gate_tolerance: float = Field(default=0.005, ge=0, le=1)
    max_rater_share: float = Field(default=0.05, gt=0, le=1)
    visibility_timeout_s: int = Field(default=3_600, ge=1)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

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
