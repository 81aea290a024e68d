"""A LoRA adapter as a generator folder: the models it is loaded over, and how it is saved (whole or
not at all, named by its content)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from serving.generator.source import GeneratorSource, write_manifest
from thumbloop.staging import move_into_place, staging_beside

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def base_of(source: GeneratorSource) -> GeneratorSource:
    base = source.base or source
    if base.base is not None:
        raise ValueError(f"{source.folder}: an adapter over an adapter is not supported")
    return base


def load_tokenizer(source: GeneratorSource) -> Any:
    own = (source.folder / "tokenizer_config.json").is_file()
    folder = source.folder if own else base_of(source).folder
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(source: GeneratorSource) -> Any:
    # float32 weights; on CUDA the trainer's bf16 autocast does the speed-up
    return AutoModelForCausalLM.from_pretrained(
        base_of(source).folder, dtype=torch.float32, local_files_only=True
    )


def _adapter_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:12]


def save_adapter(model: Any, out: Path, manifest: dict[str, Any]) -> str:
    """Save ``model``'s adapter into ``out`` (absent or empty) with ``manifest`` as its
    ``generator.json``, and return its version: a digest of the weights, so the same adapter
    trained twice is one version."""
    with staging_beside(out) as partial:  # the adapter folder appears whole or not at all
        model.save_pretrained(partial)
        version = f"kto-{_adapter_digest(partial)}"
        write_manifest(partial, {"version": version, **manifest})
        move_into_place(partial, out)
    return version
