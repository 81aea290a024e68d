"""Design (c) of bench/serving.py: the model's batched forward in-process, no HTTP and no queue,
the ceiling a server's throughput is compared with."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.harness import DEFAULTS
from serving.pool import pool_size
from thumbloop.model.bundle import load_bundle
from thumbloop.model.device import resolve_device, use_cpu_bf16
from thumbloop.model.predictor import predict_bucketed


def ceiling(
    bundle_dir: Path, args: argparse.Namespace, texts: list[str], concurrency: int, seconds: float
) -> dict[str, Any]:
    """(c): `concurrency` messages at a time straight through the model, no HTTP, no queue, in
    the faster of two layouts: one process using every core, or (on a CPU) the server's model
    processes with one torch thread each, sharing the messages (`serving.pool`)."""
    best = _point(concurrency, [_forward_loop(bundle_dir, args, texts, concurrency, seconds)])
    best["layout"] = "1 process"
    procs = pool_size(None, args.device)
    if procs >= 2 and concurrency >= procs:
        ctx = mp.get_context("spawn")
        barrier, queue = ctx.Barrier(procs), ctx.Queue()
        share = concurrency // procs
        jobs = [
            ctx.Process(
                target=_forward_child,
                args=(bundle_dir, args, texts[k::procs], share, seconds, barrier, queue),
            )
            for k in range(procs)
        ]
        for j in jobs:
            j.start()
        runs = [queue.get(timeout=300) for _ in jobs]
        for j in jobs:
            j.join()
        split = _point(concurrency, runs)
        split["layout"] = f"{procs} processes x 1 thread"
        slower = min(best, split, key=lambda r: r["throughput_rps"])
        best = max(best, split, key=lambda r: r["throughput_rps"])
        best["other_layout_rps"] = slower["throughput_rps"]
    return best


def _point(concurrency: int, runs: list[tuple[int, list[float]]]) -> dict[str, Any]:
    """One result row from loops that ran side by side over the same seconds."""
    ms = np.concatenate([np.array(lat) * 1000 for _, lat in runs])
    return {
        "concurrency": concurrency,
        "requests": sum(n for n, _ in runs),
        "errors": 0,
        "throughput_rps": sum(n / sum(lat) for n, lat in runs),
        **{f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)},
    }


def _forward_child(
    bundle_dir: Path,
    args: argparse.Namespace,
    texts: list[str],
    batch: int,
    seconds: float,
    barrier: Any,
    queue: Any,
) -> None:
    queue.put(_forward_loop(bundle_dir, args, texts, batch, seconds, threads=1, barrier=barrier))


def _forward_loop(
    bundle_dir: Path,
    args: argparse.Namespace,
    texts: list[str],
    batch_size: int,
    seconds: float,
    threads: int | None = None,
    barrier: Any = None,
) -> tuple[int, list[float]]:
    """Batches of ``batch_size`` through the model for ``seconds``: messages done and each
    batch's seconds."""
    device = resolve_device(args.device, threads)
    bundle = load_bundle(bundle_dir, device, use_cpu_bf16(args.cpu_bf16))
    chunk = DEFAULTS["sub_batch_size"]
    for _ in range(3):
        predict_bucketed(bundle, texts[:batch_size], chunk=chunk)
    if barrier is not None:
        barrier.wait()  # side-by-side loops measure over the same seconds
    lat: list[float] = []
    n = i = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        batch = [texts[(i + k) % len(texts)] for k in range(batch_size)]
        i += batch_size
        t = time.perf_counter()
        predict_bucketed(bundle, batch, chunk=chunk)
        if bundle.device.type == "cuda":
            torch.cuda.synchronize()
        lat.append(time.perf_counter() - t)
        n += batch_size
    return n, lat
