"""``POST /v1/predict`` fuzzed against the real app with a loaded model: whatever the body (any
JSON value, any text including lone surrogates, NUL and control characters, deep nesting, wrong
types, bytes that are not UTF-8), the answer is never a 500, and the plain-ASGI front answers as
FastAPI's route does."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from serving.app import create_app
from tests.tiny_bundle import make_tiny_bundle
from thumbloop.contracts import Prediction
from thumbloop.settings import Settings

REFERENCE = "x-thumbloop-reference"  # this header sends a request to FastAPI's route instead

# the characters that broke answers before, mixed into arbitrary text
ODD = ["\ud800", "\udfff", "\udc00\ud800", "\x00", "a\x00b", "\x1b[2J", "\u200b", "\ufeff", "\r\n"]
TEXT = st.text(st.characters(exclude_categories=()), max_size=40) | st.sampled_from(ODD)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
TURNS = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]) | TEXT, "text": TEXT | VALUES}
    ),
    max_size=3,
)
MESSAGES = st.fixed_dictionaries(
    {"text": TEXT | VALUES},
    optional={
        "conversation_id": TEXT | VALUES,
        "history": TURNS | VALUES,
        "platform": st.sampled_from(["api", "telegram"]) | TEXT,
        "extra": VALUES,
    },
)
DEEP = st.builds(
    lambda n, shape: shape.replace("X", "[" * n, 1).replace("Y", "]" * n, 1).encode(),
    st.integers(1, 3000),
    st.sampled_from(["XY", '{"text": XY}', 'X{"text": "hi"}Y', '{"text": "hi", "history": XY}']),
)
# well-typed messages whose strings are arbitrary: most reach the model
TYPED = st.fixed_dictionaries(
    {"text": TEXT},
    optional={
        "conversation_id": TEXT,
        "history": st.lists(
            st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "text": TEXT}),
            max_size=3,
        ),
        "platform": st.sampled_from(["api", "telegram", "slack"]),
    },
)
CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 6 + ["application/json; charset=utf-8", "text/plain", ""]
)


def _encode(value: Any, escaped: bool) -> bytes:
    """JSON text for ``value``; lone surrogates escaped (``\\ud800``), or written as the bytes
    of their code points (not UTF-8; Python's JSON reader still decodes them)."""
    if escaped:
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(["typed"] * 3 + ["message"] * 2 + ["value", "deep", "bytes", "spliced"])
    )
    if kind == "deep":
        return draw(DEEP)
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    value = draw({"typed": TYPED, "value": VALUES}.get(kind, MESSAGES))
    body = _encode(value, draw(st.booleans()))
    if kind == "spliced":  # a valid body with a few arbitrary bytes put in somewhere
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=3)) + body[at:]
    return body


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    bundle = make_tiny_bundle(tmp_path_factory.mktemp("tiny") / "bundle", favour="card_arrival")
    settings_ = Settings(
        home=tmp_path_factory.mktemp("home"),
        device="cpu",
        cpu_bf16="off",
        model_processes=0,
        max_text_bytes=2_000,
    )
    front = create_app(settings_, str(bundle))

    async def either(scope: Any, receive: Any, send: Any) -> None:
        """The front, or with the ``REFERENCE`` header FastAPI's route, in one event loop (the
        batcher answers on the loop it started on)."""
        reference = scope["type"] == "http" and any(
            k == REFERENCE.encode() for k, _ in scope["headers"]
        )
        await (front.app if reference else front)(scope, receive, send)

    with TestClient(either) as c:  # runs the lifespan: the model loads
        deadline = time.monotonic() + 120
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the model never loaded"
            time.sleep(0.1)
        yield c


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=bodies(), content_type=CONTENT_TYPES)
def test_no_body_gets_a_500(client: TestClient, body: bytes, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    fast = client.post("/v1/predict", content=body, headers=headers)
    reference = client.post("/v1/predict", content=body, headers=headers | {REFERENCE: "1"})
    event(f"status {fast.status_code}")  # the mix shows with --hypothesis-show-statistics
    assert fast.status_code in (200, 400, 413, 422), (body, fast.status_code, fast.text)
    assert fast.status_code == reference.status_code, (body, fast.text, reference.text)
    if fast.status_code == 200:
        Prediction.model_validate_json(fast.content)
        return
    assert fast.content == reference.content
    assert "detail" in json.loads(fast.content.decode())  # well-formed JSON in strict UTF-8


@pytest.mark.parametrize(
    "text", ["a\x00b", "\x00", "\x1b[31mred\x1b[0m", "\u200b\u200b", "\ufeffhi", "é" * 900]
)
def test_odd_but_valid_text_is_answered(client: TestClient, text: str) -> None:
    r = client.post("/v1/predict", json={"text": text})
    assert r.status_code == 200, r.text
    assert Prediction.model_validate_json(r.content).intent.name == "card_arrival"


def test_a_chunked_body_over_the_limit_is_refused_on_every_route(client: TestClient) -> None:
    """No Content-Length to refuse it by: the front counts the body as the app reads it, on
    FastAPI's routes (``/v1/answer``) too, not only on its own ``/v1/predict``."""

    def megabyte() -> Iterator[bytes]:
        for _ in range(16):
            yield b"a" * (1 << 16)

    for path in ("/v1/answer", "/v1/predict"):
        r = client.post(path, content=megabyte(), headers={"content-type": "application/json"})
        assert r.status_code == 413, (path, r.status_code, r.text)
        assert r.json() == {"detail": "request body too large"}
    # a small body on the same route is read as before
    small = client.post("/v1/answer", json={"text": "where is my card"})
    assert small.status_code == 422  # valid JSON, not an IntentAnswerRequest
