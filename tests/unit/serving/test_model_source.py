"""A registered bundle's generator base (``base_uri`` in its adapter's ``generator.json``): fetched
when a server will load the generator, never half-written, and a bundle stays loadable when
the base cannot be fetched."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from serving.admission import refusal
from serving.model_source import fetch_generator_base, resolve


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


@pytest.mark.parametrize(
    ("tags", "admitted"),
    [
        ({"kind": "retrain", "gate": "passed"}, True),
        ({"kind": "seed"}, True),
        ({"kind": "retrain", "gate": "failed"}, False),
        ({"kind": "seed", "gate": "failed"}, False),  # a seed that was gated and failed
        ({"kind": "retrain"}, False),  # no verdict
        ({}, False),  # registered by hand
        ({"kind": "retrain", "gate": "failed", "gate.override": '{"who": "a"}'}, True),
        ({"gate.override": '{"who": "a"}'}, True),
    ],
)
def test_which_versions_serving_admits(tags: dict[str, str], admitted: bool) -> None:
    assert (refusal(tags) is None) == admitted
