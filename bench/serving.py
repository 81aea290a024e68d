"""Serving benchmark: throughput and latency vs concurrency for four designs, in one run.

    python bench/serving.py [--model URI_OR_PATH] [--device cpu|cuda] [--seconds 8]
                            [--concurrency 1 8 32 128] [--out bench/results]

(a) `thumbloop serve` with dynamic batching; (b) the same server with max_batch_size=1;
(c) the model's batched forward in-process, no HTTP (the ceiling); (d) FastAPI calling a
transformers pipeline per request. Load comes from a separate process (bench/loadgen.py),
closed loop. Prints a table and writes serving.json and serving.png under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thumbloop.settings import Settings  # noqa: E402  (after the path fix, for direct runs)

DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}


def chat_messages(limit: int = 2000) -> list[str]:
    """Chat-length messages from the shipped validation data (intents and tweets)."""
    texts: list[str] = []
    for path in (
        ROOT / "data/banking/intents/validation.jsonl",
        ROOT / "data/sentiment/validation.jsonl",
    ):
        texts += [
            json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()
        ]
    rng = np.random.default_rng(0)
    rng.shuffle(texts)
    return [t.replace("\n", " ") for t in texts[:limit]]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@contextmanager
def server(cmd: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    log = Path(tempfile.mkstemp(prefix="bench-server-", suffix=".log")[1])
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, env=os.environ | env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url
    except RuntimeError:
        print(log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def load(url: str, concurrency: int, seconds: float, texts_file: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/loadgen.py"),
            "--url",
            url,
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(seconds),
            "--texts",
            str(texts_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ceiling(
    bundle_dir: Path, args: argparse.Namespace, texts: list[str], concurrency: int, seconds: float
) -> dict[str, Any]:
    """(c): `concurrency` messages at a time straight through the model, no HTTP, no queue, in
    the faster of two layouts: one process using every core, or (on a CPU) the server's model
    processes with one torch thread each, sharing the messages (`serving.pool`)."""
    from serving.pool import pool_size

    best = _point(concurrency, [_forward_loop(bundle_dir, args, texts, concurrency, seconds)])
    best["layout"] = "1 process"
    procs = pool_size(None, args.device)
    if procs >= 2 and concurrency >= procs:
        import multiprocessing as mp

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
    import torch

    from thumbloop.model.bundle import load_bundle
    from thumbloop.model.device import resolve_device, use_cpu_bf16
    from thumbloop.model.predictor import predict_bucketed

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


def resolve_bundle(model: str | None) -> Path:
    from serving.model_source import resolve
    from thumbloop.settings import Settings

    settings = Settings()
    try:
        return resolve(
            model or settings.model_uri, settings.effective_tracking_uri, settings.home / "models"
        ).bundle_dir
    except Exception as exc:
        raise SystemExit(
            f"no model to benchmark ({exc}); train one first: thumbloop train"
        ) from exc


def plot(results: dict[str, list[dict[str, float]]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, rows in results.items():
        c = [r["concurrency"] for r in rows]
        ax1.plot(c, [r["throughput_rps"] for r in rows], marker="o", label=name)
        ax2.plot(c, [r["p99_ms"] for r in rows], marker="o", label=name)
    for ax, ylabel in ((ax1, "throughput (req/s)"), (ax2, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (closed loop)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    ax2.set_yscale("log")
    ax2.axhline(250, color="grey", ls="--", lw=0.8)
    ax1.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="models:/NAME@ALIAS or a bundle path")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument(
        "--cpu-bf16",
        default=DEFAULTS["cpu_bf16"],
        choices=["auto", "on", "off"],
        help="bf16 autocast on a CPU, for the server and the ceiling alike",
    )
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--max-batch-size", type=int, default=DEFAULTS["max_batch_size"])
    ap.add_argument("--max-wait-ms", type=float, default=DEFAULTS["max_wait_ms"])
    ap.add_argument(
        "--model-processes",
        type=int,
        default=None,
        help="the servers' THUMBLOOP_MODEL_PROCESSES (default: theirs; 0 = model in the server)",
    )
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench/results")))
    ap.add_argument(
        "--generative",
        action="store_true",
        help="also (e): the generative reply path through the server, 40-token replies at "
        "concurrency 1 and 8, no time budget (see bench/generative.py for the full study)",
    )
    ap.add_argument("--generative-seconds", type=float, default=30.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bundle_dir = resolve_bundle(args.model)
    texts = chat_messages()
    texts_file = args.out / "bench_messages.txt"
    texts_file.write_text("\n".join(texts), encoding="utf-8")
    thumbloop = [sys.executable, "-m", "thumbloop", "serve", "--model", str(bundle_dir)]
    base_env = {
        "THUMBLOOP_DEVICE": args.device,
        "THUMBLOOP_CPU_BF16": args.cpu_bf16,
        "THUMBLOOP_MAX_QUEUE": "4096",
        "THUMBLOOP_HOME": tempfile.mkdtemp(prefix="bench-home-"),
    }
    if args.model_processes is not None:
        base_env["THUMBLOOP_MODEL_PROCESSES"] = str(args.model_processes)
    # the embedded default's database, migrated as `thumbloop up` leaves it: reply choice then
    # reads its (empty) vote counts the way a real server does, instead of failing over to
    # uniform priors
    from thumbloop.store.db import upgrade

    upgrade(Settings(home=Path(base_env["THUMBLOOP_HOME"])).effective_database_url)
    designs = {
        "a: batched server": (
            thumbloop,
            {
                "THUMBLOOP_MAX_BATCH_SIZE": str(args.max_batch_size),
                "THUMBLOOP_MAX_WAIT_MS": str(args.max_wait_ms),
            },
        ),
        "b: max_batch_size=1": (thumbloop, {"THUMBLOOP_MAX_BATCH_SIZE": "1"}),
        "d: naive pipeline": (
            [
                sys.executable,
                str(ROOT / "bench/naive_server.py"),
                "--model",
                str(bundle_dir),
                "--device",
                args.device,
            ],
            {},
        ),
    }
    results: dict[str, list[dict[str, float]]] = {"c: in-process ceiling": []}
    for i, (name, (cmd, env)) in enumerate(designs.items()):
        port = 8700 + i
        with server([*cmd, "--port", str(port)], port, base_env | env) as url:
            results[name] = []
            for c in args.concurrency:
                points = [(name, load(url, c, args.seconds, texts_file))]
                if name.startswith("a:"):
                    # right after (a)'s point, with (a)'s server idle: a/c compares two
                    # measurements taken under the same conditions on a machine whose speed drifts
                    ceil = ceiling(bundle_dir, args, texts, c, min(args.seconds, 5.0))
                    points.append(("c: in-process ceiling", ceil))
                for label, r in points:
                    results[label].append(r)
                    print(
                        f"{label:<22} c={c:<4} {r['throughput_rps']:8.1f} req/s"
                        f"  p99 {r['p99_ms']:8.1f} ms",
                        flush=True,
                    )
    generative = generative_path(args, bundle_dir) if args.generative else None
    report(results, args, generative)


def generative_path(args: argparse.Namespace, bundle_dir: Path) -> list[dict[str, Any]]:
    """(e) replies written by the generator (SmolLM2) through `thumbloop serve`: one request at a
    time (the latency of a 40-token reply) and 8 at a time (batched generation's throughput)."""
    from bench.generative import through_server

    gen_args = argparse.Namespace(
        device=args.device,
        out=args.out,
        tokens=40,
        concurrency=[1, 8],
        seconds=args.generative_seconds,
        budget_ms=120_000.0,  # measure generation, not the fallback
        max_batch_size=8,
    )
    return through_server(gen_args, bundle_dir, "smollm2")


def report(
    results: dict[str, list[dict[str, float]]],
    args: argparse.Namespace,
    generative: list[dict[str, Any]] | None = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    from thumbloop.model.device import cpu_has_native_bf16, cpu_model

    table = Table(
        title=f"serving benchmark ({args.device}, {os.cpu_count()} cpus, "
        f"{args.seconds:.0f} s per point)"
    )
    for col in ("design", "conc.", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"):
        table.add_column(col, justify="right" if col != "design" else "left")
    for name in sorted(results):
        for r in results[name]:
            table.add_row(
                name,
                str(r["concurrency"]),
                f"{r['throughput_rps']:.1f}",
                f"{r['p50_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                str(r["errors"]),
            )
    Console().print(table)

    def at(name: str, c: int) -> dict[str, float]:
        return next(r for r in results[name] if r["concurrency"] == c)

    ratios = {}
    for c in args.concurrency:
        a = at("a: batched server", c)["throughput_rps"]
        ratios[str(c)] = {
            "a/c": a / at("c: in-process ceiling", c)["throughput_rps"],
            "a/b": a / at("b: max_batch_size=1", c)["throughput_rps"],
            "a/d": a / at("d: naive pipeline", c)["throughput_rps"],
        }
        print(f"c={c:<4} " + "  ".join(f"{k} = {v:.2f}" for k, v in ratios[str(c)].items()))
    payload = {
        "device": args.device,
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "python": platform.python_version(),
        "seconds_per_point": args.seconds,
        "max_batch_size": args.max_batch_size,
        "max_wait_ms": args.max_wait_ms,
        "model_processes": args.model_processes,
        "cpu_bf16": args.cpu_bf16,
        "results": results,
        "ratios": ratios,
    }
    if generative is not None:
        payload["generative"] = generative
        for r in generative:
            print(
                f"e: generative (40 tokens) c={r['concurrency']:<2} {r['throughput_rps']:.2f} "
                f"replies/s  p50 {r['p50_ms']:.0f} ms  p99 {r['p99_ms']:.0f} ms  "
                f"strategies {r['strategies']}"
            )
    (args.out / f"serving-{args.device}.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(
        results,
        args.out / f"serving-{args.device}.png",
        f"Thumbloop serving on {args.device} ({os.cpu_count()} cpus)",
    )
    print(f"wrote {args.out / f'serving-{args.device}.json'} and .png")


if __name__ == "__main__":
    main()
