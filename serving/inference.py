"""One batch of texts through a loaded bundle, as the batcher's outputs.

Shared by the two places a batch can run: the server process (:class:`serving.engine.ModelHolder`)
and a model process (:mod:`serving.pool`). Neither imports the other for it, so the pool does not
depend on the engine that owns it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from thumbloop.contracts import RANKING_SIZE
from thumbloop.model.bundle import LoadedBundle
from thumbloop.model.predictor import predict_batch, predict_chunks

WARMUP_TEXTS = [
    "hi",
    "where is my card?",
    "I was charged twice for the same payment at the shop yesterday, please help me sort it out",
]


@dataclass(frozen=True)
class RawOutput:
    """One message's model output; the version names the model that produced it."""

    intent: str
    confidence: float
    ranking: list[tuple[str, float]]
    sentiment: str
    sentiment_score: float
    version: str
    out_of_scope: str | None
    threshold: float


OutputChunk = tuple[list[int], list[RawOutput]]  # input indices and their outputs


def output_chunks(
    bundle: LoadedBundle,
    version: str,
    texts: Sequence[str],
    max_seq_len: int,
    sub_batch: int,
    threshold_override: float | None = None,
) -> Iterator[OutputChunk]:
    """Outputs per length-sorted sub-batch as each finishes (the batcher answers them at once)."""
    intents, sentiments = bundle.intents, bundle.sentiments
    threshold = threshold_override if threshold_override is not None else bundle.oos_threshold
    for idx, p_int, p_sent in predict_chunks(bundle, texts, max_seq_len, sub_batch):
        top = np.argsort(-p_int, axis=1)[:, :RANKING_SIZE]
        out = []
        for row, ranks, ps in zip(p_int, top, p_sent, strict=True):
            ranking = [(intents[int(i)], float(row[int(i)])) for i in ranks]
            s = int(ps.argmax())
            out.append(
                RawOutput(
                    intent=ranking[0][0],
                    confidence=ranking[0][1],
                    ranking=ranking,
                    sentiment=sentiments[s],
                    sentiment_score=float(ps[s]),
                    version=version,
                    out_of_scope=bundle.out_of_scope,
                    threshold=threshold,
                )
            )
        yield idx, out


def in_input_order(chunks: Iterable[OutputChunk], n: int) -> list[RawOutput]:
    """Every chunk's outputs gathered back into the order of the ``n`` inputs."""
    out: list[RawOutput | None] = [None] * n
    for idx, outputs in chunks:
        for i, o in zip(idx, outputs, strict=True):
            out[i] = o
    return [o for o in out if o is not None]


class ModelCheckFailed(RuntimeError):
    """The model loads but must not serve: its warm-up outputs are not finite numbers."""


def warm_up(bundle: LoadedBundle, max_seq_len: int) -> None:
    """Run a few batch shapes once: kernels and the allocator are ready before real traffic.
    Also the check that the model answers at all: weights with a NaN or an infinity (a training
    run that diverged) load fine and then fail every request, so such a version is refused
    here, before it can be swapped in."""
    for n in (1, 4, 16):
        intents, sentiments = predict_batch(bundle, (WARMUP_TEXTS * n)[:n], max_seq_len)
        if not (np.isfinite(intents).all() and np.isfinite(sentiments).all()):
            raise ModelCheckFailed(
                f"the model's outputs for a warm-up batch of {n} are not finite "
                "(NaN or infinite weights?); it will not serve"
            )


def settle_heap() -> None:
    """Move what is alive now (the libraries, the model just loaded) out of the cyclic GC's
    reach and make young-generation collections rarer: on a busy server, full collections
    walking millions of library objects were a visible share of the p99. Unfreezing first lets
    the previous model's cycles be collected at the next load."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
