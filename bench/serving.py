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
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# after the path fix, for direct runs
from bench.ceiling import ceiling  # noqa: E402
from bench.generative import through_server  # noqa: E402
from bench.harness import DEFAULTS, load, resolve_bundle, server  # noqa: E402
from thumbloop.model.device import cpu_has_native_bf16, cpu_model  # noqa: E402
from thumbloop.settings import Settings  # noqa: E402
from thumbloop.store.db import upgrade  # noqa: E402


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


def plot(results: dict[str, list[dict[str, float]]], out: Path, title: str) -> None:
    # here, not at the top: the headless backend has to be chosen before pyplot is imported
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
