"""The reply generator's part of a retrain: KTO + LoRA on rated generated replies, then its gate.

A candidate bundle carries the generator it would serve (``generator/``, a LoRA adapter over the
configured base). When enough generated replies were rated, with both 👍 and 👎 among them, a new
adapter is trained from the champion's generator and gated. It learns from the replies the champion
generator itself wrote (on-policy, what KTO is made for; earlier generators' replies were already
learned from by the champion), or from all rated replies when those are too few. A stable hash of
the interaction id holds a share back (``KtoConfig.heldout``) for the gate:

- **ranking**: on the held-back judgements, the candidate's implied KTO reward must
  rank 👍 replies above 👎 replies better than the champion's does (ROC AUC; the untuned base has
  no implied reward and scores 0.5);
- **quality**: on golden prompts (validation messages, gold intent, the intent's first reference
  answer) the candidate's replies must not cover fewer of the reference's facts, fall back to
  templates more often, or grow longer, beyond small tolerances.

Otherwise the champion's generator (if any) is carried over unchanged and the part is `skipped`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import torch

from learning.generator.base import publish_base
from learning.generator.kto import (
    GoldenPrompt,
    KtoConfig,
    KtoExample,
    base_of,
    implied_rewards,
    ranking_auc,
    reply_quality,
    split_heldout,
    train_adapter,
)
from learning.retrain.thumbs import ReplyJudgement
from serving.generator.lm import Sampling, load_generator
from serving.generator.source import (
    GeneratorSource,
    read_manifest,
    resolve_generator,
    write_manifest,
)
from serving.replies.prompt import PromptInput, build_messages
from thumbloop.domain import Domain, ResponseVariant
from thumbloop.settings import Settings

log = logging.getLogger(__name__)

# how much worse than the champion a candidate's golden replies may be
COVERAGE_TOLERANCE = 0.02
FALLBACK_TOLERANCE = 0.02
LENGTH_GROWTH = 1.2

Status = Literal["skipped", "passed", "failed"]


@dataclass
class GeneratorOutcome:
    status: Status
    reasons: list[str]
    folder: Path | None  # the generator the candidate bundle carries; None: the configured one
    version: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def champion_generator(settings: Settings, bundle_generator: Path | None) -> tuple[str, str]:
    """(spec, base spec) of the generator the champion serves: its bundle's adapter, or the
    configured generator when the bundle carries none."""
    if bundle_generator is None:
        return settings.generator, settings.generator
    base = read_manifest(bundle_generator).get("base") or settings.generator
    return str(bundle_generator), str(base)


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


def _examples(judgements: Sequence[ReplyJudgement]) -> list[KtoExample]:
    return [
        KtoExample(j.interaction_id, [dict(m) for m in j.prompt], j.completion, j.desirable)
        for j in judgements
    ]


def golden_quality(
    spec: str, settings: Settings, golden: Sequence[GoldenPrompt], device: torch.device
) -> dict[str, float]:
    generator = load_generator(spec, settings.home, device)
    sampling = Sampling(max_new_tokens=settings.generator_max_new_tokens)
    return reply_quality(generator, golden, sampling, max_chars=settings.generator_max_chars)


def _gate(
    champ: dict[str, float], cand: dict[str, float], auc_champ: float, auc_cand: float
) -> tuple[bool, list[str]]:
    reasons: list[str] = []
    ok = True
    if auc_cand != auc_cand or auc_champ != auc_champ:  # nan: a class is missing
        ok = False
        reasons.append("held-back votes lack 👍 or 👎: the reward ranking cannot be checked")
    elif auc_cand <= auc_champ:
        ok = False
        reasons.append(f"reward ranking AUC {auc_cand:.3f} <= the champion's {auc_champ:.3f}")
    else:
        reasons.append(f"reward ranking AUC {auc_champ:.3f} -> {auc_cand:.3f}")
    checks = (
        (
            "fact coverage",
            cand["coverage"] >= champ["coverage"] - COVERAGE_TOLERANCE,
            "coverage",
        ),
        (
            "template fallbacks",
            cand["fallback_rate"] <= champ["fallback_rate"] + FALLBACK_TOLERANCE,
            "fallback_rate",
        ),
        (
            "reply length (words)",
            cand["mean_words"] <= champ["mean_words"] * LENGTH_GROWTH,
            "mean_words",
        ),
    )
    for name, passed, key in checks:
        ok &= passed
        verdict = "ok" if passed else "worse"
        reasons.append(f"golden {name} {champ[key]:.3g} -> {cand[key]:.3g} ({verdict})")
    return ok, reasons


def retrain_generator(
    settings: Settings,
    judgements: Sequence[ReplyJudgement],
    bundle_generator: Path | None,
    domain: Domain,
    responses: dict[str, list[ResponseVariant]],
    out: Path,
    device: torch.device,
    cfg: KtoConfig | None = None,
    progress: bool = False,
    last_trained: datetime | None = None,
) -> GeneratorOutcome:
    """Train and gate a new adapter into ``out`` when there are enough judgements, enough of
    them newer than ``last_trained`` (the previous generator training); otherwise carry the
    champion's generator over."""
    cfg = cfg or KtoConfig()
    spec, base_spec = champion_generator(settings, bundle_generator)

    def keep(why: str) -> GeneratorOutcome:
        version = read_manifest(bundle_generator).get("version") if bundle_generator else None
        return GeneratorOutcome("skipped", [why], bundle_generator, version)

    def usable(js: Sequence[ReplyJudgement]) -> bool:
        ups = sum(j.desirable for j in js)
        return len(js) >= settings.generator_min_votes and 0 < ups < len(js)

    if not usable(judgements):
        n_up = sum(j.desirable for j in judgements)
        return keep(
            f"{len(judgements)} rated generated replies ({n_up} 👍); a generator retrain needs "
            f"{settings.generator_min_votes} with both 👍 and 👎"
        )
    if last_trained is not None:
        fresh = sum(j.at > last_trained for j in judgements)
        if fresh < settings.generator_min_new_votes:
            return keep(
                f"{fresh} rated generated replies since the last generator training "
                f"({last_trained:%Y-%m-%d %H:%M} UTC); another needs "
                f"{settings.generator_min_new_votes}"
            )
    start = time.perf_counter()
    champion: GeneratorSource = resolve_generator(spec, settings.home)
    on_policy = [j for j in judgements if j.generator == champion.version]
    chosen = on_policy if usable(on_policy) else list(judgements)
    examples = _examples(chosen)
    counts = {
        "generated_judgements": len(judgements),
        "generated_on_policy": len(on_policy),
        "generated_used": len(examples),
        "generated_desirable": sum(e.label for e in examples),
    }
    train, held = split_heldout(examples, cfg.heldout, cfg.seed)
    result = train_adapter(
        champion, train, cfg, out, base_spec=base_spec, device=device, progress=progress
    )
    inherited = read_manifest(champion.folder).get("base_uri") if champion.base else None
    base_uri = str(inherited or publish_base(settings, base_of(champion)))
    write_manifest(result.folder, read_manifest(result.folder) | {"base_uri": base_uri})
    candidate = resolve_generator(str(result.folder), settings.home)
    labels = [e.label for e in held]
    auc_champ = ranking_auc(implied_rewards(champion, held, cfg.beta, device), labels)
    auc_cand = ranking_auc(implied_rewards(candidate, held, cfg.beta, device), labels)
    golden = golden_prompts(domain, responses, settings.generator_golden_prompts, cfg.seed)
    q_champ = golden_quality(spec, settings, golden, device)
    q_cand = golden_quality(str(result.folder), settings, golden, device)
    passed, reasons = _gate(q_champ, q_cand, auc_champ, auc_cand)
    metrics = {
        "generator_champion_reward_auc": auc_champ,
        "generator_candidate_reward_auc": auc_cand,
        **{f"generator_champion_golden_{k}": v for k, v in q_champ.items()},
        **{f"generator_candidate_golden_{k}": v for k, v in q_cand.items()},
        "generator_kto_steps": float(result.steps),
        "generator_kto_seconds": result.seconds,
        "generator_seconds": time.perf_counter() - start,
    }
    if result.losses:
        metrics["generator_kto_final_loss"] = result.losses[-1]
    params = counts | {
        "generator_base": base_spec,
        "generator_start": champion.version,
        "generator_train": len(train),
        "generator_heldout": len(held),
        **{f"kto_{k}": v for k, v in cfg.model_dump().items()},
    }
    status: Status = "passed" if passed else "failed"
    log.info("generator candidate %s: %s (%s)", result.version, status, "; ".join(reasons))
    return GeneratorOutcome(status, reasons, result.folder, candidate.version, metrics, params)
