"""The serving worker's HTTP API: FastAPI behind a plain-ASGI front for ``POST /v1/predict``
(:mod:`serving.front`). Build with :func:`create_app`; run with uvicorn."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from serving.batcher import BatchFailed, BatchStats, DeadlineExceeded, DynamicBatcher, QueueFull
from serving.engine import ActiveModel, ModelHolder, RawOutput, load_active, settle_heap
from serving.front import HTTPError, ServingFront
from serving.pool import PoolConfig, pool_size
from serving.prometheus import ServingMetrics
from serving.replies.generative import GenerativeReplies, GeneratorService
from serving.replies.posteriors import PosteriorStore, RedisPosteriors, SqlPosteriors
from serving.replies.strategies import ReplyContext, ReplyStrategy, TemplateReplies
from serving.watcher import AliasWatcher
from thumbloop.contracts import (
    IncomingMessage,
    IntentResult,
    Prediction,
    RankedIntent,
    SentimentResult,
)
from thumbloop.model.device import resolve_device, use_cpu_bf16
from thumbloop.settings import Settings

log = logging.getLogger(__name__)


class ModelInfo(BaseModel):
    version: str
    uri: str
    alias: str | None
    loaded_at: str
    device: str
    compute_dtype: str  # float32, or the autocast dtype (bfloat16 / float16)
    model_processes: int  # 0: the model runs in the server process
    domain: str | None
    intents: int
    reply_strategy: str
    generator: str | None = None  # the version, once loaded
    generator_state: str | None = None  # loading | ready | failed (generative strategy only)


class ServingState:
    def __init__(self, settings: Settings, model_uri: str) -> None:
        self.settings = settings
        self.model_uri = model_uri
        self.metrics = ServingMetrics()
        self.holder = ModelHolder(
            settings.max_seq_len, settings.low_confidence, settings.sub_batch_size
        )
        self.device = resolve_device(settings.device, settings.cpu_threads)
        self.processes = pool_size(settings.model_processes, self.device.type)
        self.pool = (
            PoolConfig(
                processes=self.processes,
                threads=max(1, torch.get_num_threads() // self.processes),
                max_seq_len=settings.max_seq_len,
                sub_batch=settings.sub_batch_size,
                threshold=settings.low_confidence,
                cpu_bf16=use_cpu_bf16(settings.cpu_bf16),
            )
            if self.processes
            else None
        )
        self.batcher: DynamicBatcher[str, RawOutput] = DynamicBatcher(
            [self.holder.lane(k) for k in range(max(1, self.processes))],
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
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
            if settings.reply_strategy == "generative"
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
            s.max_seq_len,
            use_cpu_bf16(s.cpu_bf16),
            # only a generative server loads the bundle's generator, and so needs its base
            fetch_generator_base=self.generator is not None,
            pool=self.pool,
            on_pool_restart=self.metrics.model_process_restarts.inc,
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
                    self.settings.generator_history_turns,
                    self.settings.generator_max_chars,
                )
                if self.generator is not None
                else templates
            )
        return self.strategies[key]


def create_app(settings: Settings, model_uri: str | None = None) -> ServingFront:
    """The FastAPI app behind :class:`ServingFront` (which answers ``POST /v1/predict``)."""
    uri = model_uri or settings.model_uri
    state = ServingState(settings, uri)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        if state.generator is not None:
            state.generator.start()
        loader = asyncio.create_task(_initial_load())
        if uri.startswith("models:/") and "@" in uri:
            state.watcher = AliasWatcher(
                uri,
                settings.effective_tracking_uri,
                state.holder,
                state.load,
                settings.watch_interval_s,
                state.on_loaded,
            )
            state.watcher.start()
        try:
            yield
        finally:
            loader.cancel()
            if state.watcher:
                await state.watcher.stop()
            await state.batcher.stop()
            await asyncio.to_thread(state.holder.close)
            if state.generator is not None:
                await state.generator.stop()
            close = getattr(state.posteriors, "close", None)
            if close:
                await close()

    async def _initial_load() -> None:
        delay = 1.0
        while state.holder.current is None:
            try:
                active = await asyncio.to_thread(state.load, uri)
            except Exception as exc:
                state.metrics.model_loads.labels("failed").inc()
                log.error("cannot load %s (%s); retrying in %.0f s", uri, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if state.holder.install_first(active):
                state.on_loaded(active.version, active)

    app = FastAPI(
        title="Thumbloop serving",
        version="1",
        description="Intent, sentiment and a reply for one chat message, batched on the server.",
        lifespan=lifespan,
    )
    app.state.serving = state

    async def answer(msg: IncomingMessage) -> bytes:
        """One prediction as JSON bytes; other answers raise :class:`HTTPError`."""
        start = time.perf_counter()
        if len(msg.text.encode()) > settings.max_text_bytes:
            state.metrics.requests.labels("too_large").inc()
            raise HTTPError(413, f"text is over {settings.max_text_bytes} bytes")
        active = state.holder.current
        if active is None:
            state.metrics.requests.labels("not_ready").inc()
            raise HTTPError(503, "model is loading", {"Retry-After": "2"})
        state.metrics.queue_depth.set(state.batcher.depth)
        try:
            raw = await state.batcher.submit(msg.text, settings.request_timeout_s)
        except QueueFull as exc:
            state.metrics.requests.labels("rejected_busy").inc()
            raise HTTPError(503, str(exc), {"Retry-After": "1"}) from exc
        except DeadlineExceeded as exc:
            state.metrics.requests.labels("timeout").inc()
            raise HTTPError(504, str(exc)) from exc
        except BatchFailed as exc:
            state.metrics.requests.labels("error").inc()
            raise HTTPError(500, str(exc)) from exc
        current = state.holder.current or active
        model = current if current.version == raw.version else active
        strategy = state.strategy(model)
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
        state.metrics.replies.labels(reply.strategy).inc()
        intent_name = raw.out_of_scope if (ctx.unsure and raw.out_of_scope) else raw.intent
        elapsed = time.perf_counter() - start
        state.metrics.latency.observe(elapsed)
        state.metrics.requests_ok.inc()
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

    @app.post(
        "/v1/predict",
        response_model=Prediction,
        responses={413: {"description": "text too long"}, 503: {"description": "busy or loading"}},
    )
    async def predict(msg: IncomingMessage) -> Response:
        """Classify one message and choose a reply. Text longer than the model's window
        (``THUMBLOOP_MAX_SEQ_LEN`` tokens) is truncated; over ``THUMBLOOP_MAX_TEXT_BYTES`` → 413.
        Served by :class:`serving.front.ServingFront` ahead of FastAPI, with this contract."""
        try:
            body = await answer(msg)
        except HTTPError as exc:
            raise HTTPException(exc.status, exc.detail, exc.headers) from exc
        return Response(body, media_type="application/json")

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        active = state.holder.current
        if active is None:
            raise HTTPException(503, "model is loading", {"Retry-After": "2"})
        return ModelInfo(
            version=active.version,
            uri=uri,
            alias=uri.split("@", 1)[1] if uri.startswith("models:/") and "@" in uri else None,
            loaded_at=active.loaded_at.isoformat(),
            device=str(state.device),
            compute_dtype=active.bundle.compute_dtype_name,
            model_processes=state.processes,
            domain=active.bundle.meta.get("domain"),
            intents=len(active.bundle.intents),
            reply_strategy=settings.reply_strategy,
            generator=state.generator.version if state.generator else None,
            generator_state=state.generator.state if state.generator else None,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        active = state.holder.current
        if active is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        if state.generator is not None and state.generator.state == "loading":
            # a generator that failed to load does not hold readiness back: templates answer
            return JSONResponse({"status": "loading generator"}, status_code=503)
        return JSONResponse({"status": "ready", "version": active.version})

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        state.metrics.queue_depth.set(state.batcher.depth)
        return PlainTextResponse(
            generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    return ServingFront(
        app,
        answer,
        max_body_bytes=4 * settings.max_text_bytes + 65_536,
        on_too_large=lambda: state.metrics.requests.labels("too_large").inc(),
    )
