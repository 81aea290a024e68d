"""The reply-strategy setting on a live server: uvicorn on loopback, the tiny trained bundle, and
the real SmolLM2 generator (converted once per session)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from serving.app import create_app
from serving.generator.lm import load_generator
from serving.generator.source import GeneratorSource
from tests.integration.servers import run_uvicorn
from thumbloop.contracts import Prediction
from thumbloop.model.bundle import load_bundle
from thumbloop.model.predictor import predict_batch
from thumbloop.settings import Settings

CARD_MESSAGES = [
    "my card has not arrived yet",
    "I ordered a card two weeks ago and it is still not here",
    "how long does it take for a new card to arrive?",
]


def _settings(home: Path, **kw: object) -> Settings:
    return Settings(home=home, device="cpu", max_wait_ms=10, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def bundle(tiny_registered) -> str:  # type: ignore[no-untyped-def]
    return str(tiny_registered.bundle_dir)


@pytest.fixture(scope="module")
def generative(
    bundle: str, generator_source: GeneratorSource, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = _settings(
        tmp_path_factory.mktemp("gen-serve"),
        reply_strategy="generative",
        generator=str(generator_source.folder),
        generator_temperature=0.0,
        generator_max_new_tokens=40,
        generator_budget_ms=120_000,  # a busy CI machine must not turn this into a budget test
    )
    with run_uvicorn(create_app(settings, bundle)) as base:
        yield base


def _predict(base: str, text: str, **extra: object) -> Prediction:
    r = httpx.post(f"{base}/v1/predict", json={"text": text, **extra}, timeout=120)
    assert r.status_code == 200, r.text
    return Prediction.model_validate_json(r.content)


def _metric(base: str, name: str, labels: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    series = f"{name}{{{labels}}}" if labels else name
    m = re.search(rf"^{re.escape(series)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_template_stays_the_default(bundle: str, tmp_path: Path) -> None:
    with run_uvicorn(create_app(_settings(tmp_path), bundle)) as base:
        p = _predict(base, CARD_MESSAGES[0])
        assert p.reply.strategy == "template" and p.reply.generator is None
        info = httpx.get(f"{base}/v1/model").json()
        assert info["reply_strategy"] == "template" and info["generator_state"] is None


def test_generative_setting_switches_live_replies(
    generative: str, generator_source: GeneratorSource
) -> None:
    info = httpx.get(f"{generative}/v1/model").json()
    assert info["reply_strategy"] == "generative"
    assert (info["generator_state"], info["generator"]) == ("ready", generator_source.version)
    replies = [_predict(generative, t).reply for t in CARD_MESSAGES]
    assert all(r.generator == generator_source.version for r in replies)
    assert all(r.strategy in ("generative", "template:fallback-guardrail") for r in replies)
    generated = [r for r in replies if r.strategy == "generative"]
    assert generated, [r.text for r in replies]
    assert all(r.response_id.startswith("gen+card_arrival/") for r in generated)
    assert _metric(generative, "thumbloop_replies_total", 'strategy="generative"') == len(generated)
    assert _metric(generative, "thumbloop_generation_batch_size_count", "") >= len(replies)


def test_history_reaches_the_generator(generative: str) -> None:
    history = [
        {"role": "user", "text": "hello"},
        {"role": "assistant", "text": "Hello! What banking question can I help you with?"},
    ]
    p = _predict(generative, "my card still has not arrived", history=history)
    assert p.reply.generator is not None and p.intent.name == "card_arrival"


def test_unsure_messages_keep_the_template_clarification(generative: str) -> None:
    texts = [
        "what is the meaning of life and the weather on mars",
        "tell me a joke about penguins",
        "who won the football last night",
        "recommend a good pizza place",
    ]
    unsure = [
        p for p in (_predict(generative, t) for t in texts) if p.intent.name == "out_of_scope"
    ]
    assert unsure, "the tiny model took every off-topic message for a banking one"
    for p in unsure:
        assert p.reply.strategy == "template" and p.reply.generator is None
        assert "+clarify:" in p.reply.response_id


def test_a_generator_that_fails_to_load_leaves_template_replies(
    bundle: str, tmp_path: Path
) -> None:
    settings = _settings(
        tmp_path, reply_strategy="generative", generator=str(tmp_path / "no-such-generator")
    )
    with run_uvicorn(create_app(settings, bundle)) as base:  # ready: the failure does not block
        p = _predict(base, CARD_MESSAGES[0])
        assert p.reply.strategy == "template:fallback-unavailable"
        assert p.reply.response_id.startswith("card_arrival/") and p.reply.generator is None
        info = httpx.get(f"{base}/v1/model").json()
        assert (info["generator_state"], info["generator"]) == ("failed", None)
        assert _metric(base, "thumbloop_generator_loads_total", 'result="failed"') == 1
        assert _metric(base, "thumbloop_generator_fallbacks_total", 'reason="unavailable"') == 1
        assert (
            _metric(base, "thumbloop_replies_total", 'strategy="template:fallback-unavailable"')
            == 1
        )


def test_classifier_and_generator_can_load_at_the_same_time(
    bundle: str, generator_source: GeneratorSource
) -> None:
    """Serving loads both in worker threads; unguarded, transformers' global patching during one
    load leaves the other with meta or random weights."""
    cpu = torch.device("cpu")
    reference = predict_batch(load_bundle(Path(bundle), cpu), CARD_MESSAGES)[0]
    errors: list[BaseException] = []
    loaded: list[object] = []

    start = threading.Barrier(2)

    def repeat(load: Callable[[], object]) -> None:
        start.wait()
        for _ in range(4):
            try:
                loaded.append(load())
            except BaseException as exc:
                errors.append(exc)

    threads = [
        threading.Thread(target=repeat, args=(lambda: load_bundle(Path(bundle), cpu),)),
        threading.Thread(
            target=repeat,
            args=(lambda: load_generator(str(generator_source.folder), Path(bundle), cpu),),
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    bundles = [b for b in loaded if hasattr(b, "heads") or hasattr(b, "meta")]
    assert len(bundles) == 4
    for b in bundles:
        np.testing.assert_allclose(predict_batch(b, CARD_MESSAGES)[0], reference, atol=1e-5)  # type: ignore[arg-type]
