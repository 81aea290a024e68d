"""What one serving process holds and does, apart from HTTP: the model and its hot swap, the
batcher, the reply strategies, the posteriors and the metrics (:class:`ServingState`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch

from serving.batcher import BatchFailed, BatchStats, DeadlineExceeded, DynamicBatcher, QueueFull
from serving.engine import ActiveModel, ModelHolder, load_active
from serving.front import HTTPError, unencodable_text
from serving.inference import RawOutput, settle_heap
from serving.model_source import VersionRefused
from serving.pool import PoolConfig, pool_size
from serving.prometheus import ServingMetrics
from serving.replies.generative import GenerativeReplies, GeneratorService
from serving.replies.posteriors import PosteriorStore, RedisPosteriors, SqlPosteriors
from serving.replies.strategies import ReplyContext, ReplyStrategy, TemplateReplies
from serving.watcher import AliasWatcher
from thumbloop.contracts import (
    IncomingMessage,
    IntentAnswerRequest,
    IntentResult,
    Prediction,
    RankedIntent,
    Reply,
    SentimentResult,
)
from thumbloop.model.device import resolve_device, use_cpu_bf16
from thumbloop.settings import Settings

log = logging.getLogger(__name__)


class ServingState:
    """One serving process: the model behind the batcher, the reply strategies and metrics.

    The HTTP layer (:mod:`serving.app`) only translates: every route reads from here, and
    ``POST /v1/predict`` is :meth:`answer`, which the plain-ASGI front calls too.
    """

    def __init__(self, settings: Settings, model_uri: str) -> None:
        self.settings = settings
        self.model_uri = model_uri
        self.metrics = ServingMetrics()
        self.holder = ModelHolder(
            settings.serving.max_seq_len,
            settings.serving.low_confidence,
            settings.serving.sub_batch_size,
        )
        self.device = resolve_device(settings.compute.device, settings.compute.cpu_threads)
        self.processes = pool_size(settings.compute.model_processes, self.device.type)
        self.pool = (
            PoolConfig(
                processes=self.processes,
                threads=max(1, torch.get_num_threads() // self.processes),
                max_seq_len=settings.serving.max_seq_len,
                sub_batch=settings.serving.sub_batch_size,
                threshold=settings.serving.low_confidence,
                cpu_bf16=use_cpu_bf16(settings.compute.cpu_bf16),
                batch_timeout_s=settings.serving.model_batch_timeout_s,
            )
            if self.processes
            else None
        )
        self.batcher: DynamicBatcher[str, RawOutput] = DynamicBatcher(
            [self.holder.lane(k) for k in range(max(1, self.processes))],
            max_batch_size=settings.serving.max_batch_size,
            max_wait_ms=settings.serving.max_wait_ms,
            max_queue=settings.serving.max_queue,
            on_batch=self._observe_batch,
            on_expired=lambda n: self.metrics.requests.labels("expired_in_queue").inc(n),
        )
        self.posteriors: PosteriorStore = (
            RedisPosteriors(settings.redis_url, settings.model_name)
            if settings.redis_url
            else SqlPosteriors(settings.effective_database_url)
        )
        self.strategies: dict[str, ReplyStrategy] = {}
        self.generator = (
            GeneratorService(settings, self.device, self.metrics)
            if settings.replies.reply_strategy == "generative"
            else None
        )
        self.watcher: AliasWatcher | None = None

    def _observe_batch(self, stats: BatchStats) -> None:
        self.metrics.batch_size.observe(stats.size)
        self.metrics.batch_seconds.observe(stats.seconds)

    def load(self, uri: str) -> ActiveModel:
        s = self.settings
        active = load_active(
            uri,
            s.effective_tracking_uri,
            s.home / "models",
            self.device,
            s.serving.max_seq_len,
            use_cpu_bf16(s.compute.cpu_bf16),
            # only a generative server loads the bundle's generator, and so needs its base
            fetch_generator_base=self.generator is not None,
            pool=self.pool,
            on_pool_restart=self.metrics.model_process_restarts.inc,
            admit=True,  # the first load of an alias obeys the same rule as the watcher's swaps
        )
        settle_heap()
        return active

    def on_loaded(self, version: str, active: ActiveModel | None) -> None:
        self.metrics.model_loads.labels("ok" if active else "failed").inc()
        if active is not None:
            self.strategies.clear()
            self.metrics.model_info.info({"version": active.version, "uri": active.uri})
            if self.generator is not None:
                self.generator.follow(active.bundle.generator_dir)

    def on_refused(self, version: str, why: str) -> None:
        self.metrics.model_loads.labels("refused").inc()

    def strategy(self, active: ActiveModel) -> ReplyStrategy:
        key = active.version
        if key not in self.strategies:
            responses = active.bundle.responses
            templates = TemplateReplies(responses, self.posteriors)
            self.strategies[key] = (
                GenerativeReplies(
                    templates,
                    responses,
                    self.generator,
                    self.settings.replies.generator_history_turns,
                    self.settings.replies.generator_max_chars,
                )
                if self.generator is not None
                else templates
            )
        return self.strategies[key]

    @property
    def alias(self) -> str | None:
        """The MLflow alias this server follows, if its URI names one (``models:/NAME@ALIAS``)."""
        uri = self.model_uri
        return uri.split("@", 1)[1] if uri.startswith("models:/") and "@" in uri else None

    @asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """The server's lifespan: batching, the generator, the first load and the alias watch
        start with it; all of it stops, in reverse, when the server does."""
        self.batcher.start()
        if self.generator is not None:
            self.generator.start()
        loader = asyncio.create_task(self._initial_load())
        if self.alias is not None:
            self.watcher = AliasWatcher(
                self.model_uri,
                self.settings.effective_tracking_uri,
                self.holder,
                self.load,
                self.settings.serving.watch_interval_s,
                self.on_loaded,
                self.on_refused,
            )
            self.watcher.start()
        try:
            yield
        finally:
            loader.cancel()
            if self.watcher:
                await self.watcher.stop()
            await self.batcher.stop()
            await asyncio.to_thread(self.holder.close)
            if self.generator is not None:
                await self.generator.stop()
            close = getattr(self.posteriors, "close", None)
            if close:
                await close()

    async def _initial_load(self) -> None:
        delay = 1.0
        while self.holder.current is None:
            try:
                active = await asyncio.to_thread(self.load, self.model_uri)
            except Exception as exc:
                if not isinstance(exc, VersionRefused):  # the watcher counts a refusal once
                    self.metrics.model_loads.labels("failed").inc()
                log.error("cannot load %s (%s); retrying in %.0f s", self.model_uri, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if self.holder.install_first(active):
                self.on_loaded(active.version, active)

    def count_too_large(self) -> None:
        self.metrics.requests.labels("too_large").inc()

    async def answer_intent(self, req: IntentAnswerRequest) -> Reply:
        """The template reply to an intent the user picked (no model call): the pick already
        said what the message meant. Raises :class:`HTTPError` 422 for an intent the served
        model does not know, 503 while no model is loaded."""
        active = self.holder.current
        if active is None:
            raise HTTPError(503, "model is loading", {"Retry-After": "2"})
        bundle = active.bundle
        if req.intent not in bundle.intents or req.intent == bundle.out_of_scope:
            raise HTTPError(422, f"{active.version} has no intent {req.intent!r} to answer")
        templates = TemplateReplies(bundle.responses, self.posteriors)
        ctx = ReplyContext(
            text="",
            intent=req.intent,
            confidence=1.0,
            ranking=[(req.intent, 1.0)],
            sentiment=req.sentiment,
            out_of_scope=bundle.out_of_scope,
            threshold=0.0,
        )
        reply = await templates.reply(ctx)
        self.metrics.replies.labels("picked").inc()
        return reply

    async def answer(self, msg: IncomingMessage) -> bytes:
        """One prediction as JSON bytes; other answers raise :class:`HTTPError`."""
        limits, metrics = self.settings.serving, self.metrics
        start = time.perf_counter()
        try:
            size = len(msg.text.encode())
        except UnicodeEncodeError as exc:  # a lone surrogate, valid in JSON: not text
            raise unencodable_text(msg.text) from exc
        if size > limits.max_text_bytes:
            self.count_too_large()
            raise HTTPError(413, f"text is over {limits.max_text_bytes} bytes")
        active = self.holder.current
        if active is None:
            metrics.requests.labels("not_ready").inc()
            raise HTTPError(503, "model is loading", {"Retry-After": "2"})
        metrics.queue_depth.set(self.batcher.depth)
        try:
            raw = await self.batcher.submit(msg.text, limits.request_timeout_s)
        except QueueFull as exc:
            metrics.requests.labels("rejected_busy").inc()
            raise HTTPError(503, str(exc), {"Retry-After": "1"}) from exc
        except DeadlineExceeded as exc:
            metrics.requests.labels("timeout").inc()
            raise HTTPError(504, str(exc)) from exc
        except BatchFailed as exc:
            metrics.requests.labels("error").inc()
            raise HTTPError(500, str(exc)) from exc
        current = self.holder.current or active
        model = current if current.version == raw.version else active
        strategy = self.strategy(model)
        ctx = ReplyContext(
            text=msg.text,
            intent=raw.intent,
            confidence=raw.confidence,
            ranking=raw.ranking,
            sentiment=raw.sentiment,
            out_of_scope=raw.out_of_scope,
            threshold=raw.threshold,
            history=msg.history,
        )
        reply = await strategy.reply(ctx)
        metrics.replies.labels(reply.strategy).inc()
        intent_name = raw.out_of_scope if (ctx.unsure and raw.out_of_scope) else raw.intent
        elapsed = time.perf_counter() - start
        metrics.latency.observe(elapsed)
        metrics.requests_ok.inc()
        prediction = Prediction(
            intent=IntentResult(
                name=intent_name,
                confidence=raw.confidence,
                ranking=[RankedIntent(name=n, confidence=c) for n, c in raw.ranking],
            ),
            sentiment=SentimentResult(label=raw.sentiment, score=raw.sentiment_score),  # type: ignore[arg-type]
            reply=reply,
            model_version=raw.version,
            latency_ms=round(elapsed * 1000, 3),
        )
        return prediction.model_dump_json().encode()
