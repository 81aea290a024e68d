"""The encoder's inference forward without padding.

Every token-wise part of a BERT layer (the Q/K/V and output projections, the feed-forward
block, the layer norms: most of the compute) runs on the real tokens of the batch packed into
one ``[tokens, hidden]`` matrix; only attention, which mixes tokens of one message, sees the
padded ``[batch, heads, length, length]`` layout. A batch of mixed lengths then costs what its
tokens cost, so the server can batch requests in arrival order without paying for padding.
Numerically the same as the padded forward (checked in the tests); inference only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import BertModel


def pooled_unpadded(
    encoder: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean of the last layer's states over each message's real tokens: ``[batch, hidden]``."""
    hidden = encoder.embeddings(input_ids=input_ids)
    batch, length, width = hidden.shape
    keep = attention_mask.bool()
    rows = keep.reshape(-1).nonzero().squeeze(1)  # positions of real tokens in [batch*length]
    x = hidden.reshape(batch * length, width).index_select(0, rows)
    attn_mask = keep[:, None, None, :]

    def padded(t: torch.Tensor, heads: int) -> torch.Tensor:
        out = t.new_zeros(batch * length, t.shape[1]).index_copy_(0, rows, t)
        return out.view(batch, length, heads, -1).transpose(1, 2)

    layers: Any = encoder.encoder.layer  # BertLayer modules; typed loosely by transformers
    for layer in layers:
        att = layer.attention.self
        heads = att.num_attention_heads
        qkv = padded(nn.functional.linear(x, *_fused_qkv(att)), 3 * heads)
        q, k, v = qkv.split(heads, dim=1)
        context = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, scale=att.scaling
        )
        context = context.transpose(1, 2).reshape(batch * length, width).index_select(0, rows)
        out = layer.attention.output
        x = out.LayerNorm(out.dense(context) + x)
        ff = layer.output
        x = ff.LayerNorm(ff.dense(layer.intermediate(x)) + x)
    message = rows // length
    sums = x.new_zeros(batch, width).index_add_(0, message, x)
    counts = keep.sum(1, keepdim=True).clamp(min=1).to(x.dtype)
    return sums / counts


def _fused_qkv(att: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The query, key and value projections as one ``[3*hidden, hidden]`` matrix (one matmul
    instead of three), kept on the module until any of the weights changes in place."""
    parts = (att.query, att.key, att.value)
    stamp = tuple((p.weight._version, p.bias._version, p.weight.data_ptr()) for p in parts)
    cached = getattr(att, "_thumbloop_qkv", None)
    if cached is None or cached[0] != stamp:
        weight = torch.cat([p.weight for p in parts]).detach()
        bias = torch.cat([p.bias for p in parts]).detach()
        cached = (stamp, weight, bias)
        att._thumbloop_qkv = cached
    return cached[1], cached[2]
