"""Sentence embeddings from the base encoder: mean-pooled over the tokens, L2-normalised, so a
dot product is a cosine. Used where texts are compared rather than classified (the review
inbox's near-duplicate groups, the simulator's supervised reference)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, BertModel

from thumbloop.model.encoder import default_encoder_path


class SentenceEncoder:
    def __init__(
        self, path: Path | None = None, device: torch.device | None = None, max_length: int = 64
    ) -> None:
        path = path or default_encoder_path()
        self.device = device or torch.device("cpu")
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = BertModel.from_pretrained(path, add_pooling_layer=False)
        self.model.to(self.device).eval()  # type: ignore[arg-type]

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """(len(texts), dim) float32, each row of norm 1; batches of similar length."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                b = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                h = self.model(**b).last_hidden_state
                m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
                pooled = (h * m).sum(1) / m.sum(1)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
        return out
