"""The generator's base model in MLflow: logged once per base version, named as ``base_uri`` in an
adapter's ``generator.json``, and what serving (``serving.model_source``) then does with that
name when it resolves a registered bundle."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from learning.generator.base import BASE_ARTIFACT, publish_base
from learning.registry.client import configure, experiment_id
from serving.generator.source import GeneratorSource
from serving.model_source import fetch_generator_base, resolve
from thumbloop.settings import Settings


def test_a_base_is_logged_once_per_version(tmp_path: Path) -> None:
    folder = tmp_path / "smol"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    settings = Settings(home=tmp_path / "home")
    uri = publish_base(settings, GeneratorSource(folder, "smol-1"))
    assert uri.startswith("runs:/") and uri.endswith(f"/{BASE_ARTIFACT}")
    assert publish_base(settings, GeneratorSource(folder, "smol-1")) == uri
    assert publish_base(settings, GeneratorSource(folder, "smol-2")) != uri
    client = configure(settings)
    runs = client.search_runs([experiment_id(settings, client)], "tags.kind = 'generator-base'")
    assert len(runs) == 2


def test_only_a_plain_model_with_a_quotable_version_is_published(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    base = GeneratorSource(tmp_path / "base", "b1")
    with pytest.raises(ValueError, match="an adapter"):
        publish_base(settings, GeneratorSource(tmp_path / "adapter", "a1", base))
    with pytest.raises(ValueError, match="quote"):
        publish_base(settings, GeneratorSource(tmp_path / "base", "it's"))
    assert not (tmp_path / "mlflow.db").exists()  # refused before asking MLflow


def test_a_generator_base_that_cannot_be_fetched_leaves_the_bundle_loadable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = tmp_path / "bundle" / "generator"
    adapter.mkdir(parents=True)
    manifest = {"version": "kto-1", "base": "smollm2", "base_uri": f"file://{tmp_path}/gone"}
    (adapter / "generator.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="serving.model_source"):
        fetch_generator_base(tmp_path / "bundle", f"sqlite:///{tmp_path}/x.db", tmp_path / "cache")
    assert json.loads((adapter / "generator.json").read_text()) == manifest
    assert "not fetched" in caplog.text
    assert not list((tmp_path / "cache").glob("generator-bases/*"))  # no half-written base


def test_a_bundle_without_a_logged_base_is_left_alone(tmp_path: Path) -> None:
    fetch_generator_base(tmp_path, "sqlite:///unused.db", tmp_path / "cache")  # no generator
    adapter = tmp_path / "generator"
    adapter.mkdir()
    (adapter / "generator.json").write_text(json.dumps({"version": "v", "base": "smollm2"}))
    fetch_generator_base(tmp_path, "sqlite:///unused.db", tmp_path / "cache")
    assert json.loads((adapter / "generator.json").read_text())["base"] == "smollm2"
    assert not (tmp_path / "cache").exists()


def test_a_template_server_does_not_fetch_the_generator_base(tmp_path: Path) -> None:
    """The base (~0.5 GB) comes down only for a server that will load the generator."""
    base = tmp_path / "logged-base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    cached = tmp_path / "cache" / "m" / "1"
    adapter = cached / "generator"
    adapter.mkdir(parents=True)
    (cached / "bundle.json").write_text("{}")
    manifest = {"version": "kto-1", "base": "/training-host/smollm2", "base_uri": base.as_uri()}
    (adapter / "generator.json").write_text(json.dumps(manifest))
    tracking = f"sqlite:///{tmp_path}/unused.db"

    resolve("models:/m/1", tracking, tmp_path / "cache", fetch_base=False)
    assert json.loads((adapter / "generator.json").read_text()) == manifest
    assert not (tmp_path / "cache" / "generator-bases").exists()

    resolved = resolve("models:/m/1", tracking, tmp_path / "cache")
    fetched = Path(json.loads((adapter / "generator.json").read_text())["base"])
    assert resolved.bundle_dir == cached
    assert fetched.parent == tmp_path / "cache" / "generator-bases"
    assert (fetched / "config.json").is_file()
