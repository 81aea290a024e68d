"""One serving process on each device: a local bundle served with the model in the server process
(the only layout on a GPU) and the reply generator on the same device, end to end over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch

from serving.app import create_app
from tests.integration.servers import run_uvicorn
from tests.tiny_bundle import make_tiny_bundle
from tests.tiny_lm import make_tiny_lm
from thumbloop.contracts import Prediction
from thumbloop.model.device import autocast_dtype
from thumbloop.settings import Settings


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("tiny") / "bundle", favour="card_arrival")


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_lm(tmp_path_factory.mktemp("tiny-lm") / "lm")


def _compute_dtype(device: str) -> str:
    dtype = autocast_dtype(torch.device(device))  # the CPU's bf16 is off in these settings
    return str(dtype or torch.float32).removeprefix("torch.")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_the_model_and_the_generator_serve_on_the_device(
    device: str, bundle_dir: Path, lm: Path, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        device=device,
        cpu_bf16="off",
        model_processes=0,
        max_wait_ms=10,
        reply_strategy="generative",
        generator=str(lm),
        generator_max_new_tokens=8,
        generator_budget_ms=120_000,  # a busy CI machine must not turn this into a budget test
    )
    with run_uvicorn(create_app(settings, str(bundle_dir))) as base:
        info = httpx.get(f"{base}/v1/model").json()
        assert torch.device(info["device"]).type == device
        assert info["model_processes"] == 0
        assert info["compute_dtype"] == _compute_dtype(device)
        assert info["generator_state"] == "ready" and info["generator"]
        r = httpx.post(f"{base}/v1/predict", json={"text": "where is my card?"}, timeout=120)
        assert r.status_code == 200, r.text
        p = Prediction.model_validate_json(r.content)
        assert p.intent.name == "card_arrival" and p.intent.confidence > 0.9
        # generated, or refused by a guard rail: either way the generator on the device ran
        assert p.reply.generator == info["generator"], p.reply
