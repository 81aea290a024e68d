"""Length-bucketed batches and the cache of frozen lower-layer activations.

Sorting by length before batching keeps padding small; caching the frozen layers' output
once means each epoch only pays for the layers being tuned (the seed run's speed trick on CPU).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from thumbloop.model.network import ThumbloopModel

INTENT, SENTIMENT = 0, 1


@dataclass
class Batch:
    task: int
    hidden: torch.Tensor  # [B, T, H], output of the frozen lower layers
    mask: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B] class ids
    weights: torch.Tensor  # [B] per-example loss weight
    signs: torch.Tensor  # [B] +1: the label is right; -1: complementary (the label is wrong)
    soft: torch.Tensor | None = None  # [B, C] a teacher's probabilities (distillation)


def bucket(texts: Sequence[str], batch_size: int, seed: int) -> list[list[int]]:
    """Index lists of near-equal-length texts; the batch order is shuffled."""
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    random.Random(seed).shuffle(batches)
    return batches


def cache_lower(
    model: ThumbloopModel,
    tokenizer: PreTrainedTokenizerBase,
    task: int,
    texts: Sequence[str],
    labels: Sequence[int],
    weights: Sequence[float] | None,
    *,
    signs: Sequence[int] | None = None,
    frozen_layers: int,
    batch_size: int,
    max_length: int,
    device: torch.device,
    seed: int,
    desc: str,
    progress: bool = True,
) -> list[Batch]:
    out: list[Batch] = []
    was_training = model.training
    model.eval()
    w_all = list(weights) if weights is not None else [1.0] * len(texts)
    s_all = list(signs) if signs is not None else [1] * len(texts)
    with torch.no_grad():
        for idx in tqdm(
            bucket(texts, batch_size, seed),
            desc=desc,
            unit="batch",
            leave=False,
            disable=not progress,
        ):
            enc = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
            hidden = model.lower(ids, mask, frozen_layers)
            out.append(
                Batch(
                    task,
                    hidden,
                    mask,
                    torch.tensor([labels[i] for i in idx], device=device),
                    torch.tensor([w_all[i] for i in idx], dtype=torch.float32, device=device),
                    torch.tensor([s_all[i] for i in idx], dtype=torch.float32, device=device),
                )
            )
    model.train(was_training)
    return out
