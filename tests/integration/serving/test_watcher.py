"""The alias watcher against a real MLflow registry: a version whose load failed is tried again
with backoff until it loads, a version that fails its checks is never served, and a version the
gate refused is not even loaded until `thumbloop promote --force` overrides it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from mlflow.exceptions import MlflowException

from learning.registry.client import configure
from learning.registry.promotion import PromotionError, history, promote
from learning.registry.versions import log_and_register
from serving.admission import OVERRIDE_TAG
from serving.engine import ActiveModel, ModelHolder, load_active
from serving.inference import ModelCheckFailed
from serving.model_source import VersionRefused
from serving.watcher import RETRY_FIRST_S, AliasWatcher
from tests.integration.serving.bundles import nan_heads
from tests.tiny_bundle import make_tiny_bundle
from thumbloop.cli.main import cli
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
    """v1 and v2: the same good bundle, gate passed; nan: one whose intent head's weights are NaN
    (gate passed: its load must be what stops it); failed: the good bundle, gate failed;
    unjudged: a retrain with no gate verdict; seed: a seed (no gate tag). Each as the watcher
    names it, ``NAME/N``."""
    tmp = tmp_path_factory.mktemp("watch")
    good = make_tiny_bundle(tmp / "good")
    passed = {"kind": "retrain", "gate": "passed"}
    registered = {
        "v1": (good, passed),
        "v2": (good, passed),
        "nan": (nan_heads(good, tmp / "nan"), passed),
        "failed": (good, {"kind": "retrain", "gate": "failed"}),
        "unjudged": (good, {"kind": "retrain"}),
        "seed": (good, {"kind": "seed"}),
    }
    numbers = {
        key: log_and_register(
            settings, path, params={}, metrics={}, artifacts={}, dicts={}, tags=tags
        ).version
        for key, (path, tags) in registered.items()
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


def _number(version: str) -> str:
    return version.split("/")[1]


@pytest.mark.parametrize("bad", ["failed", "unjudged"])
async def test_a_version_the_gate_refused_is_never_loaded_until_forced(
    settings: Settings,
    versions: dict[str, str],
    holder: ModelHolder,
    load: Callable[[str], ActiveModel],
    caplog: pytest.LogCaptureFixture,
    bad: str,
) -> None:
    loads: list[str] = []
    refused: list[tuple[str, str]] = []

    def counted_load(uri: str) -> ActiveModel:
        loads.append(uri)
        return load(uri)

    watcher = AliasWatcher(
        URI,
        settings.effective_tracking_uri,
        holder,
        counted_load,
        interval_s=1,
        on_refused=lambda version, why: refused.append((version, why)),
    )
    _point_alias(settings, versions[bad])  # as a move in the MLflow UI would
    with caplog.at_level(logging.ERROR, logger="serving.watcher"):
        for _ in range(3):
            assert not await watcher.check_once()
    assert loads == [] and holder.current is not None
    assert holder.current.version == versions["v1"]
    assert [v for v, _ in refused] == [versions[bad]], "one report per move, not per poll"
    assert ("'failed'" if bad == "failed" else "no gate verdict") in refused[0][1]
    assert f"promote --force {_number(versions[bad])}" in caplog.text

    # a promotion without --force is refused with the reason; with it, recorded and served
    with pytest.raises(PromotionError, match="--force"):
        promote(settings, _number(versions[bad]), who="alice")
    runner = CliRunner()
    env = {"THUMBLOOP_HOME": str(settings.home), "THUMBLOOP_MODEL_NAME": NAME}
    res = runner.invoke(cli, ["promote", _number(versions[bad]), "--who", "alice"], env=env)
    assert res.exit_code != 0 and "--force" in res.output
    res = runner.invoke(
        cli, ["promote", _number(versions[bad]), "--who", "alice", "--force"], env=env
    )
    assert res.exit_code == 0, res.output
    assert "gate overridden" in res.output
    tags = configure(settings).get_model_version(NAME, _number(versions[bad])).tags
    override = json.loads(tags[OVERRIDE_TAG])
    assert override["who"] == "alice" and override["at"]
    assert override["gate"] == ("failed" if bad == "failed" else None)
    assert history(configure(settings), NAME)[-1].forced
    assert await watcher.check_once()
    assert holder.current.version == versions[bad] and len(loads) == 1
    assert len(refused) == 1
    configure(settings).delete_model_version_tag(NAME, _number(versions[bad]), OVERRIDE_TAG)


async def test_a_seed_is_served_and_a_refused_alias_is_not_loaded_at_start(
    settings: Settings,
    versions: dict[str, str],
    holder: ModelHolder,
    load: Callable[[str], ActiveModel],
    tmp_path: Path,
) -> None:
    watcher = AliasWatcher(URI, settings.effective_tracking_uri, holder, load, interval_s=1)
    _point_alias(settings, versions["seed"])
    assert await watcher.check_once()
    assert holder.current is not None and holder.current.version == versions["seed"]
    # the first load of a server (the alias itself, before any watcher) obeys the same rule
    _point_alias(settings, versions["failed"])
    with pytest.raises(VersionRefused, match="gate is 'failed'"):
        load_active(
            URI,
            settings.effective_tracking_uri,
            tmp_path / "fresh",
            torch.device("cpu"),
            MAX_SEQ_LEN,
            fetch_generator_base=False,
            admit=True,
        )
    assert not (tmp_path / "fresh").exists(), "nothing downloaded for a refused version"
