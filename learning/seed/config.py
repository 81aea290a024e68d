"""Training arguments: validated, frozen, logged with every run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    layers_to_tune: int | None = Field(
        default=None,
        ge=0,
        le=6,
        description="Top encoder layers fine-tuned; the rest stay frozen. Default: all six when "
        "training runs in bf16 (CUDA, or a CPU with native bf16), else the top two: an fp32 step "
        "costs far more, and tuning fewer layers keeps the seed within its time budget.",
    )
    epochs: int = Field(default=2, ge=1)
    batch_size: int = Field(default=32, ge=1)
    max_length: int = Field(default=64, ge=8, le=512)
    lr_encoder: float = Field(default=2e-4, gt=0)
    lr_heads: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    label_smoothing: float = Field(default=0.05, ge=0, lt=1)
    intent_repeats: int = Field(
        default=2, ge=1, description="Intent batches are seen this many times per epoch."
    )
    refit_steps: int = Field(
        default=300,
        ge=0,
        description="Full-batch steps refitting the intent head after fine-tuning.",
    )
    min_tune_per_intent: int = Field(
        default=80,
        ge=0,
        description="The encoder is fine-tuned only with at least this many labelled examples "
        "per intent on average; with fewer it stays frozen and the heads are logistic "
        "regressions on its normalised sentence embeddings: on few labels fine-tuning overfits "
        "and loses what the pretrained encoder knew, while frozen embeddings generalise. The "
        "default is about where tuning starts to win on the shipped domains.",
    )
    head_c: float = Field(
        default=10.0, gt=0, description="Inverse L2 strength (C) of those logistic regressions."
    )

    def tuned_layers(self, n_examples: int, n_intents: int, bf16: bool = False) -> int:
        """Encoder layers to fine-tune on ``n_examples`` labelled rows: 0 when few-shot."""
        if n_examples < self.min_tune_per_intent * n_intents:
            return 0
        if self.layers_to_tune is not None:
            return self.layers_to_tune
        return 6 if bf16 else 2

    max_sentiment_examples: int | None = Field(
        default=24_000,
        ge=1,
        description="Cap on sentiment training rows (None: all): a sample teaches the sentiment "
        "head, and every row costs fine-tuning time that a CPU seed's budget cannot spare.",
    )
    max_inscope_drop: float = Field(
        default=0.01, ge=0, le=1, description="In-scope accuracy the OOS threshold may cost."
    )
    cpu_bf16: bool = Field(
        default=True,
        description="Fine-tune under bf16 autocast on a CPU with native bf16 (AVX512-BF16, AMX), "
        "whose matrix units run bf16 far faster than fp32; weights, optimiser and loss stay "
        "fp32.",
    )
    time_budget_s: float | None = Field(
        default=540,
        gt=0,
        description="Wall-clock budget of a training run, load to saved bundle (MLflow logging "
        "adds a few seconds): fine-tuning stops planning steps that would run past it, less "
        "``tail_reserve_s``, measured on its own step rate. Step rates differ by more than twice "
        "between CPUs, so no fixed number of epochs keeps the seed under ten minutes on the slow "
        "ones. None: no limit.",
    )
    tail_reserve_s: float = Field(
        default=75,
        ge=0,
        description="Seconds kept for what follows fine-tuning (refit, calibrate, evaluate, "
        "save): the measured step rate does not cover that work, so the budget sets it aside.",
    )
    seed: int = 0
    device: str = "auto"
