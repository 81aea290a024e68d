"""Review inbox benchmark: how fast the inbox answers on 100,000 interactions (target: first
page, filter change and group action each ≤ 300 ms on 2 CPU cores).

    python bench/review.py [--interactions 100000] [--repeats 3] [--out bench/results]

Builds a SQLite database of ``--interactions`` interactions (messages drawn from the banking
domain's training set with a long tail of repeats, numbers varied inside copies, about 40 %
voted on, a third of those 👎, a third of the 👎 followed by a user's correction, a tenth
clarified, four model versions, three platforms, 30 days),
indexes it as the inbox does at start, then runs the real app under uvicorn on loopback and
times over HTTP, median of ``--repeats``: the first page (default filters), a filter change
(intent + signal + platform + date range, a different one each time, sent as the form sends it,
redirect followed) and a group action (relabel the top group of the filtered view: the POST, its
transaction and the redirect it answers with; also with the page it redirects to); and the
dashboard (all 30 days; one week of one platform) and one chart's CSV.
Prints a table and writes review.json under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MS = 300.0
PLATFORMS = ("telegram", "slack", "cli")
MODELS = ("thumbloop/1", "thumbloop/2", "thumbloop/3", "thumbloop/4")
T0 = datetime(2026, 2, 1, tzinfo=UTC)


def build(url: str, n: int, seed: int = 0) -> dict[str, Any]:
    """The fixture: ``n`` interactions and their votes, inserted in bulk."""
    from sqlalchemy import insert

    from thumbloop.domain import load_domain
    from thumbloop.identity import hash_id
    from thumbloop.store.db import make_engine, session_scope
    from thumbloop.store.schema import CorrectionRow, InteractionRow, VoteRow

    rng = random.Random(seed)
    domain = load_domain(ROOT / "data/banking")
    base = [(e.text, e.label) for e in domain.train]
    rng.shuffle(base)
    intents = list(domain.intents)
    # a long tail: a few messages sent hundreds of times, most a handful of times or once
    weights = [1.0 / (k + 1) ** 0.9 for k in range(len(base))]
    picks = rng.choices(range(len(base)), weights=weights, k=n)
    users = [hash_id("bench", "telegram", u) for u in range(5_000)]
    rows, votes, corrections = [], [], []
    for k, b in enumerate(picks):
        text, label = base[b]
        if rng.random() < 0.3:
            text = f"{text} (order {rng.randint(1000, 99999)})"
        iid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        at = T0 + timedelta(seconds=rng.randint(0, 30 * 86_400))
        clarify = rng.random() < 0.1
        rows.append(
            {
                "interaction_id": iid,
                "platform": rng.choice(PLATFORMS),
                "user_hash": rng.choice(users),
                "conversation_hash": rng.choice(users),
                "text": text,
                "intent": label if rng.random() < 0.85 else rng.choice(intents),
                "intent_confidence": rng.betavariate(5, 2),
                "sentiment": rng.choice(("negative", "neutral", "positive")),
                "response_id": "oos-1+clarify:card_arrival|change_pin" if clarify else f"{label}-1",
                "reply_text": "Here is what I found about that.",
                "model_version": MODELS[min(3, k * 4 // n)],
                "reply_strategy": "template",
                "created_at": at,
            }
        )
        if rng.random() < 0.4:
            rater, value = rng.choice(users), -1 if rng.random() < 0.33 else 1
            votes.append(
                {
                    "interaction_id": iid,
                    "rater": rater,
                    "value": value,
                    "platform": "telegram",
                    "voted_at": at,
                    "updated_at": at,
                }
            )
            if value < 0 and rng.random() < 0.33:
                kind = rng.choices(("intent", "other", "unhelpful"), (0.7, 0.15, 0.15))[0]
                corrections.append(
                    {
                        "interaction_id": iid,
                        "rater": rater,
                        "kind": kind,
                        "label": label if kind == "intent" else None,
                        "platform": "telegram",
                        "corrected_at": at,
                        "updated_at": at,
                    }
                )
    engine = make_engine(url)
    with session_scope(engine) as s:
        for start in range(0, len(rows), 5_000):
            s.execute(insert(InteractionRow), rows[start : start + 5_000])
        for start in range(0, len(votes), 5_000):
            s.execute(insert(VoteRow), votes[start : start + 5_000])
        if corrections:
            s.execute(insert(CorrectionRow), corrections)
    engine.dispose()
    return {
        "interactions": len(rows),
        "votes": len(votes),
        "corrections": len(corrections),
        "distinct_texts": len(set(picks)),
    }


class Server:
    """The app under uvicorn in a thread, as the integration tests run it."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import httpx

        self.thread.start()
        base = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the review app did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--interactions", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench/results")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import httpx

    from learning.review.app import create_app
    from learning.review.index import sync
    from learning.review.users import set_user
    from thumbloop.settings import Settings
    from thumbloop.store.db import make_engine, upgrade

    home = Path(tempfile.mkdtemp(prefix="bench-review-"))
    settings = Settings(home=home, domain_dir=ROOT / "data/banking", review_sync_interval_s=3600)
    url = settings.effective_database_url
    upgrade(url)
    build_ms, sizes = timed(lambda: build(url, args.interactions))
    engine = make_engine(url)
    index_ms, _ = timed(lambda: sync(engine))  # what the app does at its first start
    resync_ms, _ = timed(lambda: sync(engine))  # and every few seconds after, nothing new
    set_user(home / "review-users", "bench", "bench-password")
    rng = random.Random(1)
    results: dict[str, list[float]] = {
        "first page": [],
        "filter change": [],
        "group action": [],
        "action + next page": [],  # what the reviewer waits for: the POST and the page after
        "dashboard": [],
        "dashboard, a week of one platform": [],
        "chart CSV": [],
    }
    with Server(create_app(settings, engine)) as base, httpx.Client(base_url=base) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)  # type: ignore[union-attr]
        c.post("/login", data={"csrf": token, "name": "bench", "password": "bench-password"})
        c.get("/")  # the first answer of a process also warms its imports and caches
        groups = 0
        for r in range(args.repeats):
            ms, page = timed(lambda: c.get("/"))
            results["first page"].append(ms)
            groups = page.text.count('data-row id="row-')
            day = T0 + timedelta(days=rng.randint(0, 20))
            # as the filter form sends it: every field, so the app redirects to the short URL
            view = {
                "intent": rng.choice(["card_arrival", "exchange_rate", "lost_or_stolen_card"]),
                "model": "",
                "platform": PLATFORMS[r % 3],
                "since": day.date().isoformat(),
                "until": (day + timedelta(days=7)).date().isoformat(),
                "signal": ["downvoted", "low_confidence", "any"][r % 3],
                "sort": "count",
            }
            get = lambda v=view: c.get("/", params=v, follow_redirects=True)  # noqa: E731
            ms, filtered = timed(get)
            assert filtered.status_code == 200 and "data-row" in filtered.text, filtered.url
            results["filter change"].append(ms)
            form = re.search(r'<form class="act".*?</form>', filtered.text, flags=re.S)
            if form is None:  # an empty view: act on the first page's top group instead
                form = re.search(r'<form class="act".*?</form>', page.text, flags=re.S)
            assert form is not None
            hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', form.group(0)))
            hidden = {k: v.replace("&amp;", "&") for k, v in hidden.items()}
            data = hidden | {"action": "label", "label": "card_arrival"}
            ms, answer = timed(lambda d=data: c.post("/actions", data=d))  # type: ignore[misc]
            assert answer.status_code == 303, answer.text
            results["group action"].append(ms)
            then, _ = timed(lambda a=answer: c.get(a.headers["location"]))  # type: ignore[misc]
            results["action + next page"].append(ms + then)
            ms, board = timed(lambda: c.get("/dashboard"))
            assert board.status_code == 200 and board.text.count("data-chart=") == 5
            results["dashboard"].append(ms)
            week = {k: view[k] for k in ("since", "until", "platform")}
            ms, board = timed(lambda w=week: c.get("/dashboard", params=w))  # type: ignore[misc]
            assert board.status_code == 200, board.url
            results["dashboard, a week of one platform"].append(ms)
            ms, table = timed(lambda: c.get("/dashboard/thumbs_up.csv"))
            assert table.status_code == 200 and table.text.count("\n") > 30
            results["chart CSV"].append(ms)
    medians = {k: statistics.median(v) for k, v in results.items()}
    report = {
        "target_ms": TARGET_MS,
        "fixture": sizes | {"groups_on_first_page": groups},
        "build_s": build_ms / 1000,
        "index_s": index_ms / 1000,
        "resync_ms": resync_ms,
        "median_ms": medians,
        "runs_ms": results,
        "repeats": args.repeats,
        "load_average_1m": os.getloadavg()[0],  # other work on the machine inflates the times
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "database": "sqlite",
    }
    print(
        f"\n{sizes['interactions']:,} interactions, {sizes['votes']:,} votes; "
        f"index {index_ms / 1000:.1f} s at first start, re-sync {resync_ms:.0f} ms"
    )
    print(f"{'':34}{'median ms':>10}{'runs':>22}{'target':>9}")
    for k, v in results.items():
        ok = "ok" if medians[k] <= TARGET_MS else "MISSED"
        runs = " ".join(f"{x:.0f}" for x in v)
        print(f"{k:34}{medians[k]:>10.0f}{runs:>22}{ok:>9}")
    out = args.out / "review.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
