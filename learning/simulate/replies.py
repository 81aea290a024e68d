"""Generated replies in the simulator (``thumbloop simulate --replies generative``).

Replies come from serving's own generative strategy (template pick, prompt, batched generation,
guard rails, template fallback) with the champion bundle's generator. A simulated user likes a
reply when it states the key facts of one of the right intent's reference answers and stays short
(:func:`learning.generator.reply_facts.likes_reply`); a wrong intent's reply therefore
misses them too.
The simulator gives generation all the time it needs: it measures what the generator writes, not
how fast this machine is (``bench/`` measures that).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass

from learning.generator.evaluate import golden_prompts, golden_quality
from learning.generator.reply_facts import likes_reply
from learning.generator.step import champion_generator
from serving.engine import ActiveModel
from serving.inference import RawOutput
from serving.prometheus import ServingMetrics
from serving.replies.generative import GenerativeReplies, GeneratorService
from serving.replies.posteriors import InMemoryPosteriors
from serving.replies.strategies import ReplyContext, TemplateReplies
from thumbloop.contracts import Reply
from thumbloop.domain import Domain, ResponseVariant
from thumbloop.settings import Settings

SIM_BUDGET_MS = 600_000.0


@dataclass
class ReplyStats:
    generated: int = 0  # replies the generator wrote (not refused)
    liked: int = 0  # of those, liked by the simulated user (before noise)
    fallbacks: int = 0  # generation attempted, the template answered

    def as_dict(self) -> dict[str, float]:
        attempted = self.generated + self.fallbacks
        return {
            "generated": self.generated,
            "fallbacks": self.fallbacks,
            "like_rate": self.liked / self.generated if self.generated else float("nan"),
            "fallback_rate": self.fallbacks / attempted if attempted else float("nan"),
        }


def sim_settings(settings: Settings) -> Settings:
    return settings.replace(reply_strategy="generative", generator_budget_ms=SIM_BUDGET_MS)


async def _replies(
    settings: Settings, active: ActiveModel, texts: Sequence[str], outputs: Sequence[RawOutput]
) -> list[Reply]:
    bundle = active.bundle
    service = GeneratorService(settings, bundle.device, ServingMetrics())
    service.start()
    service.follow(bundle.generator_dir)
    try:
        if await service.wait_loaded() != "ready":
            raise RuntimeError(f"the reply generator did not load: {service.error}")
        templates = TemplateReplies(bundle.responses, InMemoryPosteriors(), random.Random(0))
        strategy = GenerativeReplies(
            templates,
            bundle.responses,
            service,
            settings.replies.generator_history_turns,
            settings.replies.generator_max_chars,
        )
        room = asyncio.Semaphore(
            2 * settings.replies.generator_max_batch_size
        )  # the queue stays short

        async def one(text: str, out: RawOutput) -> Reply:
            ctx = ReplyContext(
                text,
                out.intent,
                out.confidence,
                out.ranking,
                out.sentiment,
                out.out_of_scope,
                out.threshold,
            )
            async with room:
                return await strategy.reply(ctx)

        return list(await asyncio.gather(*(one(t, o) for t, o in zip(texts, outputs, strict=True))))
    finally:
        await service.stop()


def generate_replies(
    settings: Settings, active: ActiveModel, texts: Sequence[str], outputs: Sequence[RawOutput]
) -> list[Reply]:
    """Serving's generative replies to ``texts`` (whose model outputs are ``outputs``)."""
    return asyncio.run(_replies(settings, active, texts, outputs))


def user_likes(reply: Reply, true_intent: str, responses: dict[str, list[ResponseVariant]]) -> bool:
    """Would a user who asked about ``true_intent`` like this reply?"""
    return any(likes_reply(reply.text, v.text) for v in responses.get(true_intent, []))


def golden_like_rate(
    settings: Settings, active: ActiveModel, domain: Domain, n: int
) -> dict[str, float]:
    """The champion generator's reply quality on ``n`` fixed validation prompts (gold intents)."""
    spec, _ = champion_generator(settings, active.bundle.generator_dir)
    golden = golden_prompts(domain, active.bundle.responses, n)
    return golden_quality(spec, settings, golden, active.bundle.device)
