"""A model bundle on disk: encoder, heads, label maps, responses and ``bundle.json``.

    bundle/
      bundle.json          format, labels, OOS threshold, versions, training config
      encoder/             transformers BertModel + tokenizer (save_pretrained layout)
      heads.safetensors    intent_head.* and sentiment_head.*
      responses.json       the domain's reply variants
      generator/           optional: the reply generator's LoRA adapter trained from thumbs
                           (``generator.json`` names its base), served by the generative strategy

The same folder sits inside the MLflow model's artifacts (``artifacts/bundle``), so serving
loads it directly from a local path or from a downloaded ``models:/`` URI.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, BertModel, PreTrainedTokenizerBase

from thumbloop.domain import ResponseVariant, load_responses
from thumbloop.model.device import autocast_dtype
from thumbloop.model.loading import LOAD_LOCK
from thumbloop.model.network import HeadsConfig, ThumbloopModel

FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"
GENERATOR_DIR = "generator"


class BundleError(RuntimeError):
    """A bundle folder is missing, incomplete or of an unknown format."""


@dataclass
class LoadedBundle:
    model: ThumbloopModel
    tokenizer: PreTrainedTokenizerBase
    meta: dict[str, Any]
    responses: dict[str, list[ResponseVariant]]
    device: torch.device
    generator_dir: Path | None = None  # the bundle's own reply generator, if it carries one
    compute_dtype: torch.dtype | None = None  # inference autocast (None: fp32)

    @property
    def compute_dtype_name(self) -> str:
        """``float32``, or the autocast dtype (``bfloat16`` / ``float16``)."""
        return str(self.compute_dtype or torch.float32).removeprefix("torch.")

    @property
    def intents(self) -> list[str]:
        return list(self.meta["intents"])

    @property
    def sentiments(self) -> list[str]:
        return list(self.meta["sentiments"])

    @property
    def out_of_scope(self) -> str | None:
        oos = self.meta.get("out_of_scope")
        return oos if oos in self.meta["intents"] else None

    @property
    def oos_threshold(self) -> float:
        return float(self.meta.get("oos_threshold", 0.0))


def save_bundle(
    out: Path,
    model: ThumbloopModel,
    tokenizer: PreTrainedTokenizerBase,
    meta: dict[str, Any],
    responses_file: Path,
    generator_dir: Path | None = None,
) -> Path:
    if out.exists():
        shutil.rmtree(out)
    (out / "encoder").mkdir(parents=True)
    model.encoder.save_pretrained(out / "encoder")
    tokenizer.save_pretrained(out / "encoder")
    heads = {
        f"intent_head.{k}": v.detach().cpu().contiguous()
        for k, v in model.intent_head.state_dict().items()
    } | {
        f"sentiment_head.{k}": v.detach().cpu().contiguous()
        for k, v in model.sentiment_head.state_dict().items()
    }
    save_file(heads, str(out / "heads.safetensors"))
    shutil.copyfile(responses_file, out / "responses.json")
    if generator_dir is not None:
        shutil.copytree(generator_dir, out / GENERATOR_DIR)
    full = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "heads": model.config.to_dict(),
        "versions": {"torch": torch.__version__, "transformers": _transformers_version()},
        **meta,
    }
    (out / BUNDLE_FILE).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return out


def _transformers_version() -> str:
    return str(transformers.__version__)


def find_bundle_dir(path: Path) -> Path:
    """Accept a bundle folder or an MLflow model folder that holds one under artifacts/."""
    for candidate in (path, path / "artifacts" / "bundle", path / "bundle"):
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    # MLflow keeps the logged folder's own name under artifacts/
    found = sorted((path / "artifacts").glob(f"*/{BUNDLE_FILE}"))
    if len(found) == 1:
        return found[0].parent
    raise BundleError(f"{path}: no {BUNDLE_FILE} here nor in one folder under artifacts/")


def read_meta(bundle_dir: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((bundle_dir / BUNDLE_FILE).read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{bundle_dir}: bundle format {meta.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    return meta


def load_bundle(path: Path, device: torch.device, cpu_bf16: bool = False) -> LoadedBundle:
    """Load a bundle for inference on ``device``: bf16/fp16 autocast on CUDA, fp32 on a CPU
    unless ``cpu_bf16``."""
    bundle_dir = find_bundle_dir(path)
    meta = read_meta(bundle_dir)
    heads_cfg = HeadsConfig(**meta["heads"])
    with LOAD_LOCK:
        encoder = BertModel.from_pretrained(bundle_dir / "encoder", add_pooling_layer=False)
        tokenizer = AutoTokenizer.from_pretrained(bundle_dir / "encoder")
    model = ThumbloopModel(encoder, heads_cfg)
    state = load_file(str(bundle_dir / "heads.safetensors"))
    model.intent_head.load_state_dict(
        {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("intent_head.")}
    )
    model.sentiment_head.load_state_dict(
        {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("sentiment_head.")}
    )
    if len(meta["intents"]) != heads_cfg.n_intents:
        raise BundleError(
            f"{bundle_dir}: {len(meta['intents'])} intents for a head of {heads_cfg.n_intents}"
        )
    model.to(device).eval()
    responses = load_responses(bundle_dir / "responses.json")
    generator = bundle_dir / GENERATOR_DIR
    return LoadedBundle(
        model,
        tokenizer,
        meta,
        responses,
        device,
        generator if generator.is_dir() else None,
        autocast_dtype(device, cpu_bf16),
    )
