"""The loaded model behind the batcher, and the atomic swap to a new one.

A batch reads ``holder.current`` once when it starts, so in-flight batches finish on the model
they began with while new batches use the new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import torch

# RawOutput lives in serving.inference (the model processes need it without this module);
# learning.simulate still imports it from here
from serving.inference import OutputChunk, RawOutput, in_input_order, output_chunks, warm_up
from serving.model_source import ResolvedModel, resolve
from serving.pool import ModelPool, PoolConfig, PoolRetired
from thumbloop.model.bundle import LoadedBundle, find_bundle_dir, load_bundle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveModel:
    bundle: LoadedBundle
    version: str
    uri: str
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    pool: ModelPool | None = None  # the processes that run its batches, if not this one


def load_active(
    uri: str,
    tracking_uri: str,
    cache_dir: Path,
    device: torch.device,
    max_seq_len: int,
    cpu_bf16: bool = False,
    fetch_generator_base: bool = True,
    pool: PoolConfig | None = None,
    on_pool_restart: Callable[[], None] | None = None,
    admit: bool = False,
) -> ActiveModel:
    """The model at ``uri``, warmed up; with ``pool``, its batches run in model processes
    (started and warm when this returns) and this process keeps the bundle for its labels,
    replies and metadata. With ``admit``, an alias pointing at a version serving refuses raises
    :class:`serving.model_source.VersionRefused` (see ``resolve``)."""
    resolved: ResolvedModel = resolve(
        uri, tracking_uri, cache_dir, fetch_base=fetch_generator_base, admit=admit
    )
    bundle = load_bundle(resolved.bundle_dir, device, cpu_bf16)
    active = ActiveModel(bundle, resolved.version, uri)
    start = time.perf_counter()
    if pool is None:
        warm_up(bundle, max_seq_len)
    else:
        procs = ModelPool(
            find_bundle_dir(resolved.bundle_dir), resolved.version, uri, pool, on_pool_restart
        )
        procs.start()
        active = replace(active, pool=procs)
    log.info(
        "loaded %s (%s) on %s (%s)%s, warm-up %.2f s",
        resolved.version,
        uri,
        device,
        bundle.compute_dtype_name,
        f" in {pool.processes} model processes" if pool else "",
        time.perf_counter() - start,
    )
    return active


class ModelHolder:
    def __init__(
        self, max_seq_len: int, threshold_override: float | None = None, sub_batch: int = 16
    ) -> None:
        self.current: ActiveModel | None = None
        self.max_seq_len = max_seq_len
        self.sub_batch = sub_batch
        self.threshold_override = threshold_override

    def swap(self, new: ActiveModel) -> ActiveModel | None:
        """Make ``new`` current; the old model's processes stop after their running batches."""
        old, self.current = self.current, new
        if old is not None and old.pool is not None and old.pool is not new.pool:
            old.pool.retire()
        return old

    def install_first(self, active: ActiveModel) -> bool:
        """Make ``active`` current unless a model already is (the watcher swapped one in
        first); a model that is not installed has its processes stopped."""
        if self.current is None:
            self.current = active
            return True
        if active.pool is not None:
            active.pool.retire()
        return False

    def close(self) -> None:
        active = self.current
        if active is not None and active.pool is not None:
            active.pool.close()

    def lane(self, k: int) -> Callable[[Sequence[str]], Iterator[OutputChunk]]:
        """Batcher lane ``k``: the current model's process ``k``, or this process when the
        model has no pool."""

        def run(texts: Sequence[str]) -> Iterator[OutputChunk]:
            while True:
                active = self.current
                if active is None or active.pool is None:
                    return self.process_chunks(texts)
                try:
                    return iter([(list(range(len(texts))), active.pool.run(k, texts))])
                except PoolRetired:  # swapped out between reading it and sending: again
                    continue

        return run

    def process(self, texts: Sequence[str]) -> list[RawOutput]:
        """All outputs at once, in input order."""
        return in_input_order(self.process_chunks(texts), len(texts))

    def process_chunks(self, texts: Sequence[str]) -> Iterator[OutputChunk]:
        """Outputs per length-sorted sub-batch as each finishes (the batcher answers them at
        once). The whole batch runs on the model that was current when it started."""
        active = self.current
        if active is None:
            raise RuntimeError("no model loaded")
        yield from output_chunks(
            active.bundle,
            active.version,
            texts,
            self.max_seq_len,
            self.sub_batch,
            self.threshold_override,
        )
