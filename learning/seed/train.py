"""Seed training: fine-tune the top encoder layers and both heads on a domain.

Phases: load -> cache (frozen lower layers, once) -> fine-tune (top layers + heads, both tasks
interleaved) -> refit (intent head) -> calibrate (OOS threshold on validation) -> evaluate ->
save the bundle. With few examples per intent (``TrainConfig.tuned_layers``) the encoder stays
frozen instead and fit-heads replaces fine-tune + refit: logistic regressions on its normalised
sentence embeddings.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoTokenizer, BertModel

from learning.seed.batches import INTENT, SENTIMENT, Batch, cache_lower
from learning.seed.budget import StepBudget
from learning.seed.calibrate import choose_oos_threshold
from learning.seed.config import TrainConfig
from learning.seed.heads import example_losses, fit_frozen_heads, refit_head
from thumbloop.contracts import SENTIMENT_LABELS
from thumbloop.domain import Domain
from thumbloop.model.bundle import LoadedBundle, save_bundle
from thumbloop.model.device import autocast_dtype, cpu_has_native_bf16, resolve_device
from thumbloop.model.encoder import default_encoder_path
from thumbloop.model.network import HeadsConfig, ThumbloopModel
from thumbloop.model.predictor import intent_predictions, predict_many
from thumbloop.scoring import accuracy, macro_f1, oos_metrics

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    bundle_dir: Path
    metrics: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)


class _Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        log.info("phase %s ...", name)
        start = time.perf_counter()
        result = fn()
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("phase %s done in %.1f s", name, self.seconds[name])
        return result


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def batch_loss(logits: torch.Tensor, b: Batch, ce: nn.Module) -> torch.Tensor:
    """Weighted mean of ``example_losses`` (or, for a teacher's soft targets, their
    cross-entropy)."""
    if b.soft is not None:  # distillation: match the teacher's distribution
        per_example = -(b.soft * torch.log_softmax(logits, -1)).sum(-1)
    else:
        per_example = example_losses(logits, b.labels, b.signs, ce)
    return (per_example * b.weights).sum() / b.weights.sum().clamp(min=1e-8)


def train_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of the fine-tuning steps: bf16/fp16 on CUDA, bf16 on a CPU with native
    bf16 (unless ``cfg.cpu_bf16`` is off), else None (fp32)."""
    return autocast_dtype(device, cfg.cpu_bf16 and cpu_has_native_bf16())


def fine_tune(
    model: ThumbloopModel,
    batches: list[Batch],
    cfg: TrainConfig,
    frozen: int,
    device: torch.device,
    progress: bool,
    budget: StepBudget | None = None,
) -> list[float]:
    """Tune the top ``n_layers - frozen`` layers and both heads; ``budget`` may cut the
    planned steps to what fits its deadline, or grow a cut plan back (the schedule then decays
    over the current total)."""
    budget = budget or StepBudget(deadline=None)
    tuned = [p for layer in model.encoder.encoder.layer[frozen:] for p in layer.parameters()]
    heads = list(model.intent_head.parameters()) + list(model.sentiment_head.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in tuned + heads:
        p.requires_grad_(True)
    groups = [{"params": heads, "lr": cfg.lr_heads}]
    if tuned:
        groups.append({"params": tuned, "lr": cfg.lr_encoder})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]

    def repeats(b: Batch) -> int:
        return cfg.intent_repeats if b.task == INTENT else 1

    total = budget.plan(cfg.epochs * sum(repeats(b) for b in batches))
    warmup = int(cfg.warmup_ratio * total)
    ce = nn.CrossEntropyLoss(reduction="none", label_smoothing=cfg.label_smoothing)
    dtype = train_dtype(cfg, device)
    model.train()
    rng = random.Random(cfg.seed)
    losses: list[float] = []
    step = 0
    bar = tqdm(total=total, desc="fine-tune", unit="step", disable=not progress)
    for epoch in range(cfg.epochs):
        order = [i for i, b in enumerate(batches) for _ in range(repeats(b))]
        rng.shuffle(order)
        running = 0.0
        for i in order:
            if step >= total:
                break
            b = batches[i]
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * _schedule(step, total, warmup)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                hidden = (
                    model.upper(b.hidden, b.mask, frozen) if frozen < model.n_layers else b.hidden
                )
                intent_logits, sentiment_logits = model.heads(model.pool(hidden, b.mask))
            logits = intent_logits if b.task == INTENT else sentiment_logits
            loss = batch_loss(logits.float(), b, ce)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tuned + heads, 1.0)
            opt.step()
            running += float(loss.detach())
            step += 1
            bar.update(1)
            if budget.step_done(step) != total:
                total = budget.total
                bar.total = total
                bar.refresh()
            if step % 50 == 0:
                bar.set_postfix(epoch=epoch + 1, loss=f"{running / 50:.3f}")
                losses.append(running / 50)
                running = 0.0
    bar.close()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return losses


