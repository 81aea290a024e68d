"""The server's outermost ASGI layer: body limits for every route, and ``POST /v1/predict``
answered here, in plain ASGI, instead of through FastAPI's stack.

Why: on 2 CPU cores the event loop's work per request is taken from the cores the model's
forward pass runs on, and a preempted intra-op thread stalls the other at each operator. In
process, adding 200 / 400 µs of event-loop work per request cost 8 / 24 % of the batcher's
throughput at concurrency 32; FastAPI's middleware, routing, dependency solving and response
classes were about half of the ~540 µs the event loop spent per prediction. The FastAPI route
stays declared (``/docs``, the OpenAPI schema) and calls the same handler; this layer answers
with the same statuses and the same bytes as FastAPI would (422 with the validation errors
located in ``body``, 400 for a body that cannot be parsed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from email.message import Message
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from thumbloop.contracts import IncomingMessage

log = logging.getLogger(__name__)

PREDICT_PATH = "/v1/predict"


class HTTPError(Exception):
    """An answer other than 200 (status, message, extra headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


PredictHandler = Callable[[IncomingMessage], Awaitable[bytes]]


def _is_json(content_type: bytes | None) -> bool:
    """FastAPI's (strict) rule: ``application/json`` or any ``+json`` subtype."""
    if content_type == b"application/json":  # what every client of ours sends
        return True
    if not content_type:
        return False
    msg = Message()
    msg["content-type"] = content_type.decode("latin-1")
    subtype = msg.get_content_subtype()
    return msg.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class ServingFront:
    def __init__(
        self,
        app: ASGIApp,
        predict: PredictHandler,
        max_body_bytes: int,
        on_too_large: Callable[[], None],
    ) -> None:
        self.app, self.predict = app, predict
        self.max_body_bytes, self.on_too_large = max_body_bytes, on_too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            # refused by its Content-Length, before the body is read
            self.on_too_large()
            await _send_json(send, 413, {"detail": "request body too large"})
            return
        if scope["path"] != PREDICT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive, self.max_body_bytes)
        except _TooLarge:
            self.on_too_large()
            await _send_json(send, 413, {"detail": "request body too large"})
            return
        if body is None:  # the client went away
            return
        await self._predict(body, headers.get(b"content-type"), send)

    async def _predict(self, body: bytes, content_type: bytes | None, send: Send) -> None:
        try:
            msg = parse_message(body, content_type)
            payload = await self.predict(msg)
        except BadRequest as exc:
            await _send_json(send, exc.status, {"detail": exc.detail})
            return
        except HTTPError as exc:
            await _send_json(send, exc.status, {"detail": exc.message}, exc.headers)
            return
        except Exception:  # a bug must not leave the client without an answer
            log.exception("predict failed")
            await _send_json(send, 500, {"detail": "Internal Server Error"})
            return
        await _send(send, 200, payload)


class BadRequest(Exception):
    """A body FastAPI would refuse: 422 with its validation errors, or 400 when unreadable."""

    def __init__(self, detail: list[dict[str, Any]] | str, status: int = 422) -> None:
        super().__init__(detail)
        self.detail, self.status = detail, status


_NO_BODY = object()


def parse_message(body: bytes, content_type: bytes | None) -> IncomingMessage:
    """The body as FastAPI reads a JSON body parameter, with its error answers on failure."""
    obj: Any = _NO_BODY
    if body and _is_json(content_type):
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as exc:
            error = {
                "type": "json_invalid",
                "loc": ["body", exc.pos],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": exc.msg},
            }
            raise BadRequest([error]) from exc
        except (ValueError, RecursionError) as exc:  # not UTF-8, or nested too deep
            raise BadRequest("There was an error parsing the body", status=400) from exc
    elif body:
        obj = body  # not JSON: fails validation as FastAPI's does
    if obj is _NO_BODY:
        raise BadRequest(
            [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        )
    try:
        return IncomingMessage.model_validate(obj, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise BadRequest(jsonable_encoder(errors)) from exc


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None when the client went away; over ``limit`` (a chunked upload
    gives no length to refuse it by) raises :class:`_TooLarge`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _send_json(
    send: Send, status: int, content: object, headers: dict[str, str] | None = None
) -> None:
    # as Starlette's JSONResponse renders it
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    await _send(send, status, body, headers)
