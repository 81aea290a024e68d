"""Reply strategies behind one small interface; a generative one can join the template one."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from serving.replies.posteriors import PosteriorStore
from thumbloop.contracts import Reply, Turn, intent_title
from thumbloop.domain import ResponseVariant

EMPATHY_PREFIX = "I'm sorry about the trouble. "


@dataclass(frozen=True)
class ReplyContext:
    text: str
    intent: str
    confidence: float
    ranking: Sequence[tuple[str, float]]  # best first
    sentiment: str
    out_of_scope: str | None
    threshold: float
    history: Sequence[Turn] = ()

    @property
    def unsure(self) -> bool:
        return self.intent == self.out_of_scope or self.confidence < self.threshold


class ReplyStrategy(Protocol):
    name: str

    async def reply(self, ctx: ReplyContext) -> Reply: ...


def thompson_pick(
    variants: Sequence[ResponseVariant],
    posteriors: dict[str, tuple[float, float]],
    rng: random.Random,
) -> ResponseVariant:
    """Draw from each variant's Beta posterior (uniform prior when unseen); take the best draw."""
    best, best_draw = variants[0], -1.0
    for v in variants:
        a, b = posteriors.get(v.id, (1.0, 1.0))
        draw = rng.betavariate(a, b)
        if draw > best_draw:
            best, best_draw = v, draw
    return best


class TemplateReplies:
    """Pick one of the intent's written variants by Thompson sampling over thumbs."""

    name = "template"

    def __init__(
        self,
        responses: dict[str, list[ResponseVariant]],
        posteriors: PosteriorStore,
        rng: random.Random | None = None,
    ) -> None:
        self._responses = responses
        self._posteriors = posteriors
        self._rng = rng or random.Random()

    async def _pick(self, intent: str, tone: str) -> ResponseVariant | None:
        variants = self._responses.get(intent) or []
        toned = [v for v in variants if v.tone == tone] or variants
        if not toned:
            return None
        return thompson_pick(toned, await self._posteriors.get(intent), self._rng)

    async def reply(self, ctx: ReplyContext) -> Reply:
        if ctx.unsure:
            return await self._clarify(ctx)
        negative = ctx.sentiment == "negative"
        chosen = await self._pick(ctx.intent, "empathetic" if negative else "neutral")
        if chosen is None:
            return await self._clarify(ctx)
        text = chosen.text
        if negative and chosen.tone != "empathetic":
            text = EMPATHY_PREFIX + text
        return Reply(text=text, response_id=chosen.id, strategy=self.name)

    async def _clarify(self, ctx: ReplyContext) -> Reply:
        options = [name for name, _ in ctx.ranking if name != ctx.out_of_scope][:2]
        lead = None
        if ctx.out_of_scope:
            lead = await self._pick(
                ctx.out_of_scope, "empathetic" if ctx.sentiment == "negative" else "neutral"
            )
        prefix = lead.text if lead else "I'm not sure I understood."
        if len(options) == 2:
            text = (
                f"{prefix} Did you mean {intent_title(options[0])}, or {intent_title(options[1])}?"
            )
        elif options:
            text = f"{prefix} Did you mean {intent_title(options[0])}?"
        else:
            text = prefix
        rid = (lead.id if lead else "clarify") + "+clarify:" + "|".join(options)
        return Reply(text=text, response_id=rid, strategy=self.name)
