"""Linear heads fit on pooled sentence embeddings (computed once, so fitting is cheap).

After fine-tuning, ``refit_head`` takes the intent head the rest of the way to its optimum; with
a frozen encoder (the few-shot recipe) ``fit_logistic`` makes a head a logistic regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from learning.seed.batches import INTENT, SENTIMENT, Batch
from learning.seed.config import TrainConfig
from thumbloop.model.network import ThumbloopModel


def example_losses(
    logits: torch.Tensor, labels: torch.Tensor, signs: torch.Tensor, ce: nn.Module
) -> torch.Tensor:
    """Cross-entropy for ordinary labels; for complementary ones (sign -1, "the label is wrong",
    e.g. a 👎) the complementary log-loss -log(1 - p_label) of Ishida et al. pushes the wrong
    class down without claiming which class is right."""
    per_example: torch.Tensor = ce(logits, labels)
    if bool((signs < 0).any()):
        p_label = torch.softmax(logits, -1).gather(1, labels[:, None]).squeeze(1)
        complementary = -torch.log1p(-p_label.clamp(max=1 - 1e-6))
        per_example = torch.where(signs < 0, complementary, per_example)
    return per_example


@dataclass
class Features:
    x: torch.Tensor  # [N, H] pooled sentence embeddings
    labels: torch.Tensor
    weights: torch.Tensor
    signs: torch.Tensor


def features(model: ThumbloopModel, batches: list[Batch], frozen: int, task: int) -> Features:
    """One task's rows as pooled embeddings of the encoder as it is now."""
    parts: list[tuple[torch.Tensor, ...]] = []
    with torch.no_grad():
        for b in batches:
            if b.task != task:
                continue
            hidden = model.upper(b.hidden, b.mask, frozen) if frozen < model.n_layers else b.hidden
            parts.append((model.pool(hidden, b.mask).float(), b.labels, b.weights, b.signs))
    if not parts:
        empty = torch.empty(0)
        return Features(torch.empty(0, model.config.hidden_size), empty.long(), empty, empty)
    x, labels, weights, signs = (torch.cat(p) for p in zip(*parts, strict=True))
    return Features(x, labels, weights, signs)


def refit_head(
    model: ThumbloopModel, batches: list[Batch], cfg: TrainConfig, frozen: int, task: int = INTENT
) -> None:
    """Fit one head to convergence on the tuned encoder's pooled features (cheap: the features
    are computed once); fine-tuning alone leaves a linear head short of its optimum."""
    if cfg.refit_steps == 0:
        return
    f = features(model, batches, frozen, task)
    keep = f.signs > 0  # complementary rows say nothing about the right class
    x, y = f.x[keep], f.labels[keep]
    if not len(y):
        return
    head = model.intent_head if task == INTENT else model.sentiment_head
    head.requires_grad_(True)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr_heads, weight_decay=cfg.weight_decay)
    ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    for _ in range(cfg.refit_steps):
        loss = ce(head(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    head.requires_grad_(False)


def fit_logistic(head: nn.Linear, f: Features, c: float, max_iter: int = 500) -> None:
    """Fit a linear head to convergence (L-BFGS) on scikit-learn's logistic-regression objective:
    the weighted mean of ``example_losses`` + |W|^2 / (2 C n), the bias unpenalised."""
    if not len(f.labels):
        return
    l2 = 1.0 / (2 * c * len(f.labels))
    ce = nn.CrossEntropyLoss(reduction="none")
    head.requires_grad_(True)
    opt = torch.optim.LBFGS(
        head.parameters(), max_iter=max_iter, tolerance_change=1e-9, line_search_fn="strong_wolfe"
    )

    def objective() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        per_example = example_losses(head(f.x), f.labels, f.signs, ce)
        loss = (per_example * f.weights).sum() / f.weights.sum() + l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(objective)
    head.requires_grad_(False)


def fit_frozen_heads(model: ThumbloopModel, batches: list[Batch], c: float) -> None:
    """The few-shot seed: both heads are logistic regressions on the frozen encoder's
    normalised sentence embeddings."""
    for task, head in ((INTENT, model.intent_head), (SENTIMENT, model.sentiment_head)):
        fit_logistic(head, features(model, batches, model.n_layers, task), c)
