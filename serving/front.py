"""The server's outermost ASGI layer: body limits for every route, and ``POST /v1/predict``
answered here, in plain ASGI, instead of through FastAPI's stack.

Why: on a machine with few cores the event loop's work per request is taken from the cores the
model's forward pass runs on, and a preempted intra-op thread stalls the others at each
operator, so every microsecond of event-loop work per request costs throughput. FastAPI's
middleware, routing, dependency solving and response classes were a large share of the event
loop's work per prediction, and none of it is needed for one fixed route. The FastAPI route
stays declared (``/docs``, the OpenAPI schema) and calls the same handler; this layer answers
with the same statuses and the same bytes as FastAPI would (422 with the validation errors
located in ``body``, 400 for a body that cannot be parsed).

Every error answer renders whatever the client sent: a validation error echoes its input, which
may hold a lone surrogate (valid JSON, ``"\\ud800"``, but not encodable as UTF-8), NaN (Python's
JSON reader takes it), raw bytes that are not UTF-8, or a list nested a thousand deep. FastAPI's own
handlers answer those with a 500, so both this front and the FastAPI app (``serving.app``) render
their errors through :func:`error_response`, which makes such input printable first.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from email.message import Message
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from thumbloop.contracts import IncomingMessage

log = logging.getLogger(__name__)

PREDICT_PATH = "/v1/predict"
# an echoed input nested deeper than this is cut: rendering it would recurse once per level, and
# a body may nest about as deep as the interpreter's recursion limit
MAX_ECHO_DEPTH = 32
# pydantic's own error for a string it cannot read as Unicode (what it answers for a lone surrogate
# in a constrained field such as ``conversation_id``); a lone surrogate in ``text`` gets the same
UNENCODABLE = "Input should be a valid string, unable to parse raw data as a unicode string"


class HTTPError(Exception):
    """An answer other than 200: status, ``detail`` (a message, or FastAPI's list of
    validation errors) and extra headers."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


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
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_body_bytes:
                # refused by its Content-Length, before the body is read
                await _refuse(self._over_limit(), scope, receive, send)
                return
            if scope["path"] == PREDICT_PATH and scope["method"] == "POST":
                await self._predict(scope, receive, send, headers.get(b"content-type"))
                return
            # any other route: a chunked body has no length to refuse it by, so count it as
            # the app reads it (FastAPI passes an HTTPException from the body's read through)
            await self.app(scope, self._counted(receive), send)
            return
        await self.app(scope, receive, send)

    def _counted(self, receive: Receive) -> Receive:
        size = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_body_bytes:
                    too_large = self._over_limit()
                    raise StarletteHTTPException(too_large.status, too_large.detail)
            return message

        return counted

    def _over_limit(self) -> HTTPError:
        self.on_too_large()
        return HTTPError(413, "request body too large")

    async def _predict(
        self, scope: Scope, receive: Receive, send: Send, content_type: bytes | None
    ) -> None:
        try:
            body = await self._read_body(receive)
            if body is None:  # the client went away
                return
            payload = await self.predict(parse_message(body, content_type))
        except HTTPError as exc:
            await _refuse(exc, scope, receive, send)
            return
        except Exception:  # a bug must not leave the client without an answer
            log.exception("predict failed")
            await _refuse(HTTPError(500, "Internal Server Error"), scope, receive, send)
            return
        # the hot path writes its two messages itself: a Response object costs more per request
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None when the client went away; over the limit (a chunked upload
        gives no length to refuse it by) raises the 413."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._over_limit()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _refuse(exc: HTTPError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(exc.status, exc.detail, exc.headers)(scope, receive, send)


def error_response(status: int, detail: Any, headers: Mapping[str, str] | None = None) -> Response:
    """``{"detail": ...}`` with ``status``, as FastAPI answers an HTTP error, whatever the detail
    echoes of the client's input (:func:`printable`)."""
    if not is_body_allowed_for_status_code(status):
        return Response(status_code=status, headers=headers)
    return JSONResponse({"detail": printable(detail)}, status, dict(headers) if headers else None)


def printable(value: Any, depth: int = 0) -> Any:
    """``value`` with what JSON cannot render replaced: lone surrogates by U+FFFD, bytes decoded
    as UTF-8 (as FastAPI decodes them, but never failing), NaN and the infinities by their names
    in the body, and containers nested past ``MAX_ECHO_DEPTH`` by ``"..."``."""
    if isinstance(value, str):
        return well_formed(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict | list | tuple) and depth >= MAX_ECHO_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {printable(k, depth + 1): printable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v, depth + 1) for v in value]
    return value  # anything else is jsonable_encoder's to turn into JSON, as in FastAPI


def well_formed(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (a pair of surrogates becomes the
    character it encodes)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def unencodable_text(text: str) -> HTTPError:
    """The 422 for a ``text`` that holds a lone surrogate: JSON can carry one (``"\\ud800"``),
    but it is not Unicode text, and the tokenizer, the size check and the reply would fail on
    it. The same error pydantic gives such a string in a field with constraints."""
    error = {"type": "string_unicode", "loc": ["body", "text"], "msg": UNENCODABLE, "input": text}
    return HTTPError(422, [error])


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
            raise HTTPError(422, [error]) from exc
        except (ValueError, RecursionError) as exc:  # not UTF-8, or nested too deep
            raise HTTPError(400, "There was an error parsing the body") from exc
    elif body:
        obj = body  # not JSON: fails validation as FastAPI's does
    if obj is _NO_BODY:
        raise HTTPError(
            422, [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        )
    try:
        return IncomingMessage.model_validate(obj, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise HTTPError(422, jsonable_encoder(printable(errors))) from exc
