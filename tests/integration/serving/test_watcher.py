"""The alias watcher against a real MLflow registry: a version whose load failed is tried again
with backoff until it loads, and a version that fails its checks is never served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from mlflow.exceptions import MlflowException

from learning.registry.client import configure
from learning.registry.versions import log_and_register
from serving.engine import ActiveModel, ModelHolder, load_active
from serving.inference import ModelCheckFailed
from serving.watcher import RETRY_FIRST_S, AliasWatcher
from tests.integration.serving.bundles import nan_heads
from tests.tiny_bundle import make_tiny_bundle
from thumbloop.settings import Settings

NAME = "thumbloop-watch"
URI = f"models:/{NAME}@champion"
MAX_SEQ_LEN = 64


class Clock:
    """The watcher's clock, moved by the test: backoff without waiting for it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def settings(tiny_settings: Settings) -> Settings:
    return Settings(home=tiny_settings.home, device="cpu", model_name=NAME)


@pytest.fixture(scope="module")
def versions(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """v1 and v2: the same good bundle; nan: one whose intent head's weights are NaN. Each as
    the watcher names it, ``NAME/N``."""
    tmp = tmp_path_factory.mktemp("watch")
    good = make_tiny_bundle(tmp / "good")
    bundles = {"v1": good, "v2": good, "nan": nan_heads(good, tmp / "nan")}
    numbers = {
        key: log_and_register(
            settings, path, params={}, metrics={}, artifacts={}, dicts={}, tags={"kind": "test"}
        ).version
        for key, path in bundles.items()
    }
    return {key: f"{NAME}/{n}" for key, n in numbers.items()}


def _point_alias(settings: Settings, version: str) -> None:
    configure(settings).set_registered_model_alias(NAME, "champion", version.split("/")[1])


@pytest.fixture
def load(settings: Settings, tmp_path: Path) -> Callable[[str], ActiveModel]:
    def load(uri: str) -> ActiveModel:
        return load_active(
            uri,
            settings.effective_tracking_uri,
            tmp_path / "models",
            torch.device("cpu"),
            MAX_SEQ_LEN,
            fetch_generator_base=False,
        )

    return load


@pytest.fixture
def holder(load: Callable[[str], ActiveModel], versions: dict[str, str]) -> ModelHolder:
    """Serving v1."""
    holder = ModelHolder(MAX_SEQ_LEN)
    holder.swap(load(f"models:/{versions['v1']}"))
    return holder


class FailsOnce:
    """The real load, but its first call fails as a registry that is briefly unavailable."""

    def __init__(self, load: Callable[[str], ActiveModel]) -> None:
        self._load, self.calls = load, 0

    def __call__(self, uri: str) -> ActiveModel:
        self.calls += 1
        if self.calls == 1:
            raise MlflowException("temporarily unavailable")
        return self._load(uri)


async def test_a_failed_load_is_tried_again_after_a_backoff_and_served(
    settings: Settings,
    versions: dict[str, str],
    holder: ModelHolder,
    load: Callable[[str], ActiveModel],
) -> None:
    flaky, clock = FailsOnce(load), Clock()
    results: list[tuple[str, bool]] = []
    watcher = AliasWatcher(
        URI,
        settings.effective_tracking_uri,
        holder,
        flaky,
        interval_s=10,
        on_result=lambda version, active: results.append((version, active is not None)),
        clock=clock,
    )
    _point_alias(settings, versions["v2"])
    assert not await watcher.check_once()  # the registry error
    assert holder.current is not None and holder.current.version == versions["v1"]
    clock.now += RETRY_FIRST_S / 2
    assert not await watcher.check_once()  # within the backoff: not tried again yet
    assert flaky.calls == 1
    clock.now += RETRY_FIRST_S / 2
    assert await watcher.check_once()
    assert flaky.calls == 2 and holder.current.version == versions["v2"]
    assert results == [(versions["v2"], False), (versions["v2"], True)]


async def test_a_version_whose_outputs_are_nan_is_never_served(
    settings: Settings,
    versions: dict[str, str],
    holder: ModelHolder,
    load: Callable[[str], ActiveModel],
) -> None:
    with pytest.raises(ModelCheckFailed, match="not finite"):
        load(f"models:/{versions['nan']}")
    clock = Clock()
    tried_at: list[float] = []
    results: list[ActiveModel | None] = []

    def timed_load(uri: str) -> ActiveModel:
        tried_at.append(clock.now)
        return load(uri)

    watcher = AliasWatcher(
        URI,
        settings.effective_tracking_uri,
        holder,
        timed_load,
        interval_s=1,
        on_result=lambda _version, active: results.append(active),
        retry_first_s=2,
        retry_max_s=8,
        clock=clock,
    )
    _point_alias(settings, versions["nan"])
    for second in range(23):  # a check every second, as the watcher would with interval 1
        clock.now = float(second)
        assert not await watcher.check_once()
    # tried again after 2, 4, 8 and then, at the cap, every 8 seconds; never served
    assert tried_at == [0, 2, 6, 14, 22]
    assert results == [None] * 5
    assert holder.current is not None and holder.current.version == versions["v1"]
    # the alias moving back to the version being served ends the retries
    _point_alias(settings, versions["v1"])
    clock.now = 100.0
    assert not await watcher.check_once()
    assert len(tried_at) == 5


async def test_the_watcher_tries_again_before_its_next_poll(
    settings: Settings,
    versions: dict[str, str],
    holder: ModelHolder,
    load: Callable[[str], ActiveModel],
) -> None:
    flaky = FailsOnce(load)
    watcher = AliasWatcher(
        URI,
        settings.effective_tracking_uri,
        holder,
        flaky,
        interval_s=600,  # the test would time out waiting for the next poll
        retry_first_s=0.1,
    )
    _point_alias(settings, versions["v2"])
    assert not await watcher.check_once()
    watcher.start()
    try:
        deadline = time.monotonic() + 120
        while holder.current is None or holder.current.version != versions["v2"]:
            assert time.monotonic() < deadline, "the failed version was never tried again"
            await asyncio.sleep(0.1)
    finally:
        await watcher.stop()
    assert flaky.calls == 2
