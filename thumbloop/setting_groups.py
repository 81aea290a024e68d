"""The groups of settings, one per part that uses them (:class:`thumbloop.settings.Settings`
holds one of each). Each group reads its own ``THUMBLOOP_<FIELD>`` variables: a field keeps its
flat variable name whichever group holds it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DeviceName = Literal["auto", "cpu", "cuda"]

# The default key: public (it is in this file), so the bots accept it only in development mode.
DEV_KEY = "thumbloop-dev-secret-change-me"

# One prefix for every group, so a field's variable is THUMBLOOP_<FIELD> wherever it is grouped.
CONFIG = SettingsConfigDict(env_prefix="THUMBLOOP_", env_file=None, extra="ignore", frozen=True)


class ComputeSettings(BaseSettings):
    """Where the model runs: device, CPU threads and model processes."""

    model_config = CONFIG

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

    model_config = CONFIG

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
    model_batch_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A model process that has not answered a batch after this is taken for hung "
        "(stopped, deadlocked): it is killed and started again, and the batch fails (500), "
        "instead of its lane waiting forever. Long enough for a full batch on a slow CPU.",
    )
    low_confidence: float | None = Field(
        default=None, ge=0, le=1, description="Override the bundle's out-of-scope threshold."
    )


class ReplySettings(BaseSettings):
    """How a reply is chosen or written: templates, or the generator and its limits."""

    model_config = CONFIG

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

    model_config = CONFIG

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
    dev: bool = Field(
        default=False,
        description="Development mode: the bots start with the public development key and with "
        "a Telegram webhook secret under 32 characters. Never in production.",
    )


class LearningSettings(BaseSettings):
    """The feedback loop: when to retrain, how votes count, the gate and promotion."""

    model_config = CONFIG

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
    task_max_retries: int = Field(
        default=10,
        ge=0,
        description="Retries of a recording task on a database or broker error (waits drawn up to "
        "1 s, doubling to 60 s: at most about 5 minutes in all); after them it is a dead letter "
        "that `thumbloop redrive` and beat send again.",
    )
    redrive_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="How often beat sends dead letters (tasks out of retries) through the queue "
        "again.",
    )
    redrive_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Dead letters that failed more often than this (a bug, not an outage) are "
        "left for `thumbloop redrive --all`.",
    )
    reconcile_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="How often beat rebuilds the Redis reply posteriors from the votes table "
        "(a posterior write lost to a Redis blip is repaired by the next run).",
    )
    retention_days: int | None = Field(
        default=None,
        ge=0,
        description="Messages, replies and prompts of interactions older than this many days "
        "are replaced by NULL, daily (labels and votes stay; retrains skip those rows). Unset "
        "or 0: kept until the user asks to be forgotten (retrains learn from every vote).",
    )


class ReviewSettings(BaseSettings):
    """The review inbox (`thumbloop review`): its address, reviewers, sessions."""

    model_config = CONFIG

    review_host: str = Field(default="127.0.0.1", description="Address the review inbox binds.")
    review_port: int = Field(default=8090, ge=1, le=65535, description="Port of the review inbox.")
    review_users_file: Path | None = Field(
        default=None,
        description="Reviewers, one `name:scrypt$…` line each (`thumbloop review add-user NAME` "
        "writes it, mode 600); default: `home`/review-users.",
    )
    review_users: SecretStr | None = Field(
        default=None,
        description="More reviewers in the same `name:hash` form, comma-separated (containers); "
        "a name here wins over the file's.",
    )
    review_session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs reviewers' session cookies; default: a random key kept in "
        "`home`/review-session.key (mode 600).",
    )
    review_session_max_age_s: int = Field(
        default=43_200, ge=60, description="A reviewer's login lasts this long."
    )
    review_secure_cookie: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (behind TLS)."
    )
    review_low_confidence: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The inbox lists interactions whose predicted intent had less confidence.",
    )
    review_sync_interval_s: float = Field(
        default=5.0, gt=0, description="How often the inbox indexes new interactions."
    )


GROUPS: dict[str, type[BaseSettings]] = {
    "compute": ComputeSettings,
    "serving": ServingSettings,
    "replies": ReplySettings,
    "bots": BotSettings,
    "learning": LearningSettings,
    "review": ReviewSettings,
}
