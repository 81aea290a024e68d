"""Closed-loop HTTP load: C clients, each sends its next request when the last one returns.

    python bench/loadgen.py --url http://127.0.0.1:8000 --concurrency 32 --seconds 8 --texts FILE

Runs in its own process (so the load does not share the server's interpreter) and prints one
JSON object: requests, errors, throughput, latency percentiles (ms) and the CPU seconds the load
generator itself used (on a machine with few cores it competes with the server for them).

``--client raw`` (default) speaks HTTP/1.1 keep-alive over asyncio streams with pre-encoded
requests, so the client takes as little of the cores' time from the server as it can.
``--client aiohttp`` is a full HTTP client library, far costlier per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import numpy as np

Send = Callable[[int, int], Awaitable[bool]]  # (client, request number) -> ok


def _requests(url: str, texts: list[str], concurrency: int) -> list[list[bytes]]:
    host = urlsplit(url).netloc
    out: list[list[bytes]] = []
    for k in range(concurrency):
        mine = []
        for text in texts[k::concurrency] or texts[:1]:
            body = json.dumps({"text": text, "conversation_id": f"bench-{k}"}).encode()
            head = (
                f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            mine.append(head + body)
        out.append(mine)
    return out


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def run_raw(
    url: str, concurrency: int, seconds: float, warmup: float, texts: list[str]
) -> dict[str, float]:
    parts = urlsplit(url)
    requests = _requests(url, texts, concurrency)
    streams = [
        await asyncio.open_connection(parts.hostname, parts.port or 80) for _ in range(concurrency)
    ]

    async def send(k: int, i: int) -> bool:
        reader, writer = streams[k]
        writer.write(requests[k][i % len(requests[k])])
        return await _read_response(reader) == 200

    try:
        return await _closed_loop(send, concurrency, seconds, warmup)
    finally:
        for _, writer in streams:
            writer.close()


async def _closed_loop(
    send: Send, concurrency: int, seconds: float, warmup: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    t_measure = time.perf_counter() + warmup
    t_end = t_measure + seconds
    cpu0 = 0.0

    async def client(k: int) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < t_end:
            sent = time.perf_counter()
            try:
                ok = await send(k, i)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
            i += 1
            done = time.perf_counter()
            if sent >= t_measure and done <= t_end:
                if ok:
                    latencies.append(done - sent)
                else:
                    errors += 1

    async def mark() -> None:
        nonlocal cpu0
        await asyncio.sleep(max(0.0, t_measure - time.perf_counter()))
        cpu0 = _cpu_seconds()

    await asyncio.gather(mark(), *(client(k) for k in range(concurrency)))
    cpu = _cpu_seconds() - cpu0
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": len(latencies) / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "client_cpu_share": cpu / seconds,  # of one core, while measuring (plus the tail)
    }


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(
    url: str, concurrency: int, seconds: float, warmup: float, texts: list[str]
) -> dict[str, float]:
    # aiohttp, not httpx: httpx's pool costs a core by itself at high concurrency here
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:

        async def send(k: int, i: int) -> bool:
            body = {"text": texts[(k + i * concurrency) % len(texts)], "conversation_id": f"b-{k}"}
            try:
                async with http.post("/v1/predict", json=body) as r:
                    await r.read()
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        return await _closed_loop(send, concurrency, seconds, warmup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--texts", type=Path, required=True, help="one message per line")
    ap.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    args = ap.parse_args()
    texts = [t for t in args.texts.read_text(encoding="utf-8").splitlines() if t.strip()]
    runner = run_raw if args.client == "raw" else run
    try:  # optional: the faster event loop, where it is installed
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(runner(args.url, args.concurrency, args.seconds, args.warmup, texts))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
