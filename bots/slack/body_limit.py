"""The Slack HTTP endpoint's body cap: pure ASGI, in front of bolt, so an unsigned body of any
size is refused before it is read whole or its signature checked."""

from __future__ import annotations

import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Pure ASGI middleware: a request body over ``max_bytes`` gets 413 and the connection is
    closed, before the app (and bolt's signature check) sees any of it.

    A ``Content-Length`` over the limit is refused before a byte of the body is read; a body
    without one (chunked) is counted as it arrives and refused as soon as it passes the limit.
    What is under the limit is handed on whole: the signature covers the whole body anyway.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nothing to answer
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await _too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


async def _too_large(send: Send) -> None:
    # Connection: close tells uvicorn not to read on for a next request behind this body.
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": b"request body too large"})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the client's disconnect, as the app expects

    return replay
