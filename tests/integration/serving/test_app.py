"""The serving worker for real: uvicorn on loopback, a model from a real MLflow store,
batching observed through /metrics, an alias move under load, a broken version, a version whose
outputs are NaN, a hung model process, Redis down."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from learning.registry.client import configure
from learning.registry.versions import log_and_register
from serving.app import create_app
from serving.client import ServingClient, ServingRejected, ServingUnavailable
from serving.state import ServingState
from tests.integration.servers import run_uvicorn
from tests.integration.serving.bundles import corrupt_heads, nan_heads
from tests.services import redis_url
from thumbloop.contracts import IncomingMessage, IntentAnswerRequest, Prediction
from thumbloop.model.device import cpu_has_native_bf16
from thumbloop.settings import Settings

pytestmark = [pytest.mark.redis]

NAME = "thumbloop-serve"


def _register(settings: Settings, bundle: Path, kind: str, gate: str = "passed") -> str:
    """A version whose gate said ``gate`` (broken ones pass it too: their load must stop them)."""
    tags = {"kind": kind, "gate": gate}
    reg = log_and_register(
        settings, bundle, params={}, metrics={}, artifacts={}, dicts={}, tags=tags
    )
    return reg.version


@pytest.fixture(scope="module")
def serve_settings(tiny_settings: Settings) -> Settings:
    return Settings(
        home=tiny_settings.home,
        device="cpu",
        model_name=NAME,
        watch_interval_s=0.3,
        max_wait_ms=10,
        max_batch_size=32,
        model_processes=2,  # the CPU default where there are 2 cores or more, on any machine
        redis_url=redis_url(0),
    )


@pytest.fixture(scope="module")
def versions(
    tiny_registered, serve_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """v1 (champion) and v2: the same good bundle; v3: a bundle whose heads are corrupt; v4: one
    whose intent head's weights are NaN (it loads, and answers NaN); v5: the good bundle, but
    its gate failed."""
    good = tiny_registered.bundle_dir
    v1 = _register(serve_settings, good, "test")
    v2 = _register(serve_settings, good, "test")
    tmp = tmp_path_factory.mktemp("bad")
    v3 = _register(serve_settings, corrupt_heads(good, tmp / "broken"), "broken")
    v4 = _register(serve_settings, nan_heads(good, tmp / "nan"), "broken")
    v5 = _register(serve_settings, good, "retrain", gate="failed")
    client = configure(serve_settings)
    client.set_registered_model_alias(NAME, "champion", v1)
    return {"v1": v1, "v2": v2, "v3": v3, "v4": v4, "v5": v5}


@pytest.fixture(scope="module")
def server(serve_settings: Settings, versions: dict[str, str]) -> Iterator[str]:
    with run_uvicorn(create_app(serve_settings)) as base:
        yield base


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_predict_returns_a_full_prediction(server: str, versions: dict[str, str]) -> None:
    r = httpx.post(
        f"{server}/v1/predict",
        json={"text": "my card has not arrived yet", "conversation_id": "c1"},
    )
    assert r.status_code == 200, r.text
    p = Prediction.model_validate_json(r.content)
    assert p.model_version == f"{NAME}/{versions['v1']}"
    assert p.intent.name == "card_arrival"
    assert len(p.intent.ranking) == 4
    assert p.reply.text and p.reply.response_id.startswith("card_arrival/")
    info = httpx.get(f"{server}/v1/model").json()
    assert (
        info["version"] == p.model_version
        and info["alias"] == "champion"
        and info["device"] == "cpu"
        and info["model_processes"] == 2
        and info["compute_dtype"] == ("bfloat16" if cpu_has_native_bf16() else "float32")
    )
    assert httpx.get(f"{server}/healthz").status_code == 200
    assert httpx.get(f"{server}/readyz").json()["status"] == "ready"
    assert httpx.get(f"{server}/docs").status_code == 200


def test_answer_replies_to_a_picked_intent_through_the_client(server: str) -> None:
    async def go() -> None:
        async with ServingClient(server, retries=0) as client:
            reply = await client.answer(IntentAnswerRequest(intent="card_arrival"))
            assert reply.response_id.startswith("card_arrival/") and reply.text
            sad = await client.answer(
                IntentAnswerRequest(intent="card_arrival", sentiment="negative")
            )
            assert sad.response_id.startswith("card_arrival/") and sad.text
            with pytest.raises(ServingRejected) as refused:
                await client.answer(IntentAnswerRequest(intent="no_such_intent"))
            assert refused.value.status == 422

    asyncio.run(go())
    # the out-of-scope class is no answer: it is what a pick replaces
    r = httpx.post(f"{server}/v1/answer", json={"intent": "out_of_scope"})
    assert r.status_code == 422 and "out_of_scope" in r.json()["detail"]
    assert httpx.post(f"{server}/v1/answer", json={"intent": ""}).status_code == 422


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"text": "   "}, 422),
        ({"text": ""}, 422),
        ({"text": 42}, 422),
        ({}, 422),
        ({"text": "x" * 20_000}, 413),
    ],
)
def test_bad_input_gets_4xx(server: str, body: dict[str, object], status: int) -> None:
    r = httpx.post(f"{server}/v1/predict", json=body)
    assert r.status_code == status, r.text
    assert "detail" in r.json()


def test_oversized_body_is_refused_before_it_is_read(server: str) -> None:
    r = httpx.post(f"{server}/v1/predict", json={"text": "x" * 200_000})
    assert r.status_code == 413 and r.json()["detail"] == "request body too large"
    metrics = httpx.get(f"{server}/metrics").text
    assert 'thumbloop_requests_total{outcome="too_large"}' in metrics


def test_malformed_json_is_422(server: str) -> None:
    r = httpx.post(
        f"{server}/v1/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_long_text_within_limit_is_truncated_not_refused(server: str) -> None:
    r = httpx.post(f"{server}/v1/predict", json={"text": "where is my card " * 600})
    assert r.status_code == 200


async def test_concurrent_requests_are_batched(server: str) -> None:
    before = httpx.get(f"{server}/metrics").text
    n_before = _metric(before, "thumbloop_batch_size_count")
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        rs = await asyncio.gather(
            *(
                http.post("/v1/predict", json={"text": f"I lost my card number {i}"})
                for i in range(48)
            )
        )
    assert all(r.status_code == 200 for r in rs)
    after = httpx.get(f"{server}/metrics").text
    batches = _metric(after, "thumbloop_batch_size_count") - n_before
    requests = _metric(after, "thumbloop_batch_size_sum") - _metric(
        before, "thumbloop_batch_size_sum"
    )
    assert requests == 48
    assert batches < 48 / 2, f"{batches} batches for 48 concurrent requests: no batching"
    assert 'thumbloop_requests_total{outcome="ok"}' in after


async def test_client_retries_and_reports(server: str) -> None:
    async with ServingClient(server) as client:
        p = await client.predict(IncomingMessage(text="hello there", conversation_id="c"))
        assert p.model_version.startswith(NAME)
        with pytest.raises(ServingRejected) as err:
            await client.predict(
                IncomingMessage.model_construct(
                    text=" ", conversation_id="c", history=[], platform="api"
                )
            )
        assert err.value.status == 422
    async with ServingClient(
        "http://127.0.0.1:9", retries=1, backoff_s=0.01, timeout_s=0.5
    ) as dead:
        with pytest.raises(ServingUnavailable):
            await dead.predict(IncomingMessage(text="hi"))


def _wait_for_version(server: str, version: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{server}/v1/model").json()["version"] == version:
            return
        time.sleep(0.2)
    raise AssertionError(f"server never switched to {version}")


async def test_alias_move_under_load_swaps_without_failures(
    server: str, serve_settings: Settings, versions: dict[str, str]
) -> None:
    v1, v2 = f"{NAME}/{versions['v1']}", f"{NAME}/{versions['v2']}"
    statuses: list[int] = []
    seen: list[str] = []
    stop = asyncio.Event()

    async def worker(http: httpx.AsyncClient, k: int) -> None:
        i = 0
        while not stop.is_set():
            r = await http.post("/v1/predict", json={"text": f"how do I change my pin {k}-{i}"})
            statuses.append(r.status_code)
            if r.status_code == 200:
                seen.append(r.json()["model_version"])
            i += 1
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        tasks = [asyncio.create_task(worker(http, k)) for k in range(8)]
        await asyncio.sleep(1.5)
        moved_at = len(seen)
        configure(serve_settings).set_registered_model_alias(NAME, "champion", versions["v2"])
        await asyncio.to_thread(_wait_for_version, server, v2)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)
    assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))
    # The old version keeps answering every worker while the new one loads in the background:
    # a swap that blocked serving would show no v1 answers between the alias move and v2.
    assert seen[moved_at:].count(v1) >= 8, seen[moved_at : moved_at + 20]
    assert seen[0] == v1 and seen[-1] == v2
    first_v2 = seen.index(v2)
    assert all(v == v2 for v in seen[first_v2 + 8 :]), "requests went back to the old version"


def _loads(server: str, result: str) -> float:
    return _metric(
        httpx.get(f"{server}/metrics").text, f'thumbloop_model_loads_total{{result="{result}"}}'
    )


@pytest.mark.parametrize(
    ("bad", "result"),
    [("v3", "failed"), ("v4", "failed"), ("v5", "refused")],
    ids=["corrupt", "nan-outputs", "gate-failed"],
)
def test_broken_version_keeps_the_old_one_serving(
    server: str, serve_settings: Settings, versions: dict[str, str], bad: str, result: str
) -> None:
    registry = configure(serve_settings)
    registry.set_registered_model_alias(NAME, "champion", versions["v1"])
    before = f"{NAME}/{versions['v1']}"
    _wait_for_version(server, before)  # not still swapping back from an earlier test's move
    counted = _loads(server, result)
    registry.set_registered_model_alias(NAME, "champion", versions[bad])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _loads(server, result) > counted:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the failed load was never counted")
    r = httpx.post(f"{server}/v1/predict", json={"text": "I want to change my PIN"})
    assert r.status_code == 200
    assert r.json()["model_version"] == before == httpx.get(f"{server}/v1/model").json()["version"]
    registry.set_registered_model_alias(NAME, "champion", versions["v1"])


class _HeldStarts:
    """A start context whose processes start only once ``go`` is set: a restart in progress."""

    def __init__(self, ctx: Any) -> None:
        self._ctx, self.go = ctx, threading.Event()

    def Pipe(self) -> Any:  # multiprocessing's names
        return self._ctx.Pipe()

    def Process(self, **kwargs: Any) -> Any:
        self.go.wait(120)
        return self._ctx.Process(**kwargs)


def test_a_hung_model_process_fails_its_batch_and_readyz_is_503_until_it_is_back(
    serve_settings: Settings, tmp_path: Path, tiny_registered: Any
) -> None:
    one = serve_settings.replace(
        home=tmp_path, redis_url=None, model_processes=1, model_batch_timeout_s=1.0
    )
    front = create_app(one, str(tiny_registered.bundle_dir))
    state: ServingState = front.app.state.serving  # type: ignore[attr-defined]
    with run_uvicorn(front) as base:
        active = state.holder.current
        assert active is not None and active.pool is not None
        pool = active.pool
        held = _HeldStarts(pool._ctx)
        pool._ctx = held
        hung = pool.pids[0]
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)
        try:
            r = httpx.post(f"{base}/v1/predict", json={"text": "hi"}, timeout=60)
            assert r.status_code == 500 and "did not answer" in r.json()["detail"], r.text
            # its only process is starting again: not ready, though alive
            ready = httpx.get(f"{base}/readyz")
            assert ready.status_code == 503, ready.text
            assert httpx.get(f"{base}/healthz").status_code == 200
        finally:
            held.go.set()
            with suppress(ProcessLookupError):  # a failed test must not leave it stopped
                os.kill(hung, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the model process never came back"
            time.sleep(0.1)
        r = httpx.post(f"{base}/v1/predict", json={"text": "hi"}, timeout=60)
        assert r.status_code == 200, r.text
        assert pool.pids[0] not in (None, hung)


def test_replies_still_come_when_redis_is_down(
    serve_settings: Settings, versions: dict[str, str]
) -> None:
    down = serve_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with run_uvicorn(create_app(down, f"models:/{NAME}/{versions['v1']}")) as base:
        for _ in range(3):
            r = httpx.post(f"{base}/v1/predict", json={"text": "where is my new card"})
            assert r.status_code == 200
            assert r.json()["reply"]["text"]


def test_readyz_is_503_until_a_model_loads(serve_settings: Settings, tmp_path: Path) -> None:
    missing = serve_settings.model_copy(update={"home": tmp_path})
    with run_uvicorn(
        create_app(missing, "models:/does-not-exist@champion"), ready_path="/healthz"
    ) as base:
        assert httpx.get(f"{base}/readyz").status_code == 503
        r = httpx.post(f"{base}/v1/predict", json={"text": "hi"})
        assert r.status_code == 503 and r.headers.get("retry-after")


async def test_reply_choice_follows_posteriors_in_redis(server: str) -> None:
    import redis.asyncio as aioredis

    from serving.replies.posteriors import RedisPosteriors

    store = RedisPosteriors(redis_url(0), NAME)
    raw = aioredis.Redis.from_url(redis_url(0))
    key = f"thumbloop:posterior:{NAME}:card_arrival"
    await raw.delete(key)
    try:
        await store.update("card_arrival", "card_arrival/2", +1, weight=200)
        await store.update("card_arrival", "card_arrival/1", -1, weight=200)
        async with httpx.AsyncClient(base_url=server, timeout=30) as http:
            # a message the model reads as card_arrival without negative sentiment, so the
            # choice is among the neutral variants (negative ones get the empathetic variant)
            candidates = [
                "when will my card arrive?",
                "has my card been sent out yet",
                "I am still waiting on my card",
                "how long does a card take to be delivered",
            ]
            text = None
            for c in candidates:
                p = (await http.post("/v1/predict", json={"text": c})).json()
                if p["intent"]["name"] == "card_arrival" and p["sentiment"]["label"] != "negative":
                    text = c
                    break
            assert text is not None, "no neutral card_arrival message among the candidates"
            # the server reads Redis every 2 s (serving.replies.posteriors.PosteriorTable)
            deadline = time.monotonic() + 10
            while True:
                rs = [await http.post("/v1/predict", json={"text": text}) for _ in range(20)]
                ids = [r.json()["reply"]["response_id"] for r in rs]
                if ids.count("card_arrival/2") >= 18 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        assert ids.count("card_arrival/2") >= 18, ids
    finally:
        await raw.delete(key)
        await raw.aclose()
        await store.close()
