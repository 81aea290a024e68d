"""The serving forward that skips padding gives the padded forward's logits; bf16 on a CPU
keeps the answers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from thumbloop.model import unpadded
from thumbloop.model.device import autocast_dtype, cpu_has_native_bf16, use_cpu_bf16
from thumbloop.model.encoder import default_encoder_path
from thumbloop.model.network import HeadsConfig, ThumbloopModel


def _model(encoder: BertModel, normalize: bool) -> ThumbloopModel:
    torch.manual_seed(1)
    width = encoder.config.hidden_size
    return ThumbloopModel(encoder, HeadsConfig(n_intents=5, hidden_size=width, normalize=normalize))


def _tiny(
    vocab: int, hidden: int, layers: int, heads: int, inter: int, normalize: bool = False
) -> ThumbloopModel:
    config = BertConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=inter,
    )  # fmt: skip
    return _model(BertModel(config, add_pooling_layer=False), normalize)


def _minilm() -> tuple[Any, ThumbloopModel]:
    """The shipped encoder's tokenizer and a model on it, in eval mode."""
    path = default_encoder_path()
    encoder = BertModel.from_pretrained(path, add_pooling_layer=False)
    return AutoTokenizer.from_pretrained(path), _model(encoder, True).eval()


@pytest.mark.parametrize(("normalize", "group_cost"), [(False, None), (True, None), (True, 0)])
def test_tiny_encoder_same_logits_with_and_without_padding(
    normalize: bool, group_cost: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if group_cost is not None:  # 0: every distinct length gets its own attention group
        monkeypatch.setattr(unpadded, "GROUP_COST", group_cost)
    torch.manual_seed(0)
    model = _tiny(50, 16, layers=2, heads=4, inter=32, normalize=normalize).eval()
    ids = torch.randint(1, 50, (5, 9))
    mask = torch.tensor(
        [[1] * 9, [1] * 3 + [0] * 6, [1] + [0] * 8, [1] * 6 + [0] * 3, [0, 0, 1, 1, 1, 0, 0, 0, 0]]
    )
    with torch.inference_mode():
        padded = model(ids, mask)
        packed = model.infer(ids, mask)
        alone = model.infer(ids[1:2, :3], mask[1:2, :3])  # the same message with no padding
    for a, b in zip(padded, packed, strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert torch.allclose(alone[0], packed[0][1:2], atol=1e-5)


def test_shipped_minilm_same_logits_on_real_messages() -> None:
    tokenizer, model = _minilm()
    texts = ["hi", "my card was charged twice at the same shop yesterday, why?", "where is it"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        padded = model(enc["input_ids"], enc["attention_mask"])
        packed = model.infer(enc["input_ids"], enc["attention_mask"])
    assert enc["attention_mask"].float().mean() < 0.8  # the batch really is padded
    for a, b in zip(padded, packed, strict=True):
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


def test_attention_groups_split_where_padding_would_cost_more_than_a_call() -> None:
    lengths = [8, 74, 9, 8, 10, 8, 9, 8, 8, 9, 8]
    groups = unpadded.attention_groups(lengths)
    assert groups == [[0, 3, 5, 7, 8, 10, 2, 6, 9, 4], [1]]  # the long message alone
    assert unpadded.attention_groups([12] * 6) == [[0, 1, 2, 3, 4, 5]]
    assert unpadded.attention_groups([5, 3, 5, 4], group_cost=0) == [[1], [3], [0, 2]]
    assert unpadded.attention_groups([5, 3, 5, 4], group_cost=10**9) == [[1, 3, 0, 2]]
    assert unpadded.attention_groups([]) == []


def test_batches_without_real_tokens_give_zero_embeddings_not_errors() -> None:
    model = _tiny(20, 8, layers=1, heads=2, inter=8).eval()
    with torch.inference_mode():
        empty = unpadded.pooled_unpadded(
            model.encoder,  # type: ignore[arg-type]
            torch.zeros(0, 4, dtype=torch.long),
            torch.zeros(0, 4, dtype=torch.long),
        )
        ids = torch.randint(1, 20, (2, 70))
        mask = torch.zeros(2, 70, dtype=torch.long)
        mask[1] = 1  # one empty row beside a long one: the empty row gets a group of its own
        mixed = unpadded.pooled_unpadded(model.encoder, ids, mask)  # type: ignore[arg-type]
    assert empty.shape == (0, 8)
    assert torch.equal(mixed[0], torch.zeros(8)) and bool(mixed[1].abs().sum() > 0)


def test_infer_refuses_training_mode() -> None:
    model = _tiny(10, 8, layers=1, heads=2, inter=8).train()
    with pytest.raises(RuntimeError, match="eval mode"):
        model.infer(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))


def test_fused_projections_follow_weights_changed_in_place() -> None:
    model = _tiny(20, 8, layers=1, heads=2, inter=8).eval()
    ids, mask = torch.randint(1, 20, (2, 4)), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with torch.inference_mode():
        before = model.infer(ids, mask)[0]
    with torch.no_grad():  # what an optimiser step or load_state_dict does
        key: Any = model.encoder.encoder.layer[0].attention.self.key  # type: ignore[union-attr]
        key.weight.mul_(3.0)
    with torch.inference_mode():
        after, expected = model.infer(ids, mask)[0], model(ids, mask)[0]
    assert not torch.allclose(before, after)
    assert torch.allclose(after, expected, atol=1e-5)


def test_cpu_bf16_is_opt_in_and_keeps_the_answers() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu) is None and autocast_dtype(cpu, cpu_bf16=True) == torch.bfloat16
    assert use_cpu_bf16("on") and not use_cpu_bf16("off")
    assert use_cpu_bf16("auto") == cpu_has_native_bf16()
    tokenizer, model = _minilm()
    texts = ["where is my new card", "I was charged twice!!", "thanks a lot", "how do I top up"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        exact = model.infer(enc["input_ids"], enc["attention_mask"])[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model.infer(enc["input_ids"], enc["attention_mask"])[0].float()
    assert torch.equal(exact.argmax(-1), fast.argmax(-1))
    assert torch.allclose(exact.softmax(-1), fast.softmax(-1), atol=0.05)


@pytest.mark.gpu
def test_cuda_same_logits_with_and_without_padding_and_under_autocast() -> None:
    """The packed forward on CUDA: index plans built on the CPU, moved to the GPU; under the
    serving autocast the attention output's dtype is the one autocast picks."""
    cuda = torch.device("cuda")
    torch.manual_seed(0)
    model = _tiny(50, 16, layers=2, heads=4, inter=32, normalize=True).eval().to(cuda)
    ids = torch.randint(1, 50, (5, 9)).to(cuda)
    mask = torch.tensor(
        [[1] * 9, [1] * 3 + [0] * 6, [1] + [0] * 8, [1] * 6 + [0] * 3, [0, 0, 1, 1, 1, 0, 0, 0, 0]]
    ).to(cuda)
    dtype = autocast_dtype(cuda)
    assert dtype in (torch.bfloat16, torch.float16)
    with torch.inference_mode():
        padded = model(ids, mask)
        packed = model.infer(ids, mask)
        with torch.autocast("cuda", dtype=dtype):
            fast = model.infer(ids, mask)
    for a, b, c in zip(padded, packed, fast, strict=True):
        assert b.device.type == "cuda"
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
        assert torch.allclose(a, c.float(), atol=0.1), (a - c.float()).abs().max()
