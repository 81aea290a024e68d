"""The network: a shared sentence encoder with an intent head and a sentiment head.

No I/O here (loading and saving live in ``thumbloop.model.bundle``). The encoder can be run in two
halves (``lower`` then ``upper``) so training can cache the frozen lower layers' output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from transformers import BertModel
from transformers.masking_utils import create_bidirectional_mask

from thumbloop.model.unpadded import pooled_unpadded


@dataclass(frozen=True)
class HeadsConfig:
    n_intents: int
    n_sentiments: int = 3
    hidden_size: int = 384
    dropout: float = 0.1
    # heads read the L2-normalised sentence embedding (what all-MiniLM-L6-v2 was trained to
    # give) instead of the raw token mean: the few-shot recipe's frozen encoder + linear heads
    normalize: bool = False

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


class ThumbloopModel(nn.Module):
    def __init__(self, encoder: BertModel, config: HeadsConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.dropout = nn.Dropout(config.dropout)
        self.intent_head = nn.Linear(config.hidden_size, config.n_intents)
        self.sentiment_head = nn.Linear(config.hidden_size, config.n_sentiments)

    @property
    def n_layers(self) -> int:
        return len(self.encoder.encoder.layer)

    def _mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        return create_bidirectional_mask(
            config=self.encoder.config, inputs_embeds=hidden, attention_mask=attention_mask
        )

    def lower(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, upto: int
    ) -> torch.Tensor:
        """Embeddings plus the first ``upto`` transformer layers."""
        hidden = self.encoder.embeddings(input_ids=input_ids)
        mask = self._mask(hidden, attention_mask)
        for layer in self.encoder.encoder.layer[:upto]:
            hidden = layer(hidden, mask)
        return hidden

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        mask = self._mask(hidden, attention_mask)
        for layer in self.encoder.encoder.layer[start:]:
            hidden = layer(hidden, mask)
        return hidden

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1) if self.config.normalize else pooled

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.dropout(pooled)
        return self.intent_head(pooled), self.sentiment_head(pooled)

    def infer(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference forward that skips the padding (``thumbloop.model.unpadded``); same logits."""
        if self.training:
            raise RuntimeError("infer() is for eval mode; use forward() to train")
        pooled = pooled_unpadded(self.encoder, input_ids, attention_mask)
        if self.config.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return self.heads(pooled)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.lower(input_ids, attention_mask, self.n_layers)
        return self.heads(self.pool(hidden, attention_mask))
