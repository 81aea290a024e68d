"""What KTO learns from: the raters' verdicts on generated replies as unpaired examples, the
held-out split that judges an adapter, the class weights that balance 👍 against 👎, and the
hyper-parameters of one round. No model here: the retrain's vote handling imports it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Messages = list[dict[str, str]]
# KTO paper, eq. 8: keep (desirable_weight * n_desirable) / (undesirable_weight * n_undesirable)
# in [1, 4/3]; aim at the middle so rounding never leaves the range
TARGET_RATIO = 7 / 6


class KtoConfig(BaseModel):
    """Hyper-parameters of one KTO + LoRA round; defaults fit SmolLM2-135M on a CPU."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(
        0.1, gt=0, description="KTO's β: how far the policy may move from the base (higher: less)"
    )
    learning_rate: float = Field(
        2e-4, gt=0, description="AdamW step size for the LoRA weights (TRL's 1e-6 is for full FT)"
    )
    epochs: int = Field(2, ge=1, description="passes over the training votes")
    batch_size: int = Field(
        8, ge=2, description="examples per step; KTO's KL estimate needs at least 2 per batch"
    )
    lora_r: int = Field(16, ge=1, description="LoRA rank (fresh adapters only)")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator: scale = alpha / r")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA branch")
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
        description="modules that get a LoRA branch: attention and MLP projections (Llama names)",
    )
    max_length: int = Field(
        512, ge=16, description="prompt + reply tokens; longer ones are cut from the right"
    )
    seed: int = Field(0, description="seeds adapter init, example order and the held-out split")
    heldout: float = Field(
        0.2, ge=0, lt=1, description="share of votes kept out of training to judge the adapter"
    )


@dataclass(frozen=True)
class ReplyJudgement:
    """The raters' verdict on one generated reply: KTO's unpaired desirable/undesirable label."""

    interaction_id: str
    prompt: list[dict[str, Any]] = field(hash=False)
    completion: str
    desirable: bool
    weight: float
    at: datetime
    generator: str | None = None


@dataclass(frozen=True)
class KtoExample:
    key: str  # the interaction id
    prompt: Messages  # chat messages exactly as the generator saw them
    completion: str  # the generated reply that was rated
    label: bool  # True = 👍 (desirable)


def _unit_hash(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_heldout(
    examples: Sequence[KtoExample], frac: float, seed: int = 0
) -> tuple[list[KtoExample], list[KtoExample]]:
    """(train, held-out) by a hash of each key: a vote keeps its side as more votes arrive."""
    train: list[KtoExample] = []
    heldout: list[KtoExample] = []
    for ex in examples:
        (heldout if _unit_hash(ex.key, seed) < frac else train).append(ex)
    return train, heldout


def class_weights(n_desirable: int, n_undesirable: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight) for unbalanced votes, averaging 1 per example so the
    loss keeps its scale; (1, 1) when a class is missing (there is nothing to balance)."""
    nd, nu = n_desirable, n_undesirable
    if nd <= 0 or nu <= 0:
        return 1.0, 1.0
    n = nd + nu
    undesirable = n / (nu * (1 + TARGET_RATIO))
    desirable = TARGET_RATIO * undesirable * nu / nd
    return desirable, undesirable
