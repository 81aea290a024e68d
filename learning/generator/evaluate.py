"""Judging a reply generator: does its implied KTO reward rank the replies users liked above the
ones they did not (on held-out votes), and what does it write on golden prompts (validation
messages with the prompt serving would build)? The generator's gate compares these numbers."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from learning.generator.adapter import load_base, load_tokenizer
from learning.generator.kto_data import KtoExample, Messages
from learning.generator.reply_facts import fact_coverage, likes_reply, word_count
from serving.generator.lm import Generator, Sampling, load_generator
from serving.generator.source import GeneratorSource
from serving.replies.guardrails import check_reply
from serving.replies.prompt import PromptInput, build_messages
from thumbloop.domain import Domain, ResponseVariant
from thumbloop.settings import Settings


@dataclass(frozen=True)
class GoldenPrompt:
    prompt: Messages  # as the serving side would build it
    reference: str  # the answer whose key facts a good reply states
    grounding: str  # what the guard rails accept figures and links from
    user_text: str  # the customer's words (figures they said may be repeated)


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
    # peft is needed only where an adapter is judged: most retrains train none
    from peft import PeftModel

    tokenizer = load_tokenizer(source)
    model = PeftModel.from_pretrained(load_base(source), str(source.folder))
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


def golden_prompts(
    domain: Domain, responses: dict[str, list[ResponseVariant]], n: int, seed: int = 0
) -> list[GoldenPrompt]:
    """``n`` validation messages (never test data) with the prompt serving would build."""
    rows = [e for e in domain.validation if e.label in responses and e.label != domain.out_of_scope]
    rows = random.Random(seed).sample(rows, min(n, len(rows)))
    out = []
    for e in rows:
        variants = responses[e.label]
        reference = variants[0].text
        prompt = build_messages(PromptInput(e.text, e.label, "neutral", reference))
        grounding = " ".join(v.text for v in variants)
        out.append(GoldenPrompt(prompt, reference, grounding, e.text))
    return out


def golden_quality(
    spec: str, settings: Settings, golden: Sequence[GoldenPrompt], device: torch.device
) -> dict[str, float]:
    generator = load_generator(spec, settings.home, device)
    sampling = Sampling(max_new_tokens=settings.replies.generator_max_new_tokens)
    return reply_quality(
        generator, golden, sampling, max_chars=settings.replies.generator_max_chars
    )
