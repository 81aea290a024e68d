"""The encoder's inference forward without padding.

Every token-wise part of a BERT layer (the Q/K/V and output projections, the feed-forward
block, the layer norms: most of the compute) runs on the real tokens of the batch packed into
one ``[tokens, hidden]`` matrix. Attention, which mixes the tokens of one message, runs in
length groups: messages sorted by length and cut into groups that are each padded only to
their own longest message (``attention_groups``), so one long message no longer makes every
other message of the batch pay attention over its length. A batch of mixed lengths then costs
about what its tokens cost, so the server can batch requests in arrival order.
Numerically the same as the padded forward (checked in the tests); inference only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from transformers import BertModel

# What one more attention call (its launch, gather and scatter) costs, in the units of the padded
# attention work (messages x length^2): about one 64-token message, as measured on a CPU. With it
# the grouping turns attention from a sizeable share of a chat batch's forward into a small one.
GROUP_COST = 64 * 64


@dataclass(frozen=True)
class _Group:
    gather: torch.Tensor  # [n*length] rows of the packed tokens (padding slots read row 0)
    keep: torch.Tensor  # [n, length] real-token mask
    real: torch.Tensor  # [real tokens] positions of the real tokens in the group's layout
    scatter: torch.Tensor  # [real tokens] their rows in the packed tokens
    length: int
    whole: bool  # the group is the whole batch with no padding: no gather or scatter needed

    def to(self, device: torch.device) -> _Group:
        return replace(
            self,
            gather=self.gather.to(device),
            keep=self.keep.to(device),
            real=self.real.to(device),
            scatter=self.scatter.to(device),
        )


def attention_groups(lengths: list[int], group_cost: int | None = None) -> list[list[int]]:
    """Messages (indices into ``lengths``) cut into groups sorted by length, minimising the
    padded attention work ``sum(n_g * max_len_g^2)`` plus ``group_cost`` (default
    :data:`GROUP_COST`) per group."""
    if group_cost is None:
        group_cost = GROUP_COST
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j sorted messages
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]] ** 2
        for i in range(j):
            cost = best[i] + (j - i) * longest + group_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


def _plan(attention_mask: torch.Tensor) -> tuple[torch.Tensor, list[_Group]]:
    """Where each message's tokens sit in the packed matrix, and the attention groups."""
    keep = attention_mask.bool()
    lengths = keep.sum(1)
    starts = torch.cumsum(lengths, 0) - lengths  # messages' first rows in the packed tokens
    # Real tokens need not be left-aligned in the mask; the packed order follows the mask.
    rows = keep.reshape(-1).nonzero().squeeze(1)
    groups = []
    for members in attention_groups(lengths.tolist()):
        idx = torch.tensor(members)
        g_len = int(lengths[idx].max())
        if g_len == 0:  # rows without a single real token: nothing to attend
            continue
        slot = torch.arange(g_len)
        g_keep = slot[None, :] < lengths[idx][:, None]
        # Padding slots may read any row: attention masks them as keys and drops them as queries.
        gather = torch.where(g_keep, starts[idx][:, None] + slot[None, :], 0).reshape(-1)
        real = g_keep.reshape(-1).nonzero().squeeze(1)
        whole = len(members) == len(lengths) and bool(g_keep.all()) and members == sorted(members)
        groups.append(_Group(gather, g_keep, real, gather.index_select(0, real), g_len, whole))
    return rows, groups


def pooled_unpadded(
    encoder: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean of the last layer's states over each message's real tokens: ``[batch, hidden]``."""
    hidden = encoder.embeddings(input_ids=input_ids)
    batch, length, width = hidden.shape
    rows, planned = _plan(attention_mask.cpu())  # planned on the CPU: small, Python-driven
    rows = rows.to(hidden.device)
    groups = [g.to(hidden.device) for g in planned]
    x = hidden.reshape(batch * length, width).index_select(0, rows)

    layers: Any = encoder.encoder.layer  # BertLayer modules; typed loosely by transformers
    for layer in layers:
        att = layer.attention.self
        heads = att.num_attention_heads
        qkv = nn.functional.linear(x, *_fused_qkv(att))
        context: torch.Tensor | None = None
        for g in groups:
            n = g.keep.shape[0]
            part = qkv if g.whole else qkv.index_select(0, g.gather)
            q, k, v = part.view(n, g.length, 3 * heads, -1).transpose(1, 2).split(heads, dim=1)
            out = nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=None if g.whole else g.keep[:, None, None, :], scale=att.scaling
            )
            out = out.transpose(1, 2).reshape(n * g.length, width)
            if g.whole:
                context = out
                break
            if context is None:  # autocast decides the dtype
                context = out.new_empty(x.shape)
            context.index_copy_(0, g.scatter, out.index_select(0, g.real))
        if context is None:  # no real token in the whole batch
            context = torch.zeros_like(x)
        out_block = layer.attention.output
        x = out_block.LayerNorm(out_block.dense(context) + x)
        ff = layer.output
        x = ff.LayerNorm(ff.dense(layer.intermediate(x)) + x)
    message = rows // length
    sums = x.new_zeros(batch, width).index_add_(0, message, x)
    counts = attention_mask.bool().sum(1, keepdim=True).clamp(min=1).to(x.dtype)
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
