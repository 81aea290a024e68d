"""Batched forward passes: sub-batches cover every text once, shortest first, and give what one
batch gives; on CUDA, under autocast, the probabilities are the CPU's within half precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_bundle import make_tiny_bundle
from thumbloop.model.bundle import load_bundle
from thumbloop.model.device import autocast_dtype
from thumbloop.model.predictor import predict_batch, predict_bucketed, predict_chunks

TEXTS = [
    "hi",
    "where is my card?",
    "I ordered a new card two weeks ago and it has still not arrived, what should I do",
    "change my PIN please",
    "thanks",
    "how long does a card take to arrive in the post when I live abroad?",
    "my card",
    "is there a fee for changing the PIN at an ATM",
    "hello there",
]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("tiny") / "bundle")


def test_chunks_cover_every_text_once_shortest_first(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir, torch.device("cpu"))
    chunks = list(predict_chunks(bundle, TEXTS, chunk=4))
    order = [i for idx, _, _ in chunks for i in idx]
    assert sorted(order) == list(range(len(TEXTS)))
    assert [len(idx) for idx, _, _ in chunks] == [4, 4, 1]
    lengths = [len(ids) for ids in bundle.tokenizer(TEXTS)["input_ids"]]
    assert [lengths[i] for i in order] == sorted(lengths)
    whole = predict_batch(bundle, TEXTS)
    for got, expected in zip(predict_bucketed(bundle, TEXTS, chunk=4), whole, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.gpu
def test_cuda_predictions_run_under_autocast_and_match_the_cpu(bundle_dir: Path) -> None:
    cpu = load_bundle(bundle_dir, torch.device("cpu"))
    gpu = load_bundle(bundle_dir, torch.device("cuda"))
    assert next(gpu.model.parameters()).device.type == "cuda"
    assert gpu.compute_dtype == autocast_dtype(torch.device("cuda"))
    assert gpu.compute_dtype_name in ("bfloat16", "float16")
    expected = predict_batch(cpu, TEXTS)
    for got, ref in zip(predict_bucketed(gpu, TEXTS, chunk=4), expected, strict=True):
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-4)
        np.testing.assert_allclose(got, ref, atol=0.05)
