"""The plain-ASGI front of the serving app answers ``POST /v1/predict`` the way FastAPI's route
would: the same statuses and the same error bodies, so clients cannot tell the difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.front import HTTPError, ServingFront
from thumbloop.contracts import IncomingMessage
from thumbloop.settings import Settings

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> ServingFront:
    home = tmp_path_factory.mktemp("home")
    # no lifespan in these tests, so no model is loaded: a valid message gets the 503
    return create_app(Settings(home=Path(home), max_text_bytes=1000), "/nonexistent/bundle")


BAD_BODIES: list[tuple[bytes, dict[str, str]]] = [
    (b'{"text": "   "}', JSON),
    (b'{"text": ""}', JSON),
    (b'{"text": 42}', JSON),
    (b'{"text": "hi", "history": "no"}', JSON),
    (b'{"text": "hi", "platform": "fax"}', JSON),
    (b'{"text": "hi", "conversation_id": ""}', JSON),
    (b"{}", JSON),
    (b"[]", JSON),
    (b"{not json", JSON),
    (b'"just a string"', JSON),
    (b"", JSON),
    (b"null", JSON),
    ('{"text": "é", "platform": "télex"}'.encode(), JSON),  # the error echoes non-ASCII input
    (b'{"text": "\xff"}', JSON),  # not UTF-8: 400
    (b"[" * 5000, JSON),  # nested too deep: 400
    (b"[" * 900 + b"]" * 900, JSON),  # nested deep but parsed: the echoed input is cut
    # what JSON carries but an answer cannot simply echo: lone surrogates (escaped, or as the
    # bytes Python's JSON reader decodes to one), NaN and the infinities, non-UTF-8 bytes
    (b'{"text": "\\ud800"}', JSON),
    (b'{"text": "hi \\udfff there"}', JSON),
    (b'{"text": "\xed\xa0\x80"}', JSON),
    (b'{"text": "hi", "platform": "\\ud800"}', JSON),
    (b'{"text": "hi", "conversation_id": "\\udc00"}', JSON),
    (b'{"text": "hi", "history": [{"role": "user", "text": "\\udc00"}]}', JSON),
    (b'{"text": "hi", "\\ud800": 1}', JSON),
    (b'{"text": NaN}', JSON),
    (b"[Infinity, -Infinity]", JSON),
    (b"\xff\xfe", {"content-type": "text/plain"}),
    (b'{"text": "hi"}', {"content-type": "text/plain"}),
    (b'{"text": "hi"}', {"content-type": "application/vnd.api+json"}),
    (b'{"text": "hi"}', {}),
]


@pytest.mark.parametrize(("body", "headers"), BAD_BODIES)
def test_answers_like_the_fastapi_route(
    front: ServingFront, body: bytes, headers: dict[str, str]
) -> None:
    fast = TestClient(front).post("/v1/predict", content=body, headers=headers)
    reference = TestClient(front.app).post("/v1/predict", content=body, headers=headers)
    assert fast.status_code == reference.status_code, (fast.text, reference.text)
    assert fast.content == reference.content
    for header in ("content-type", "retry-after"):
        assert fast.headers.get(header) == reference.headers.get(header)
    assert fast.status_code in (400, 422, 503)


@pytest.mark.parametrize(
    "body", [b'{"text": "\\ud800"}', b'{"text": "a\\udfffb"}', b'{"text": "\xed\xa0\x80"}']
)
def test_a_lone_surrogate_in_the_text_is_422_not_500(front: ServingFront, body: bytes) -> None:
    r = TestClient(front).post("/v1/predict", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    r.content.decode()  # a well-formed answer: the surrogate is not echoed as such
    [error] = r.json()["detail"]
    assert error["type"] == "string_unicode" and error["loc"] == ["body", "text"]
    assert "\ufffd" in error["input"]


def test_a_valid_message_without_a_model_is_503_with_retry_after(front: ServingFront) -> None:
    r = TestClient(front).post("/v1/predict", json={"text": "where is my card?"})
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json() == {"detail": "model is loading"}


def test_text_over_the_byte_limit_is_413(front: ServingFront) -> None:
    r = TestClient(front).post("/v1/predict", json={"text": "é" * 600})  # 1,200 bytes
    assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]


def _too_large(client: TestClient) -> float:
    prefix = 'thumbloop_requests_total{outcome="too_large"} '
    lines = [ln for ln in client.get("/metrics").text.splitlines() if ln.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


def test_bodies_over_the_limit_are_refused_on_every_route(front: ServingFront) -> None:
    client = TestClient(front)
    before = _too_large(client)
    big = b"x" * (front.max_body_bytes + 1)
    for path in ("/v1/predict", "/healthz"):
        r = client.post(path, content=big, headers=JSON)
        assert r.status_code == 413 and r.json() == {"detail": "request body too large"}

    def chunks() -> Any:  # no Content-Length: refused while it is read
        for _ in range(4):
            yield b"x" * (front.max_body_bytes // 2)

    r = client.post("/v1/predict", content=chunks(), headers=JSON)
    assert r.status_code == 413
    assert _too_large(client) == before + 3


def test_other_routes_reach_fastapi(front: ServingFront) -> None:
    client = TestClient(front)
    assert client.get("/healthz").json() == {"status": "ok"}
    model = client.get("/v1/model")
    assert model.status_code == 503 and model.json() == {"detail": "model is loading"}
    assert client.get("/v1/predict").status_code == 405
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


async def _fails(msg: IncomingMessage) -> bytes:
    if msg.text == "busy":
        raise HTTPError(503, "queue is full", {"Retry-After": "1"})
    raise RuntimeError("a bug")


def test_handler_errors_become_answers_not_dropped_connections() -> None:
    async def nothing(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the predict route must not reach the inner app")

    client = TestClient(ServingFront(nothing, _fails, 10_000, lambda: None))
    busy = client.post("/v1/predict", json={"text": "busy"})
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json() == {"detail": "queue is full"}
    bug = client.post("/v1/predict", json={"text": "anything"})
    assert bug.status_code == 500 and bug.json() == {"detail": "Internal Server Error"}