def evaluate_bundle(
    bundle: LoadedBundle, domain: Domain, threshold: float | None = None, progress: bool = False
) -> tuple[dict[str, float], dict[str, Any]]:
    """Intent and sentiment metrics of a bundle on the domain's validation splits."""
    val = domain.validation
    p_int, _ = predict_many(bundle, [e.text for e in val], progress=progress)
    pred = intent_predictions(bundle, p_int, threshold)
    gold = [e.label for e in val]
    metrics = {
        "intent_accuracy": accuracy(gold, pred),
        "intent_macro_f1": macro_f1(gold, pred),
    }
    if bundle.out_of_scope:
        metrics |= {
            f"intent_{k}": v for k, v in oos_metrics(gold, pred, bundle.out_of_scope).items()
        }
    sval = domain.sentiment("validation")
    _, p_sent = predict_many(bundle, [e.text for e in sval], progress=progress)
    spred = [SENTIMENT_LABELS[i] for i in p_sent.argmax(1)]
    sgold = [e.label for e in sval]
    metrics |= {
        "sentiment_accuracy": accuracy(sgold, spred),
        "sentiment_macro_f1": macro_f1(sgold, spred, SENTIMENT_LABELS),
    }
    return metrics, {"intent_gold": gold, "intent_pred": pred}


def train_domain(
    domain: Domain,
    out_dir: Path,
    cfg: TrainConfig | None = None,
    encoder_path: Path | None = None,
    progress: bool = True,
) -> TrainResult:
    cfg = cfg or TrainConfig()
    _seed_everything(cfg.seed)
    phases = _Phases()
    budget = StepBudget.from_now(cfg.time_budget_s, cfg.tail_reserve_s)
    device = resolve_device(cfg.device)
    bf16 = train_dtype(cfg, device) is not None
    tuned = cfg.tuned_layers(len(domain.train), len(domain.intents), bf16)
    encoder_path = encoder_path or default_encoder_path()

    def load() -> tuple[ThumbloopModel, Any]:
        tok = AutoTokenizer.from_pretrained(encoder_path)
        enc = BertModel.from_pretrained(encoder_path, add_pooling_layer=False)
        hidden = int(enc.config.hidden_size)
        heads = HeadsConfig(n_intents=len(domain.intents), hidden_size=hidden, normalize=not tuned)
        return ThumbloopModel(enc, heads).to(device), tok

    model, tokenizer = phases.run("load", load)
    frozen = model.n_layers - tuned
    label_ids = {name: i for i, name in enumerate(domain.intents)}
    sent_ids: dict[str, int] = {name: i for i, name in enumerate(SENTIMENT_LABELS)}

    def cache() -> list[Batch]:
        common = dict(
            frozen_layers=frozen,
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            device=device,
            seed=cfg.seed,
        )
        train = domain.train
        batches = cache_lower(
            model,
            tokenizer,
            INTENT,
            [e.text for e in train],
            [label_ids[e.label] for e in train],
            None,
            desc="cache intents",
            progress=progress,
            **common,  # type: ignore[arg-type]
        )
        sent = domain.sentiment("train")
        if cfg.max_sentiment_examples and len(sent) > cfg.max_sentiment_examples:
            sent = random.Random(cfg.seed).sample(sent, cfg.max_sentiment_examples)
        batches += cache_lower(
            model,
            tokenizer,
            SENTIMENT,
            [e.text for e in sent],
            [sent_ids[e.label] for e in sent],
            None,
            desc="cache sentiment",
            progress=progress,
            **common,  # type: ignore[arg-type]
        )
        return batches

    batches = phases.run("cache", cache)
    losses: list[float] = []
    if not tuned:
        phases.run("fit_heads", lambda: fit_frozen_heads(model, batches, cfg.head_c))
    else:
        losses = phases.run(
            "fine_tune", lambda: fine_tune(model, batches, cfg, frozen, device, progress, budget)
        )
        phases.run("refit_heads", lambda: refit_head(model, batches, cfg, frozen))
    model.eval()
    batches.clear()  # free the cached activations before evaluation
    bundle = LoadedBundle(
        model,
        tokenizer,
        {
            "intents": list(domain.intents),
            "sentiments": list(SENTIMENT_LABELS),
            "out_of_scope": domain.out_of_scope,
        },
        domain.responses,
        device,
    )

    def calibrate() -> tuple[float, dict[str, float]]:
        if bundle.out_of_scope is None:
            return 0.0, {}
        val = domain.validation
        p_int, _ = predict_many(bundle, [e.text for e in val])
        gold = np.array([label_ids[e.label] for e in val])
        return choose_oos_threshold(
            p_int, gold, label_ids[domain.out_of_scope], cfg.max_inscope_drop
        )

    threshold, calib = phases.run("calibrate", calibrate)
    bundle.meta["oos_threshold"] = threshold
    metrics, preds = phases.run(
        "evaluate", lambda: evaluate_bundle(bundle, domain, progress=progress)
    )
    metrics["oos_threshold"] = threshold
    metrics["final_loss"] = losses[-1] if losses else math.nan
    metrics["tuned_layers"] = tuned
    metrics["fine_tune_steps"] = budget.total
    metrics["fine_tune_planned_steps"] = budget.planned
    meta = {
        "domain": domain.name,
        "intents": list(domain.intents),
        "sentiments": list(SENTIMENT_LABELS),
        "out_of_scope": domain.out_of_scope,
        "oos_threshold": threshold,
        "encoder_source": str(encoder_path),
        "train_config": cfg.model_dump(),
        "validation_metrics": metrics,
    }
    bundle_dir = phases.run(
        "save",
        lambda: save_bundle(out_dir, model.cpu(), tokenizer, meta, domain.root / "responses.json"),
    )
    log.info("calibration: %s", calib)
    return TrainResult(bundle_dir, metrics, phases.seconds, preds | {"losses": losses})
