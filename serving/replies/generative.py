"""The `generative` reply strategy: an instruct LM rewrites the chosen template for the message.

For each message the template strategy first picks its reply (Thompson sampling over thumbs); that
variant is the generator's grounding and also the fallback. Unsure and out-of-scope messages keep
the template's clarifying reply. Generation requests from concurrent messages are batched (one
worker thread, off the event loop) under a time budget; a reply that runs out of time, fails a
guard rail (:mod:`serving.replies.guardrails`) or cannot be made while the generator is
loading, failed to load or is overloaded is replaced by the template reply, marked
``template:fallback-<why>``.

A model bundle may carry its own generator (a LoRA adapter trained from thumbs, see
:mod:`learning.generator.step`): when the served bundle changes,
:meth:`GeneratorService.follow` loads that one (or the configured generator, for a bundle
without one) in the background while the current generator keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from serving.batcher import BatchFailed, BatchStats, DeadlineExceeded, DynamicBatcher, QueueFull
from serving.generator.lm import Generation, Generator, Sampling, load_generator
from serving.prometheus import ServingMetrics
from serving.replies.guardrails import check_reply
from serving.replies.posteriors import GENERATED
from serving.replies.prompt import PromptInput, build_messages
from serving.replies.strategies import ReplyContext, TemplateReplies
from thumbloop.contracts import PromptMessage, Reply
from thumbloop.domain import ResponseVariant
from thumbloop.settings import Settings

log = logging.getLogger(__name__)

GeneratorState = Literal["loading", "ready", "failed"]
Prompt = list[dict[str, str]]


class GeneratorService:
    """Loads the generator in the background; runs generation batches in one worker thread."""

    def __init__(self, settings: Settings, device: torch.device, metrics: ServingMetrics) -> None:
        self.settings = settings
        self.device = device
        self.metrics = metrics
        self.state: GeneratorState = "loading"
        self.error: str | None = None
        self.generator: Generator | None = None
        self.sampling = Sampling(
            max_new_tokens=settings.replies.generator_max_new_tokens,
            temperature=settings.replies.generator_temperature,
            top_p=settings.replies.generator_top_p,
        )
        self.budget_s = settings.replies.generator_budget_ms / 1000.0
        self.batcher: DynamicBatcher[Prompt, Generation] = DynamicBatcher(
            self._process,
            max_batch_size=settings.replies.generator_max_batch_size,
            max_wait_ms=settings.serving.max_wait_ms,
            max_queue=settings.serving.max_queue,
            on_batch=self._observe,
        )
        self._loader: asyncio.Task[None] | None = None
        self._spec = settings.replies.generator  # the generator wanted now (the last one asked for)

    @property
    def version(self) -> str | None:
        return self.generator.version if self.generator else None

    def start(self) -> None:
        self.batcher.start()
        self._loader = asyncio.get_running_loop().create_task(
            self._load(self._spec), name="generator"
        )

    def follow(self, generator_dir: Path | None) -> None:
        """Serve a bundle's own generator, or the configured one when it carries none."""
        spec = str(generator_dir) if generator_dir is not None else self.settings.replies.generator
        if spec == self._spec:
            return
        self._spec = spec
        log.info("the served bundle asks for generator %s: loading", spec)
        self._loader = asyncio.get_running_loop().create_task(self._load(spec), name="generator")

    async def stop(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
        await self.batcher.stop()

    async def wait_loaded(self) -> GeneratorState:
        """Wait for the background load to end (ready or failed)."""
        if self._loader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._loader)
        return self.state

    async def _load(self, spec: str) -> None:
        try:
            generator = await asyncio.to_thread(
                load_generator, spec, self.settings.home, self.device
            )
        except Exception as exc:  # serving goes on with the old generator or with templates
            self.metrics.generator_loads.labels("failed").inc()
            if self.generator is None:
                self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
                log.error("generator %r failed to load (%s); replies stay templates", spec, exc)
            else:
                log.error(
                    "generator %r failed to load (%s); still serving %s",
                    spec,
                    exc,
                    self.generator.version,
                )
            return
        if spec != self._spec:  # a newer bundle asked for another generator meanwhile
            log.info("generator %s loaded but no longer wanted", generator.version)
            return
        self.generator, self.state, self.error = generator, "ready", None
        self.metrics.generator_loads.labels("ok").inc()
        self.metrics.generator_info.info({"version": generator.version, "spec": spec})

    def _process(self, prompts: Sequence[Prompt]) -> list[Generation]:
        generator = self.generator
        if generator is None:
            raise RuntimeError("no generator loaded")
        return generator.generate(prompts, self.sampling, budget_s=self.budget_s)

    def _observe(self, stats: BatchStats) -> None:
        self.metrics.generation_batch_size.observe(stats.size)
        self.metrics.generation_seconds.observe(stats.seconds)

    async def generate(self, prompt: Prompt) -> Generation:
        """Raises QueueFull, DeadlineExceeded (no batch started within the budget) or
        BatchFailed; the caller falls back to the template."""
        return await self.batcher.submit(prompt, timeout=2 * self.budget_s)


class GenerativeReplies:
    name = "generative"

    def __init__(
        self,
        templates: TemplateReplies,
        responses: dict[str, list[ResponseVariant]],
        service: GeneratorService,
        history_turns: int = 4,
        max_chars: int = 400,
    ) -> None:
        self._templates = templates
        self._responses = responses
        self._variants = {v.id: v for vs in responses.values() for v in vs}
        self._service = service
        self._history_turns = history_turns
        self._max_chars = max_chars

    async def reply(self, ctx: ReplyContext) -> Reply:
        template = await self._templates.reply(ctx)
        chosen = self._variants.get(template.response_id)
        if ctx.unsure or chosen is None:  # clarifying replies stay templates
            return template
        if self._service.generator is None:
            return self._fallback(template, "unavailable", self._service.state, None)
        version = self._service.generator.version
        prompt = build_messages(
            PromptInput(ctx.text, ctx.intent, ctx.sentiment, chosen.text, ctx.history),
            self._history_turns,
        )
        try:
            generated = await self._service.generate(prompt)
        except (QueueFull, DeadlineExceeded) as exc:
            reason = "budget" if isinstance(exc, DeadlineExceeded) else "busy"
            return self._fallback(template, reason, str(exc), version)
        except BatchFailed as exc:
            return self._fallback(template, "error", str(exc), version)
        if generated.finish == "budget":
            return self._fallback(template, "budget", "generation ran out of time", version)
        grounding = " ".join(v.text for v in self._responses.get(ctx.intent, [chosen]))
        verdict = check_reply(
            generated.text,
            grounding,
            user_text=" ".join([ctx.text, *(t.text for t in ctx.history if t.role == "user")]),
            max_chars=self._max_chars,
            complete=generated.finish == "stop",
        )
        if verdict.reason is not None:
            log.info("generated reply refused (%s): %r", verdict.detail, generated.text[:200])
            return self._fallback(template, verdict.reason, verdict.detail, version)
        return Reply(
            text=verdict.text,
            response_id=f"{GENERATED}+{chosen.id}",
            strategy=self.name,
            generator=version,
            prompt=[PromptMessage.model_validate(m) for m in prompt],
        )

    def _fallback(self, template: Reply, reason: str, detail: str, version: str | None) -> Reply:
        self._service.metrics.generator_fallbacks.labels(reason).inc()
        log.debug("template fallback (%s): %s", reason, detail)
        return template.model_copy(
            update={"strategy": f"template:fallback-{reason}", "generator": version}
        )
