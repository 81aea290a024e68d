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

``implied_rewards`` and ``ranking_auc`` say, on held-out votes, whether the adapter learned to
prefer what users liked; ``reply_quality`` measures what it now writes on golden prompts.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from learning.generator.reply_facts import fact_coverage, likes_reply, word_count
from serving.generator.lm import Generator, Sampling
from serving.generator.source import GeneratorSource, write_manifest
from serving.replies.guardrails import check_reply
from thumbloop.staging import move_into_place, staging_beside

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
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
class KtoExample:
    key: str  # the interaction id
    prompt: Messages  # chat messages exactly as the generator saw them
    completion: str  # the generated reply that was rated
    label: bool  # True = 👍 (desirable)


@dataclass
class AdapterResult:
    folder: Path
    version: str
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    n_desirable: int = 0
    n_undesirable: int = 0


@dataclass(frozen=True)
class GoldenPrompt:
    prompt: Messages  # as the serving side would build it
    reference: str  # the answer whose key facts a good reply states
    grounding: str  # what the guard rails accept figures and links from
    user_text: str  # the customer's words (figures they said may be repeated)


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


def ranking_auc(rewards: Sequence[float] | np.ndarray, labels: Sequence[bool]) -> float:
    """P(a random 👍 example outranks a random 👎 one), ties ½; nan without both classes."""
    r = np.asarray(rewards, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(r, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # 1-based, ties share their mean rank
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --- models ------------------------------------------------------------------------------------


def base_of(source: GeneratorSource) -> GeneratorSource:
    base = source.base or source
    if base.base is not None:
        raise ValueError(f"{source.folder}: an adapter over an adapter is not supported")
    return base


def _load_tokenizer(source: GeneratorSource) -> Any:
    from transformers import AutoTokenizer

    own = (source.folder / "tokenizer_config.json").is_file()
    folder = source.folder if own else base_of(source).folder
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_base(source: GeneratorSource) -> Any:
    from transformers import AutoModelForCausalLM

    # float32 weights; on CUDA the trainer's bf16 autocast does the speed-up
    return AutoModelForCausalLM.from_pretrained(
        base_of(source).folder, dtype=torch.float32, local_files_only=True
    )


def _adapter_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:12]


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
    tokenizer = _load_tokenizer(start)
    model = _load_base(start)
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
    with staging_beside(out) as partial:  # the adapter folder appears whole or not at all
        trained.save_pretrained(partial)
        version = f"kto-{_adapter_digest(partial)}"
        manifest = {
            "version": version,
            "base": base_spec,
            "trained_at": datetime.now(UTC).isoformat(),
            "examples": len(examples),
            "desirable": n_desirable,
            "undesirable": n_undesirable,
            "start": start.version,
            "config": cfg.model_dump(),
        }
        write_manifest(partial, manifest)
        move_into_place(partial, out)  # `out` is absent or empty (checked above)
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


# --- evaluation ----------------------------------------------------------------------------------


def _encode(tokenizer: Any, prompt: Messages, completion: str) -> tuple[list[int], list[int]]:
    """Prompt and completion token ids, split the way TRL splits them for training: the reply
    rendered as the assistant turn (its end-of-turn token included) after the generation prompt."""
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    whole = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": completion}], tokenize=False
    )
    head_ids = tokenizer(str(head), add_special_tokens=False)["input_ids"]
    ids = tokenizer(str(whole), add_special_tokens=False)["input_ids"]
    n = 0
    while n < min(len(head_ids), len(ids)) and head_ids[n] == ids[n]:
        n += 1
    return ids[:n], ids[n:]


def _completion_logps(model: Any, batch: list[tuple[list[int], list[int]]], pad_id: int) -> Any:
    """Summed log-probabilities of each completion given its prompt (left-padded: every
    completion ends at the last position, so only the completions' logits are computed)."""
    width = max(len(p) + len(c) for p, c in batch)
    keep = max(len(c) for _, c in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    completion = torch.zeros((len(batch), keep), dtype=torch.bool)
    for i, (p, c) in enumerate(batch):
        ids[i, width - len(p) - len(c) :] = torch.tensor(p + c)
        mask[i, width - len(p) - len(c) :] = 1
        completion[i, keep - len(c) :] = True
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep + 1
    ).logits[:, :-1]
    logps = torch.log_softmax(logits.float(), dim=-1)
    token_logps = logps.gather(-1, ids[:, -keep:].unsqueeze(-1)).squeeze(-1)
    return (token_logps * completion.to(device)).sum(-1).cpu()


def implied_rewards(
    source: GeneratorSource,
    examples: Sequence[KtoExample],
    beta: float,
    device: torch.device,
    batch_size: int = 8,
) -> np.ndarray:
    """KTO's implied reward per example, β·(log π(y|x) − log π_base(y|x)) over the reply's
    tokens; all 0 for a generator without an adapter (it is the base)."""
    if not source.is_adapter or not examples:
        return np.zeros(len(examples))
    from peft import PeftModel

    tokenizer = _load_tokenizer(source)
    model = PeftModel.from_pretrained(_load_base(source), str(source.folder))
    model = model.to(device).eval()
    encoded = [_encode(tokenizer, ex.prompt, ex.completion) for ex in examples]
    rewards = []
    with torch.inference_mode():
        for i in range(0, len(encoded), batch_size):
            batch = encoded[i : i + batch_size]
            policy = _completion_logps(model, batch, tokenizer.pad_token_id)
            with model.disable_adapter():
                base = _completion_logps(model, batch, tokenizer.pad_token_id)
            rewards.append(beta * (policy - base))
    return torch.cat(rewards).double().numpy()


def reply_quality(
    generator: Generator,
    items: Sequence[GoldenPrompt],
    sampling: Sampling,
    max_chars: int = 400,
    batch_size: int = 8,
) -> dict[str, float]:
    """What the generator writes on golden prompts, judged as serving and the raters would:
    ``coverage`` and ``mean_words`` of the replies that pass the guard rails (0 when none does),
    ``fallback_rate`` (refused, or out of time: the template would be sent), ``like_rate``
    (a simulated rater's 👍; a refused reply is not liked)."""
    sent: list[tuple[GoldenPrompt, str]] = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        for item, gen in zip(
            chunk, generator.generate([it.prompt for it in chunk], sampling), strict=True
        ):
            if gen.finish == "budget":
                continue
            verdict = check_reply(
                gen.text,
                item.grounding,
                user_text=item.user_text,
                max_chars=max_chars,
                complete=gen.finish == "stop",
            )
            if verdict.reason is None:
                sent.append((item, verdict.text))
    n = len(items)
    if n == 0:
        return {"coverage": 0.0, "mean_words": 0.0, "fallback_rate": 0.0, "like_rate": 0.0}
    liked = sum(likes_reply(text, item.reference) for item, text in sent)
    return {
        "coverage": float(np.mean([fact_coverage(t, it.reference) for it, t in sent]))
        if sent
        else 0.0,
        "mean_words": float(np.mean([word_count(t) for _, t in sent])) if sent else 0.0,
        "fallback_rate": 1 - len(sent) / n,
        "like_rate": liked / n,
    }
