"""Closed-loop HTTP load: C clients, each sends its next request when the last one returns.

    python bench/loadgen.py --url http://127.0.0.1:8000 --concurrency 32 --seconds 8 --texts FILE

Runs in its own process (so the load does not share the server's interpreter) and prints one
JSON object: requests, errors, throughput and latency percentiles (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiohttp
import numpy as np


async def run(
    url: str, concurrency: int, seconds: float, warmup: float, texts: list[str]
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    # aiohttp, not httpx: httpx's pool costs a core by itself at high concurrency here, and the
    # load generator must not be what is measured
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:
        t_start = time.perf_counter()
        t_measure = t_start + warmup
        t_end = t_measure + seconds

        async def client(k: int) -> None:
            nonlocal errors
            i = k
            while True:
                now = time.perf_counter()
                if now >= t_end:
                    return
                body = {"text": texts[i % len(texts)], "conversation_id": f"bench-{k}"}
                i += concurrency
                sent = time.perf_counter()
                try:
                    async with http.post("/v1/predict", json=body) as r:
                        await r.read()
                        ok = r.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                done = time.perf_counter()
                if sent >= t_measure and done <= t_end:
                    if ok:
                        latencies.append(done - sent)
                    else:
                        errors += 1

        await asyncio.gather(*(client(k) for k in range(concurrency)))
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": len(latencies) / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--texts", type=Path, required=True, help="one message per line")
    args = ap.parse_args()
    texts = [t for t in args.texts.read_text(encoding="utf-8").splitlines() if t.strip()]
    result = asyncio.run(run(args.url, args.concurrency, args.seconds, args.warmup, texts))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
