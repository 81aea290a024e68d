"""Batched forward passes: one encoder pass gives intent and sentiment probabilities."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from thumbloop.model.bundle import LoadedBundle


def predict_batch(
    bundle: LoadedBundle, texts: Sequence[str], max_length: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities for one batch: (intents [B, n_intents], sentiments [B, 3])."""
    enc = bundle.tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    ids = enc["input_ids"].to(bundle.device, non_blocking=True)
    mask = enc["attention_mask"].to(bundle.device, non_blocking=True)
    dtype = bundle.compute_dtype
    ctx = (
        torch.autocast(device_type=bundle.device.type, dtype=dtype)
        if dtype is not None
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), ctx:
        intent_logits, sentiment_logits = bundle.model.infer(ids, mask)
    intents = torch.softmax(intent_logits.float(), dim=-1).cpu().numpy()
    sentiments = torch.softmax(sentiment_logits.float(), dim=-1).cpu().numpy()
    if intents.shape[0] != len(texts) or sentiments.shape[0] != len(texts):
        raise RuntimeError(f"model returned {intents.shape[0]} outputs for {len(texts)} inputs")
    return intents, sentiments


def predict_chunks(
    bundle: LoadedBundle, texts: Sequence[str], max_length: int = 128, chunk: int = 16
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """One server batch as length-sorted sub-batches of ``chunk``, shortest first, yielded as
    each finishes (input indices, intent and sentiment probabilities). The forward skips
    padding in its token-wise layers; sorting still trims the padded attention of long
    messages, and smaller chunks answer their requests earlier."""
    if len(texts) <= chunk:
        yield (list(range(len(texts))), *predict_batch(bundle, texts, max_length))
        return
    lengths = [
        len(ids)
        for ids in bundle.tokenizer(list(texts), truncation=True, max_length=max_length)[
            "input_ids"
        ]
    ]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    for start in range(0, len(order), chunk):
        idx = order[start : start + chunk]
        yield (idx, *predict_batch(bundle, [texts[i] for i in idx], max_length))


def predict_bucketed(
    bundle: LoadedBundle, texts: Sequence[str], max_length: int = 128, chunk: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`predict_chunks` gathered back into input order."""
    intents = np.zeros((len(texts), bundle.model.config.n_intents), dtype=np.float32)
    sentiments = np.zeros((len(texts), bundle.model.config.n_sentiments), dtype=np.float32)
    for idx, p_int, p_sent in predict_chunks(bundle, texts, max_length, chunk):
        intents[idx], sentiments[idx] = p_int, p_sent
    return intents, sentiments


def intent_predictions(
    bundle: LoadedBundle, probs: np.ndarray, threshold: float | None = None
) -> list[str]:
    """Top intent per row, or the bundle's out-of-scope label below the confidence threshold."""
    intents, oos = bundle.intents, bundle.out_of_scope
    t = bundle.oos_threshold if threshold is None else threshold
    top, conf = probs.argmax(1), probs.max(1)
    return [oos if (oos and c < t) else intents[i] for i, c in zip(top, conf, strict=True)]


def predict_many(
    bundle: LoadedBundle,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 128,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Length-sorted batches (little padding), results in input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    n_int = bundle.model.config.n_intents
    intents = np.zeros((len(texts), n_int), dtype=np.float32)
    sentiments = np.zeros((len(texts), bundle.model.config.n_sentiments), dtype=np.float32)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="predict", disable=not progress, unit="batch"):
        idx = order[start : start + batch_size]
        p_int, p_sent = predict_batch(bundle, [texts[i] for i in idx], max_length)
        intents[idx] = p_int
        sentiments[idx] = p_sent
    return intents, sentiments
