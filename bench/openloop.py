"""Open-loop HTTP load: requests at a fixed rate whatever the server answers, as users arrive.

    python -m bench.openloop --url http://127.0.0.1:8000 --rate 900 --seconds 10 --texts FILE

A closed loop (``bench/loadgen.py``) slows down with the server, so it cannot overload it; this
sends request i at ``i / rate`` seconds on keep-alive connections (a new one when all are busy,
up to ``--max-connections``; past that a request is counted as unsent, the client's own limit).
After the last send it waits for the answers still due (``--drain``). Runs in its own process
and prints one JSON object: statuses, transport errors, unsent, the rate reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from bench.loadgen import _read_response


async def open_loop(
    url: str, rate: float, seconds: float, texts: list[str], max_connections: int, drain: float
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    bodies = [
        json.dumps({"text": t, "conversation_id": f"o-{i}"}).encode() for i, t in enumerate(texts)
    ]
    heads = [
        f"POST /v1/predict HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(b)}\r\n\r\n".encode()
        for b in bodies
    ]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    open_count = 0
    statuses: Counter[int] = Counter()
    errors = unsent = stale = 0
    kinds: Counter[str] = Counter()  # transport errors by kind
    pending: set[asyncio.Task[None]] = set()

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        nonlocal open_count
        open_count += 1
        try:
            return await asyncio.open_connection(host, port)
        except OSError as exc:
            open_count -= 1
            kinds[f"connect: {type(exc).__name__}"] += 1
            return None

    async def one(i: int) -> None:
        nonlocal open_count, errors, stale
        reused = bool(idle)
        conn = idle.pop() if idle else await connect()
        k = i % len(bodies)
        while conn is not None:
            reader, writer = conn
            try:
                writer.write(heads[k] + bodies[k])
                statuses[await _read_response(reader)] += 1
                idle.append(conn)
                return
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                open_count -= 1
                writer.close()
                nothing = isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
                if reused and nothing:
                    # the server closed this idle keep-alive connection as we reused it: send
                    # again on a new one, as HTTP client libraries do (counted, not an error)
                    stale += 1
                    reused, conn = False, await connect()
                    continue
                kinds[type(exc).__name__] += 1
                break
        errors += 1

    began_at = time.time()  # wall clock: other processes time their probes against it
    begin = time.perf_counter()
    i = 0
    while (now := time.perf_counter() - begin) < seconds:
        due = int(now * rate)
        while i < due:
            if open_count - len(idle) >= max_connections:
                unsent += 1
            else:
                task = asyncio.create_task(one(i))
                pending.add(task)
                task.add_done_callback(pending.discard)
            i += 1
        await asyncio.sleep(0.002)
    sent_for = time.perf_counter() - begin
    if pending:
        await asyncio.wait(pending, timeout=drain)
    for _, writer in idle:
        writer.close()
    sent = i - unsent
    return {
        "began_at": began_at,
        "sent_for_s": sent_for,
        "rate_asked": rate,
        "rate_sent": sent / sent_for,
        "sent": sent,
        "unsent": unsent,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "transport_errors": errors,
        "transport_error_kinds": dict(kinds),
        "stale_connections_resent": stale,
        "unanswered": sent - sum(statuses.values()) - errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--texts", type=Path, required=True, help="one message per line")
    ap.add_argument("--max-connections", type=int, default=2048)
    ap.add_argument("--drain", type=float, default=30.0, help="seconds to wait for late answers")
    args = ap.parse_args()
    texts = [t for t in args.texts.read_text(encoding="utf-8").splitlines() if t.strip()]
    result = asyncio.run(
        open_loop(args.url, args.rate, args.seconds, texts, args.max_connections, args.drain)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
