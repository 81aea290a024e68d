"""Runtime settings, read once from the environment (prefix ``THUMBLOOP_``) at an entry point.

Nothing else in the code base reads the environment: build a :class:`Settings` where the
process starts and pass it down. The settings are grouped by the part that uses them
(``settings.serving.max_batch_size``, ``settings.learning.retrain_min_votes``); every variable
keeps its flat name (``THUMBLOOP_MAX_BATCH_SIZE``), and ``Settings(max_batch_size=8)`` or
``settings.replace(max_batch_size=8)`` take the flat names too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

DeviceName = Literal["auto", "cpu", "cuda"]

# One prefix for every group, so a field's variable is THUMBLOOP_<FIELD> wherever it is grouped.
_CONFIG = SettingsConfigDict(env_prefix="THUMBLOOP_", env_file=None, extra="ignore", frozen=True)


class ComputeSettings(BaseSettings):
    """Where the model runs: device, CPU threads and model processes."""

    model_config = _CONFIG

    device: DeviceName = Field(
        default="auto", description="`auto` (CUDA when present), `cpu` or `cuda`."
    )
    cpu_bf16: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Serving on a CPU: bf16 autocast; `auto` = where the CPU has native bf16 "
        "(AVX512-BF16, AMX).",
    )
    cpu_threads: int | None = Field(
        default=None, ge=1, description="torch threads on CPU; default: all cores."
    )
    model_processes: int | None = Field(
        default=None,
        ge=0,
        description="Serving on a CPU: run batches in this many model processes at once, each "
        "with an equal share of `cpu_threads`; 0 = in the server process. Default: one per core "
        "(at most 4) where there are 2 cores or more.",
    )


class ServingSettings(BaseSettings):
    """The serving worker: its address, batching, limits and the alias watch."""

    model_config = _CONFIG

    serving_url: str = Field(
        default="http://127.0.0.1:8000", description="Where bots and chat reach the serving worker."
    )
    max_batch_size: int = Field(
        default=32, ge=1, description="Most requests in one forward pass; 1 turns batching off."
    )
    max_wait_ms: float = Field(
        default=3.0,
        ge=0,
        description="How long a batch that is not full waits for company, from the later of "
        "its first request's arrival and the end of the previous batch (not when traffic is one "
        "request at a time).",
    )
    sub_batch_size: int = Field(
        default=32,
        ge=1,
        description="A batch runs as length-sorted chunks of this size, each answered when done.",
    )
    max_queue: int = Field(
        default=1024, ge=1, description="Requests waiting beyond this get 503 + Retry-After."
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="A request still queued after this gets 504."
    )
    max_text_bytes: int = Field(default=16_384, ge=1, description="Longer messages get 413.")
    max_seq_len: int = Field(
        default=128, ge=8, le=512, description="Tokens the encoder reads; longer text is cut."
    )
    watch_interval_s: float = Field(
        default=10.0, gt=0, description="How often serving checks the alias for a new version."
    )
    low_confidence: float | None = Field(
        default=None, ge=0, le=1, description="Override the bundle's out-of-scope threshold."
    )


class ReplySettings(BaseSettings):
    """How a reply is chosen or written: templates, or the generator and its limits."""

    model_config = _CONFIG

    reply_strategy: Literal["template", "generative"] = Field(
        default="template",
        description="`template` (written variants + Thompson) or `generative` (an instruct LM "
        "grounded in the variants; templates on fallback).",
    )
    generator: str = Field(
        default="smollm2",
        description="Generative replies: `smollm2` (bundled GGUF, converted once under `home`) "
        "or a folder with a Hugging Face causal LM.",
    )
    generator_max_new_tokens: int = Field(
        default=48, ge=1, le=512, description="Most tokens one generated reply may have."
    )
    generator_temperature: float = Field(
        default=0.0, ge=0, le=2, description="Sampling temperature; 0 decodes greedily."
    )
    generator_top_p: float = Field(default=0.9, gt=0, le=1, description="Nucleus sampling mass.")
    generator_budget_ms: float = Field(
        default=2_500.0,
        gt=0,
        description="Most time one generation batch (and the wait for it) may take; "
        "replies over it fall back to templates.",
    )
    generator_max_batch_size: int = Field(
        default=8, ge=1, description="Most replies generated together in one batch."
    )
    generator_max_chars: int = Field(
        default=400, ge=40, description="Generated replies are cut to this at a sentence end."
    )
    generator_history_turns: int = Field(
        default=4, ge=0, le=20, description="Recent turns of the conversation in the prompt."
    )


class BotSettings(BaseSettings):
    """The chat adapters: conversation history, platform endpoints and tokens."""

    model_config = _CONFIG

    history_turns: int = Field(default=6, ge=0, le=20, description="Turns kept per conversation.")
    history_ttl_s: int = Field(default=86_400, ge=60, description="How long history is kept.")
    telegram_base_url: str = Field(
        default="https://api.telegram.org/bot",
        description="Bot API base in python-telegram-bot's base_url form (local servers, tests).",
    )
    telegram_base_file_url: str = Field(
        default="https://api.telegram.org/file/bot", description="Bot API file base (tests)."
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="Slack Web API base (tests, proxies)."
    )
    telegram_token: SecretStr | None = Field(
        default=None, description="BotFather token; enables the Telegram bot."
    )
    telegram_webhook_secret: SecretStr | None = Field(
        default=None, description="Webhook mode: the secret_token Telegram must send."
    )
    slack_bot_token: SecretStr | None = Field(
        default=None, description="Slack bot token (xoxb-…); enables the Slack bot."
    )
    slack_app_token: SecretStr | None = Field(
        default=None, description="Slack app-level token (xapp-…): Socket Mode."
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Slack signing secret: HTTP Events API mode."
    )


class LearningSettings(BaseSettings):
    """The feedback loop: when to retrain, how votes count, the gate and promotion."""

    model_config = _CONFIG

    domain_dir: Path = Field(
        default=Path("data/banking"), description="Domain the retrains replay and gate on."
    )
    auto_promote: bool = Field(
        default=False, description="Make a candidate that passes the gate champion at once."
    )
    retrain_check_interval_s: float = Field(
        default=60.0, gt=0, description="How often beat asks whether a retrain is due."
    )
    retrain_min_votes: int = Field(
        default=200, ge=1, description="New votes that make a retrain due."
    )
    clarifying_votes: bool = Field(
        default=True,
        description="Retrains learn from thumbs on clarifying replies (the model judged the "
        "message out of scope): a 👍 labels it out of scope, a 👎 says it is not. Off: those "
        "votes are ignored, for raters who 👍 a clarification because it offered the right "
        "intent (docs/feedback-loop.md has the simulator's measurement).",
    )
    retrain_max_age_s: float = Field(
        default=86_400.0, gt=0, description="Or: the oldest unused vote is this old."
    )
    retrain_lock_ttl_s: int = Field(
        default=3_600, ge=10, description="Single-flight lock expiry (a crashed retrain frees it)."
    )
    gate_tolerance: float = Field(
        default=0.005, ge=0, le=1, description="Largest golden-accuracy drop a candidate may have."
    )
    generator_min_votes: int = Field(
        default=32,
        ge=2,
        description="Rated generated replies (with both 👍 and 👎) a retrain needs before it also "
        "trains the reply generator (KTO + LoRA); fewer: the champion's generator is kept.",
    )
    generator_min_new_votes: int = Field(
        default=16,
        ge=1,
        description="Rated generated replies newer than the last generator training a retrain "
        "needs before it trains the generator again (a KTO round and its gate are the longest part "
        "of a retrain on a CPU); fewer: the champion's generator is kept.",
    )
    generator_golden_prompts: int = Field(
        default=32,
        ge=1,
        description="Validation messages the generator gate writes replies for (coverage of the "
        "reference's facts, length, guard-rail fallbacks), champion vs candidate.",
    )
    max_rater_share: float = Field(
        default=0.05, gt=0, le=1, description="Most of a retrain's votes one rater may supply."
    )
    visibility_timeout_s: int = Field(
        default=3_600,
        ge=1,
        description="Redis broker: a task taken by a worker that died is redelivered this many "
        "seconds after it was taken (checked every quarter of it, 1-60 s).",
    )


GROUPS: dict[str, type[BaseSettings]] = {
    "compute": ComputeSettings,
    "serving": ServingSettings,
    "replies": ReplySettings,
    "bots": BotSettings,
    "learning": LearningSettings,
}


class Settings(BaseSettings):
    """Where state lives (stores, registry, the key for ids) and one group per part."""

    model_config = _CONFIG

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
    model_name: str = Field(default="thumbloop", description="Registered model name in MLflow.")
    model_alias: str = Field(default="champion", description="Alias the serving worker follows.")
    experiment_name: str = Field(default="thumbloop", description="MLflow experiment of all runs.")
    hmac_secret: SecretStr = Field(
        default=SecretStr("thumbloop-dev-secret-change-me"),
        description="Key that hashes user ids and signs vote buttons; set your own.",
    )

    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    replies: ReplySettings = Field(default_factory=ReplySettings)
    bots: BotSettings = Field(default_factory=BotSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)

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
