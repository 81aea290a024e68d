"""A tiny untrained model bundle for tests that need one on disk but not a trained one: the shipped
encoder's tokenizer over a one-layer random encoder, random heads, the banking replies of its
intents. Built in a moment, so a test need not wait for the session's trained model."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from thumbloop.model.bundle import save_bundle
from thumbloop.model.encoder import default_encoder_path
from thumbloop.model.network import HeadsConfig, ThumbloopModel

ROOT = Path(__file__).resolve().parents[1]
INTENTS = ["card_arrival", "change_pin", "greeting", "out_of_scope"]
SENTIMENTS = ["negative", "neutral", "positive"]


def make_tiny_bundle(out: Path, seed: int = 0, favour: str | None = None) -> Path:
    """Write the bundle to ``out`` (the ``thumbloop.model.bundle`` layout) and return it. With
    ``favour`` its intent head answers that intent for every message, confidently: an untrained
    head is unsure of everything, and unsure messages never reach the reply generator."""
    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    torch.manual_seed(seed)
    encoder = BertModel(config, add_pooling_layer=False)
    model = ThumbloopModel(encoder, HeadsConfig(n_intents=len(INTENTS), hidden_size=16)).eval()
    if favour is not None:
        with torch.no_grad():
            model.intent_head.bias[INTENTS.index(favour)] += 20.0
    table = json.loads((ROOT / "data/banking/responses.json").read_text(encoding="utf-8"))
    responses = out.parent / f"{out.name}-responses.json"
    responses.parent.mkdir(parents=True, exist_ok=True)
    replies = {k: v for k, v in table["responses"].items() if k in INTENTS}
    responses.write_text(json.dumps({"version": 1, "responses": replies}), encoding="utf-8")
    meta = {
        "domain": "tiny",
        "intents": INTENTS,
        "sentiments": SENTIMENTS,
        "out_of_scope": "out_of_scope",
        "oos_threshold": 0.3,
    }
    return save_bundle(out, model, tokenizer, meta, responses)
