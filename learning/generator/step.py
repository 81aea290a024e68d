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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from learning.generator.adapter import base_of
from learning.generator.base import publish_base
from learning.generator.evaluate import (
    golden_prompts,
    golden_quality,
    implied_rewards,
    ranking_auc,
)
from learning.generator.gate import GeneratorStatus, decide
from learning.generator.kto import train_adapter
from learning.generator.kto_data import KtoConfig, KtoExample, ReplyJudgement, split_heldout
from serving.generator.source import (
    GeneratorSource,
    read_manifest,
    resolve_generator,
    write_manifest,
)
from thumbloop.domain import Domain, ResponseVariant
from thumbloop.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class GeneratorOutcome:
    status: GeneratorStatus
    reasons: list[str]
    folder: Path | None  # the generator the candidate bundle carries; None: the configured one
    version: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def champion_generator(settings: Settings, bundle_generator: Path | None) -> tuple[str, str]:
    """(spec, base spec) of the generator the champion serves: its bundle's adapter, or the
    configured generator when the bundle carries none."""
    if bundle_generator is None:
        return settings.replies.generator, settings.replies.generator
    base = read_manifest(bundle_generator).get("base") or settings.replies.generator
    return str(bundle_generator), str(base)


def _examples(judgements: Sequence[ReplyJudgement]) -> list[KtoExample]:
    return [
        KtoExample(j.interaction_id, [dict(m) for m in j.prompt], j.completion, j.desirable)
        for j in judgements
    ]


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
        return len(js) >= settings.learning.generator_min_votes and 0 < ups < len(js)

    if not usable(judgements):
        n_up = sum(j.desirable for j in judgements)
        return keep(
            f"{len(judgements)} rated generated replies ({n_up} 👍); a generator retrain needs "
            f"{settings.learning.generator_min_votes} with both 👍 and 👎"
        )
    if last_trained is not None:
        fresh = sum(j.at > last_trained for j in judgements)
        if fresh < settings.learning.generator_min_new_votes:
            return keep(
                f"{fresh} rated generated replies since the last generator training "
                f"({last_trained:%Y-%m-%d %H:%M} UTC); another needs "
                f"{settings.learning.generator_min_new_votes}"
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
    golden = golden_prompts(domain, responses, settings.learning.generator_golden_prompts, cfg.seed)
    q_champ = golden_quality(spec, settings, golden, device)
    q_cand = golden_quality(str(result.folder), settings, golden, device)
    passed, reasons = decide(q_champ, q_cand, auc_champ, auc_cand)
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
    status: GeneratorStatus = "passed" if passed else "failed"
    log.info("generator candidate %s: %s (%s)", result.version, status, "; ".join(reasons))
    return GeneratorOutcome(status, reasons, result.folder, candidate.version, metrics, params)
