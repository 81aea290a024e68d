"""KTO on thumbs: teach the reply generator which of its own replies users liked.

Every rated generated reply is one unpaired example (prompt as the generator saw it, the reply,
👍 or 👎), which is exactly what KTO (Ethayarajh et al., 2024) learns from; TRL's ``KTOTrainer``
does the optimisation and a LoRA adapter (peft) is what is trained and shipped, a few MB beside
the untouched base.

The reference policy is always the untuned base: a fresh adapter is created through TRL's
``peft_config`` (reference = adapter disabled), and a champion adapter is continued by loading its
weights into that fresh adapter after the trainer is built. (Handing TRL a loaded ``PeftModel``
would make it copy the champion as the reference instead.) So every round stays anchored to the
base by the same KL term, and the implied rewards of different rounds are on one scale.

What the votes are (``kto_data``), how an adapter is loaded and saved (``adapter``) and how it
is judged (``evaluate``) live beside this trainer.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from learning.generator.adapter import load_base, load_tokenizer, save_adapter
from learning.generator.kto_data import KtoConfig, KtoExample, class_weights
from serving.generator.source import GeneratorSource

log = logging.getLogger(__name__)


@dataclass
class AdapterResult:
    folder: Path
    version: str
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    n_desirable: int = 0
    n_undesirable: int = 0


def _bf16(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def train_adapter(
    start: GeneratorSource,
    examples: Sequence[KtoExample],
    cfg: KtoConfig,
    out: Path,
    *,
    base_spec: str,
    device: torch.device,
    progress: bool = False,
) -> AdapterResult:
    """Train a LoRA adapter with KTO on ``examples`` and save it to ``out`` as a generator folder
    (adapter + ``generator.json`` naming ``base_spec``) that ``load_generator`` serves.

    ``start`` is the champion: a plain model (a fresh adapter with ``cfg``'s LoRA shape is made) or
    an adapter over a base (it is continued, keeping its own LoRA shape)."""
    # the trainer stack (trl, peft, datasets) loads only when a generator trains: most retrains
    # skip that part
    import datasets
    from peft import LoraConfig
    from peft.utils import load_peft_weights, set_peft_model_state_dict
    from transformers import PrinterCallback
    from trl import KTOConfig, KTOTrainer

    if len(examples) < 2:
        raise ValueError(f"KTO needs at least 2 examples, got {len(examples)}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: not empty")
    began = time.perf_counter()
    n_desirable = sum(ex.label for ex in examples)
    n_undesirable = len(examples) - n_desirable
    desirable_weight, undesirable_weight = class_weights(n_desirable, n_undesirable)
    # TRL samples sequentially and pairs each reply with its batch neighbours' prompts for the KL
    # estimate: shuffle once so batches mix intents and labels (votes arrive in time order)
    rows = list(examples)
    random.Random(cfg.seed).shuffle(rows)
    batch_size = min(cfg.batch_size, len(rows))
    bars_were_on = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    tokenizer = load_tokenizer(start)
    model = load_base(start)
    if start.is_adapter:
        lora = LoraConfig.from_pretrained(str(start.folder))
        lora.inference_mode = False
    else:
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
    dataset = datasets.Dataset.from_list(
        [
            {
                "prompt": ex.prompt,
                "completion": [{"role": "assistant", "content": ex.completion}],
                "label": ex.label,
            }
            for ex in rows
        ]
    )
    try:
        with tempfile.TemporaryDirectory(prefix="thumbloop-kto-") as tmp:
            args = KTOConfig(
                output_dir=tmp,
                beta=cfg.beta,
                learning_rate=cfg.learning_rate,
                num_train_epochs=cfg.epochs,
                per_device_train_batch_size=batch_size,
                # a lone last example would be its own KL "mismatch": drop it from the epoch
                dataloader_drop_last=len(rows) % batch_size == 1,
                desirable_weight=desirable_weight,
                undesirable_weight=undesirable_weight,
                max_length=cfg.max_length,
                seed=cfg.seed,
                data_seed=cfg.seed,
                bf16=_bf16(device),
                fp16=False,
                use_cpu=device.type == "cpu",
                # a 135M model and short replies: memory is not the limit, recomputation is
                activation_checkpointing=False,
                # TRL's default zeroes every dropout, LoRA's too; the base models have none
                disable_dropout=False,
                report_to="none",
                save_strategy="no",
                logging_steps=1,
                disable_tqdm=not progress,
                dataloader_num_workers=0,
            )
            trainer = KTOTrainer(
                model=model,
                args=args,
                train_dataset=dataset,
                processing_class=tokenizer,
                peft_config=lora,
            )
            if start.is_adapter:
                loaded: Any = set_peft_model_state_dict(
                    trainer.model, load_peft_weights(str(start.folder), device="cpu")
                )
                missing = [k for k in loaded.missing_keys if "lora_" in k]
                if missing or loaded.unexpected_keys:
                    raise RuntimeError(
                        f"{start.folder}: adapter weights do not fit "
                        f"(missing {missing[:3]}, unexpected {loaded.unexpected_keys[:3]})"
                    )
            if not progress:
                trainer.remove_callback(PrinterCallback)
            trainer.train()
            losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
            steps = trainer.state.global_step
            trained: Any = trainer.model
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    manifest = {
        "base": base_spec,
        "trained_at": datetime.now(UTC).isoformat(),
        "examples": len(examples),
        "desirable": n_desirable,
        "undesirable": n_undesirable,
        "start": start.version,
        "config": cfg.model_dump(),
    }
    version = save_adapter(trained, out, manifest)  # `out` is absent or empty (checked above)
    seconds = time.perf_counter() - began
    log.info(
        "KTO adapter %s: %d examples (%d 👍, %d 👎), %d steps in %.1f s, loss %s",
        version,
        len(examples),
        n_desirable,
        n_undesirable,
        steps,
        seconds,
        f"{losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "n/a",
    )
    return AdapterResult(out, version, steps, seconds, losses, n_desirable, n_undesirable)
