"""The generator's base model in MLflow: logged once per base version, named as ``base_uri`` in an
adapter's ``generator.json`` (what serving does with that name: tests/unit/serving/
test_model_source.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from learning.generator.base import BASE_ARTIFACT, publish_base
from learning.registry.client import configure, experiment_id
from serving.generator.source import GeneratorSource
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
