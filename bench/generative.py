"""Generative replies benchmark: generator load times, in-process latency and batched throughput
for a fixed-length reply, and the generative path end to end through `thumbloop serve`.

    python bench/generative.py [--model URI_OR_PATH] [--generator smollm2|PATH] [--device cpu|cuda]
                               [--tokens 40] [--concurrency 1 8] [--seconds 30] [--budget-ms MS]
                               [--max-batch-size N] [--threads N] [--out bench/results]

(1) load: the bundled GGUF converted into a fresh cache folder, then that folder loaded (the cost
of every later start). (2) in-process: batches of `concurrency` grounded prompts (banking
validation messages with their intent's reference answer), each reply forced to exactly `--tokens`
new tokens; latency is one batch's wall time, so it is every reply's latency in the batch.
(3) server: `thumbloop serve` with THUMBLOOP_REPLY_STRATEGY=generative under closed-loop load
(bench/loadgen.py) with messages of the model's own intents; the replies' strategies (generated or
which fallback) are read from /metrics. Skipped when no classifier model can be found.
Prints a table and writes generative-<device>[-<threads>t][-budget<ms>ms].json under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# after the path fix, for direct runs
from bench.harness import load, resolve_bundle, server  # noqa: E402
from serving.generator.lm import Sampling, load_generator  # noqa: E402
from serving.generator.source import resolve_generator  # noqa: E402
from serving.replies.prompt import PromptInput, build_messages  # noqa: E402
from thumbloop.domain import load_responses  # noqa: E402

VALIDATION = ROOT / "data/banking/intents/validation.jsonl"


def banking_rows(intents: set[str] | None = None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in VALIDATION.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["label"] != "out_of_scope"]
    if intents is not None:
        rows = [r for r in rows if r["label"] in intents]
    random.Random(0).shuffle(rows)
    return rows


def load_times(device: str) -> dict[str, Any]:
    """Convert the bundled GGUF into a fresh home, then load the converted folder."""
    home = Path(tempfile.mkdtemp(prefix="bench-generator-"))
    start = time.perf_counter()
    source = resolve_generator("smollm2", home)
    convert_s = time.perf_counter() - start
    start = time.perf_counter()
    load_generator(str(source.folder), home, torch.device(device))
    folder_s = time.perf_counter() - start
    return {"folder": str(source.folder), "convert_s": convert_s, "folder_load_s": folder_s}


def in_process(
    spec: str, device: str, tokens: int, concurrency: list[int], seconds: float
) -> tuple[str, list[dict[str, float]]]:
    responses = load_responses(ROOT / "data/banking/responses.json")
    prompts = [
        build_messages(PromptInput(r["text"], r["label"], "neutral", responses[r["label"]][0].text))
        for r in banking_rows()[:256]
    ]
    generator = load_generator(spec, Path(tempfile.mkdtemp()), torch.device(device))
    sampling = Sampling(max_new_tokens=tokens, min_new_tokens=tokens)
    rows = []
    for c in concurrency:
        generator.generate(prompts[:c], sampling)  # warm-up for this shape
        lat: list[float] = []
        i, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end or len(lat) < 2:
            batch = [prompts[(i + k) % len(prompts)] for k in range(c)]
            i += c
            t = time.perf_counter()
            out = generator.generate(batch, sampling)
            if generator.device.type == "cuda":
                torch.cuda.synchronize()
            lat.append(time.perf_counter() - t)
            assert all(g.new_tokens == tokens for g in out), [g.new_tokens for g in out]
        total = sum(lat)
        rows.append(
            {
                "concurrency": c,
                "batches": len(lat),
                "p50_ms": float(np.percentile(np.array(lat) * 1000, 50)),
                "replies_per_s": c * len(lat) / total,
                "tokens_per_s": c * tokens * len(lat) / total,
            }
        )
        print(f"in-process c={c:<3} {rows[-1]}", flush=True)
    return generator.version, rows


def strategies(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics").text
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^thumbloop_replies_total\{strategy="([^"]+)"\} (\S+)$', text, re.M)
    }


def through_server(
    args: argparse.Namespace, bundle_dir: Path, generator: str
) -> list[dict[str, Any]]:
    meta = json.loads((bundle_dir / "bundle.json").read_text(encoding="utf-8"))
    texts = [r["text"].replace("\n", " ") for r in banking_rows(set(meta["intents"]))]
    texts_file = args.out / "generative_messages.txt"
    texts_file.write_text("\n".join(texts), encoding="utf-8")
    env = {
        "THUMBLOOP_DEVICE": args.device,
        "THUMBLOOP_HOME": tempfile.mkdtemp(prefix="bench-home-"),
        "THUMBLOOP_REPLY_STRATEGY": "generative",
        "THUMBLOOP_GENERATOR": generator,
        "THUMBLOOP_GENERATOR_MAX_NEW_TOKENS": str(args.tokens),
        "THUMBLOOP_REQUEST_TIMEOUT_S": "60",
    }
    if args.budget_ms:
        env["THUMBLOOP_GENERATOR_BUDGET_MS"] = str(args.budget_ms)
    if args.max_batch_size:
        env["THUMBLOOP_GENERATOR_MAX_BATCH_SIZE"] = str(args.max_batch_size)
    cmd = [sys.executable, "-m", "thumbloop", "serve", "--model", str(bundle_dir), "--port", "8790"]
    rows = []
    with server(cmd, 8790, env) as url:
        for c in args.concurrency:
            before = strategies(url)
            r: dict[str, Any] = load(url, c, args.seconds, texts_file)
            after = strategies(url)
            counts = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            n = sum(counts.values()) or 1
            r["strategies"] = {k: v / n for k, v in sorted(counts.items()) if v}
            rows.append(r)
            print(f"server     c={c:<3} {r}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="classifier: models:/NAME@ALIAS or a bundle path")
    ap.add_argument("--generator", default="smollm2", help="smollm2 or a causal LM folder")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--budget-ms", type=float, default=None, help="default: the setting's")
    ap.add_argument("--max-batch-size", type=int, default=None, help="server's generation batch")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench/results")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["THUMBLOOP_CPU_THREADS"] = str(args.threads)
    loads = load_times(args.device) if args.generator == "smollm2" else None
    spec = loads["folder"] if loads else args.generator
    version, local = in_process(spec, args.device, args.tokens, args.concurrency, args.seconds)
    try:
        bundle_dir: Path | None = resolve_bundle(args.model)
    except SystemExit as exc:
        print(f"server part skipped: {exc}", file=sys.stderr)
        bundle_dir = None
    try:
        served = through_server(args, bundle_dir, spec) if bundle_dir else []
    finally:
        if loads:  # the converted copy is the whole model in float32: not left behind
            shutil.rmtree(Path(loads["folder"]).parents[1], ignore_errors=True)
    report(args, version, loads, local, served)


def report(
    args: argparse.Namespace,
    version: str,
    loads: dict[str, Any] | None,
    local: list[dict[str, float]],
    served: list[dict[str, Any]],
) -> None:
    threads = torch.get_num_threads() if args.device == "cpu" else None
    table = Table(
        title=f"generative replies: {version} on {args.device} ({os.cpu_count()} cpus, "
        f"{threads} torch threads), {args.tokens}-token replies"
    )
    for col in ("path", "conc.", "p50 ms", "p99 ms", "replies/s", "tokens/s", "generated"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for r in local:
        table.add_row(
            "in-process",
            str(r["concurrency"]),
            f"{r['p50_ms']:.0f}",
            "",
            f"{r['replies_per_s']:.2f}",
            f"{r['tokens_per_s']:.0f}",
            "100 %",
        )
    for row in served:
        share = dict(row["strategies"]).get("generative", 0.0)
        table.add_row(
            "server",
            str(row["concurrency"]),
            f"{row['p50_ms']:.0f}",
            f"{row['p99_ms']:.0f}",
            f"{row['throughput_rps']:.2f}",
            "",
            f"{share:.0%}",
        )
    Console().print(table)
    if loads:
        print(
            f"GGUF conversion {loads['convert_s']:.1f} s; converted folder load "
            f"{loads['folder_load_s']:.2f} s (warm-up included)"
        )
    payload = {
        "device": args.device,
        "cpus": os.cpu_count(),
        "torch_threads": threads,
        "python": platform.python_version(),
        "generator": version,
        "tokens": args.tokens,
        "seconds_per_point": args.seconds,
        "budget_ms": args.budget_ms,
        "load": loads,
        "in_process": local,
        "server": served,
    }
    suffix = f"-{args.threads}t" if args.threads else ""
    suffix += f"-budget{args.budget_ms:.0f}ms" if args.budget_ms else ""
    path = args.out / f"generative-{args.device}{suffix}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
