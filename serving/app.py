"""The serving worker's HTTP API: FastAPI behind a plain-ASGI front for ``POST /v1/predict``
(:mod:`serving.front`). Build with :func:`create_app`; run with uvicorn.

The routes are methods of :class:`Routes`, which only turns :class:`serving.state.ServingState`
into HTTP answers; :func:`create_app` wires the two together.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.front import HTTPError, ServingFront, error_response, printable
from serving.state import ServingState
from thumbloop.contracts import IncomingMessage, IntentAnswerRequest, Prediction, Reply
from thumbloop.settings import Settings


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


class Routes:
    """The FastAPI routes; FastAPI names each route (and its OpenAPI operation) after its method."""

    def __init__(self, state: ServingState) -> None:
        self.state = state

    async def predict(self, msg: IncomingMessage) -> Response:
        """Classify one message and choose a reply. Text longer than the model's window
        (``THUMBLOOP_MAX_SEQ_LEN`` tokens) is truncated; over ``THUMBLOOP_MAX_TEXT_BYTES`` → 413.
        Served by :class:`serving.front.ServingFront` ahead of FastAPI, with this contract."""
        try:
            body = await self.state.answer(msg)
        except HTTPError as exc:
            raise HTTPException(exc.status, exc.detail, exc.headers) from exc
        return Response(body, media_type="application/json")

    async def answer(self, req: IntentAnswerRequest) -> Reply:
        """The reply to an intent the user picked after a 👎 or a question to clarify: a
        template of that intent, chosen as for a prediction (Thompson sampling); 422 for an
        intent the served model does not know."""
        try:
            return await self.state.answer_intent(req)
        except HTTPError as exc:
            raise HTTPException(exc.status, exc.detail, exc.headers) from exc

    async def model_info(self) -> ModelInfo:
        state = self.state
        active = state.holder.current
        if active is None:
            raise HTTPException(503, "model is loading", {"Retry-After": "2"})
        return ModelInfo(
            version=active.version,
            uri=state.model_uri,
            alias=state.alias,
            loaded_at=active.loaded_at.isoformat(),
            device=str(state.device),
            compute_dtype=active.bundle.compute_dtype_name,
            model_processes=state.processes,
            domain=active.bundle.meta.get("domain"),
            intents=len(active.bundle.intents),
            reply_strategy=state.settings.replies.reply_strategy,
            generator=state.generator.version if state.generator else None,
            generator_state=state.generator.state if state.generator else None,
        )

    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    async def readyz(self) -> JSONResponse:
        state = self.state
        active = state.holder.current
        if active is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        if active.pool is not None and active.pool.working_lanes == 0:
            # every model process is starting again (it died or hung) or cannot be started:
            # requests would only wait or fail
            return JSONResponse({"status": "no model process is running"}, status_code=503)
        if state.generator is not None and state.generator.state == "loading":
            # a generator that failed to load does not hold readiness back: templates answer
            return JSONResponse({"status": "loading generator"}, status_code=503)
        return JSONResponse({"status": "ready", "version": active.version})

    async def metrics(self) -> PlainTextResponse:
        state = self.state
        state.metrics.queue_depth.set(state.batcher.depth)
        return PlainTextResponse(
            generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )


async def _http_error(_request: Request, exc: Exception) -> Response:
    """FastAPI's answer to an HTTP error, rendered as the front renders its own."""
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def _invalid_body(_request: Request, exc: Exception) -> Response:
    """FastAPI's 422, with the echoed input made printable first: FastAPI's own handler answers
    500 for a lone surrogate, NaN, bytes that are not UTF-8 or deep nesting in the input."""
    assert isinstance(exc, RequestValidationError)
    return error_response(422, jsonable_encoder(printable(exc.errors())))


def create_app(settings: Settings, model_uri: str | None = None) -> ServingFront:
    """The FastAPI app behind :class:`ServingFront` (which answers ``POST /v1/predict``)."""
    state = ServingState(settings, model_uri or settings.model_uri)
    routes = Routes(state)
    app = FastAPI(
        title="Thumbloop serving",
        version="1",
        description="Intent, sentiment and a reply for one chat message, batched on the server.",
        lifespan=state.lifespan,
    )
    app.state.serving = state
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.post(
        "/v1/predict",
        response_model=Prediction,
        responses={413: {"description": "text too long"}, 503: {"description": "busy or loading"}},
    )(routes.predict)
    app.post("/v1/answer", response_model=Reply)(routes.answer)
    app.get("/v1/model", response_model=ModelInfo)(routes.model_info)
    app.get("/healthz")(routes.healthz)
    app.get("/readyz")(routes.readyz)
    app.get("/metrics")(routes.metrics)
    return ServingFront(
        app,
        state.answer,
        max_body_bytes=4 * settings.serving.max_text_bytes + 65_536,
        on_too_large=state.count_too_large,
    )
