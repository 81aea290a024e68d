"""Bad copies of a good bundle, for the tests that check a bad version is never served."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def corrupt_heads(good: Path, out: Path) -> Path:
    """A copy whose heads file is not a safetensors file: it cannot load."""
    shutil.copytree(good, out)
    (out / "heads.safetensors").write_bytes(b"not a safetensors file")
    return out


def nan_heads(good: Path, out: Path) -> Path:
    """A copy whose intent head's weights are NaN (a training run that diverged): it loads,
    and every output is NaN."""
    shutil.copytree(good, out)
    heads = load_file(str(out / "heads.safetensors"))
    heads["intent_head.weight"] = torch.full_like(heads["intent_head.weight"], float("nan"))
    save_file(heads, str(out / "heads.safetensors"))
    return out
