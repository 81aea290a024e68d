"""Fuzz the HTTP endpoints at scale: no answer may be a 500, and memory must not grow.

    python bench/fuzz.py [--cases 3000] [--seed 0] [--warm-up 200] [--out bench/results]

Starts serving (a tiny model), the Slack bot in HTTP mode and the Telegram bot in webhook mode on
loopback, in a child process (the bots answer through that serving and local fake Slack and
Telegram APIs: ``tests/fuzz/harness.py``), then sends each endpoint ``--cases`` requests made by
hypothesis (serving's ``/v1/predict`` and ``/v1/answer``, the signed Slack Events API endpoint,
the Telegram webhook with its secret header) and one 1 MB chunked body. Counts every status;
a 500, or a request the server dropped, is a failure. Memory: the servers' process's resident
set after ``--warm-up`` requests per endpoint, after each endpoint's run and at the end (the
fuzzer runs in this process, so hypothesis's own memory is not counted). Prints a table and
writes fuzz.json under --out; exits 1 on any failure or on growth of 50 MB or more.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAX_GROWTH_MB = 50.0


def rss_mb(pid: int) -> float:
    import psutil

    gc.collect()
    return psutil.Process(pid).memory_info().rss / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000, help="requests per endpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", type=int, default=200, help="requests per endpoint first")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    # the bots log every failed platform call of a made-up chat: keep the table readable
    logging.basicConfig(level=logging.CRITICAL)

    import httpx

    from tests.fuzz.harness import Tally, fuzz, send_chunked_megabyte, served_elsewhere

    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        served_elsewhere(Path(tmp)) as (endpoints, pid),
        httpx.Client(timeout=60) as client,
    ):
        tallies = {t.name: Tally() for t in endpoints}
        for target in endpoints:  # warm-up: first model calls, caches, pools
            fuzz(target, args.warm_up, client, seed=args.seed + 1000)
        before = rss_mb(pid)
        for target in endpoints:
            t0 = time.perf_counter()
            tally = fuzz(target, args.cases, client, tallies[target.name], seed=args.seed)
            megabyte = send_chunked_megabyte(client, target, tally)
            rows.append(
                {
                    "endpoint": target.name,
                    "cases": tally.cases,
                    "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
                    "failures": len(tally.failures),
                    "failure_examples": [
                        {"request": repr(r)[:500], "why": why} for r, why in tally.failures[:5]
                    ],
                    "chunked_1mb_status": megabyte,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "servers_rss_mb_after": round(rss_mb(pid), 1),
                }
            )
        after = rss_mb(pid)
    report = {
        "bench": "fuzz",
        "cases_per_endpoint": args.cases,
        "seed": args.seed,
        "endpoints": rows,
        "total_cases": sum(r["cases"] for r in rows),
        "total_failures": sum(r["failures"] for r in rows),
        "memory_of": "the servers' process (serving, both bots, the fake platform APIs)",
        "rss_mb_after_warm_up": round(before, 1),
        "rss_mb_at_end": round(after, 1),
        "rss_growth_mb": round(after - before, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "hypothesis": version("hypothesis"),
            "slack_bolt": version("slack_bolt"),
            "python_telegram_bot": version("python-telegram-bot"),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"{'endpoint':<22} {'cases':>6} {'500s':>5} {'1 MB chunked':>12}  statuses")
    for r in rows:
        print(
            f"{r['endpoint']:<22} {r['cases']:>6} {r['failures']:>5} "
            f"{r['chunked_1mb_status']!s:>12}  {r['statuses']}"
        )
    print(
        f"total {report['total_cases']} cases, {report['total_failures']} failures; memory "
        f"{report['rss_mb_after_warm_up']} -> {report['rss_mb_at_end']} MB "
        f"({report['rss_growth_mb']:+} MB) in {report['seconds']} s -> {args.out / 'fuzz.json'}"
    )
    ok = report["total_failures"] == 0 and report["rss_growth_mb"] < MAX_GROWTH_MB
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
