"""Shared fixtures: a tiny domain cut from the shipped banking data, and a model trained on it
into a real (SQLite-backed) MLflow store once per test session."""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from thumbloop.settings import Settings

# every model the tests load is local (a shipped package or a folder they make): never a hub call
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
BANKING = ROOT / "data" / "banking"
TINY_INTENTS = ["card_arrival", "change_pin", "exchange_rate", "lost_or_stolen_card", "greeting"]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With pytest-xdist (``make test`` runs the tests not marked slow on two workers): the
    tests of one integration package (``bots``, ``serving``, ...) share package fixtures,
    servers and Redis databases, so a package runs whole on one worker; unit and fuzz tests
    spread one by one."""
    from xdist.scheduler import LoadScopeScheduling

    class ByPackage(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            parts = nodeid.split("::")[0].split("/")
            if len(parts) > 3 and parts[:2] == ["tests", "integration"]:
                return "/".join(parts[:3])
            return nodeid

    return ByPackage(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run CUDA-only paths: skipped where there is no GPU, run where there
    is one. The only skip the suite allows."""
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu:
        return
    import torch  # only when some collected test needs CUDA: collection stays light otherwise

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; no GPU on this machine")
    for item in gpu:
        item.add_marker(skip)


def _read(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _per_label(rows: list[dict[str, str]], keep: set[str], k: int) -> list[dict[str, str]]:
    by: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        if r["label"] in keep and len(by[r["label"]]) < k:
            by[r["label"]].append(r)
    return [r for label in sorted(by) for r in by[label]]


def build_tiny_domain(out: Path, per_intent: int = 16) -> Path:
    keep = {*TINY_INTENTS, "out_of_scope"}
    _write(
        out / "intents/train.jsonl",
        _per_label(_read(BANKING / "intents/train.jsonl"), keep, per_intent),
    )
    _write(
        out / "intents/validation.jsonl",
        _per_label(_read(BANKING / "intents/validation.jsonl"), keep, 5),
    )
    table = json.loads((BANKING / "responses.json").read_text(encoding="utf-8"))
    responses = {k: v for k, v in table["responses"].items() if k in keep}
    (out / "responses.json").write_text(json.dumps({"version": 1, "responses": responses}))
    sentiment = _read(BANKING.parent / "sentiment/train.jsonl")
    random.Random(0).shuffle(sentiment)
    _write(
        out / "sentiment/train.jsonl",
        _per_label(sentiment, {"negative", "neutral", "positive"}, 40),
    )
    sval = _read(BANKING.parent / "sentiment/validation.jsonl")
    _write(
        out / "sentiment/validation.jsonl",
        _per_label(sval, {"negative", "neutral", "positive"}, 10),
    )
    (out / "domain.json").write_text(
        json.dumps({"name": "tiny", "out_of_scope": "out_of_scope", "sentiment": "sentiment"})
    )
    return out


@pytest.fixture(scope="session")
def tiny_domain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_domain(tmp_path_factory.mktemp("tiny-domain"))


@pytest.fixture(scope="session")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("thumbloop-home")


@pytest.fixture(scope="session")
def tiny_settings(mlflow_home: Path) -> Settings:
    return Settings(home=mlflow_home, device="cpu", model_name="thumbloop-tiny")


@pytest.fixture(scope="session")
def tiny_registered(tiny_settings: Settings, tiny_domain: Path):  # type: ignore[no-untyped-def]
    """A tiny model trained for real and registered as version 1 with alias champion."""
    from learning.seed.config import TrainConfig
    from learning.seed.run import train_and_register

    cfg = TrainConfig(epochs=2, layers_to_tune=1, batch_size=16, refit_steps=100, device="cpu")
    return train_and_register(tiny_settings, tiny_domain, cfg, progress=False)


@pytest.fixture(scope="session")
def generator_source(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The bundled SmolLM2 GGUF converted for real (once per session) into a fresh home."""
    from serving.generator.source import resolve_generator

    return resolve_generator("smollm2", tmp_path_factory.mktemp("generator-home"))
