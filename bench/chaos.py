"""Scripted faults against the real stack, held against an oracle of the expected state.

    python -m bench.chaos                   # the short versions (what CI runs), both backends
    python -m bench.chaos --full            # the issue's sizes (2,000 votes / 20 kills, ...)
    python -m bench.chaos --only a,d --backend production --outages 30,180

(g) drives a real Telegram bot process (``bench/chaos_bot.py``) and so needs ``--model`` too.
Backends: ``embedded`` (SQLite database + SQLite broker, no server), ``production``
(PostgreSQL + Redis as broker and for posteriors) and ``rabbitmq`` (the same, RabbitMQ as
broker). Scenarios (e), (f) and (h) run serving alone (``--model``; ``bench/chaos_serving.py``,
``bench/chaos_alias.py``). Every server a fault touches is a private one started here on a free
port (``bench/chaos_servers.py``); the machine's shared services are never stopped or paused.
Results go to ``bench/results/chaos.json`` (rows replaced by scenario, backend and size) and
the table in ``docs/chaos.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chaos_alias import alias_moves
from bench.chaos_bot import bot_outage
from bench.chaos_scenarios import (
    Result,
    duplicate_deliveries,
    postgres_outage,
    redis_pauses,
    worker_kills,
)
from bench.chaos_servers import (
    PrivatePostgres,
    PrivateRedis,
    private_postgres,
    private_redis,
    private_vhost,
)
from bench.chaos_serving import model_process_faults, overload
from bench.chaos_stack import ROOT, Backend, embedded, production

RESULTS = ROOT / "bench" / "results" / "chaos.json"
DOC = ROOT / "docs" / "chaos.md"
BEGIN, END = "<!-- CHAOS_TABLE_BEGIN -->", "<!-- CHAOS_TABLE_END -->"

SHORT: dict[str, dict[str, Any]] = {
    "a": {"n_votes": 200, "n_kills": 3},
    "b": {"n_votes": 50, "workers": 2},
    "c": {"n_votes": 100, "pauses": 3},
    "d": {"outages": [10.0], "read_only_s": 10.0},
    "e": {"kills": 3, "every_s": 4.0, "stop_s": 6.0, "hang_timeout_s": 2.0},
    "f": {"seconds": 10.0, "factor": 3.0},
    "g": {"n_updates": 150, "outage_s": 15.0, "kills": 2, "users": 30},
    "h": {"every_s": 3.0, "outage_s": 3.0},
}
FULL: dict[str, dict[str, Any]] = {
    "a": {"n_votes": 2000, "n_kills": 20},
    "b": {"n_votes": 500, "workers": 4},
    "c": {"n_votes": 500, "pauses": 10},
    "d": {"outages": [30.0, 180.0, 600.0], "read_only_s": 60.0},
    # every 10 s for two minutes, one stopped 30 s; hung after 5 s (the default, 60 s, is for a
    # full batch on a slow CPU: a 30 s stop would end before it)
    "e": {"kills": 12, "every_s": 10.0, "stop_s": 30.0, "hang_timeout_s": 5.0},
    "f": {"seconds": 60.0, "factor": 3.0},
    "g": {"n_updates": 5000, "outage_s": 600.0, "kills": 2, "users": 100},
    "h": {"every_s": 5.0, "outage_s": 10.0},
}


@contextmanager
def stack(kind: str, root: Path) -> Iterator[tuple[Backend, PrivatePostgres | None, Any]]:
    """A fresh backend for one scenario: its own home, database and (production) servers."""
    home = Path(tempfile.mkdtemp(prefix=f"chaos-{kind}-", dir=root))
    if kind == "embedded":
        yield embedded(home), None, None
        return
    with private_postgres() as pg, private_redis() as rd:
        if kind == "rabbitmq":  # the broker in a throwaway vhost of the machine's RabbitMQ
            with private_vhost() as mq:
                yield production(home, pg.url, rd.url, mq), pg, rd
        else:
            yield production(home, pg.url, rd.url), pg, rd


Plan = Callable[[Backend, PrivatePostgres | None, PrivateRedis | None], Result]


def plan(name: str, size: dict[str, Any], model: str | None = None) -> list[Plan]:
    """The runs of one scenario at one size (``model``: the bundle (g)'s serving runs)."""

    def a(b: Backend, pg: PrivatePostgres | None, rd: PrivateRedis | None) -> Result:
        return worker_kills(b, size["n_votes"], size["n_kills"])

    def b_(b: Backend, pg: PrivatePostgres | None, rd: PrivateRedis | None) -> Result:
        return duplicate_deliveries(b, size["n_votes"], 3, size["workers"])

    def c(b: Backend, pg: PrivatePostgres | None, rd: PrivateRedis | None) -> Result:
        assert rd is not None
        return redis_pauses(b, rd, size["n_votes"], size["pauses"])

    def d(seconds: float, mode: str) -> Plan:
        def one(b: Backend, pg: PrivatePostgres | None, rd: PrivateRedis | None) -> Result:
            assert pg is not None
            return postgres_outage(b, pg, seconds, mode)

        return one

    if name == "a":
        return [a]
    if name == "b":
        return [b_]
    if name == "c":
        return [c]
    if name == "d":
        return [d(s, "stopped") for s in size["outages"]] + [d(size["read_only_s"], "read-only")]
    if name == "g":

        def g(b: Backend, pg: PrivatePostgres | None, rd: PrivateRedis | None) -> Result:
            from bench.harness import resolve_bundle  # torch: only where a model is served

            return bot_outage(b, resolve_bundle(model), **size)

        return [g]
    raise SystemExit(f"unknown scenario {name!r} (this suite has a, b, c, d, g)")


def run(
    scenarios: list[str],
    backends: list[str],
    sizes: dict[str, dict[str, Any]],
    root: Path,
    model: str | None = None,
) -> Iterator[Result]:
    for kind in backends:
        for name in (s for s in scenarios if s in "abcdg"):
            if name in ("c", "d") and kind == "embedded":
                continue  # no server to pause or stop: SQLite is a file in the process
            for one in plan(name, sizes[name], model):
                with stack(kind, root) as (backend, pg, rd):
                    result = one(backend, pg, rd)
                verdict = "PASS" if result.passed else "FAIL"
                print(
                    f"[{result.scenario}] {result.backend:10} {verdict}  {result.size}: "
                    f"{result.measured} ({result.seconds:.0f} s)",
                    flush=True,
                )
                yield result


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def save(results: list[Result], mode: str, path: Path = RESULTS) -> list[dict[str, Any]]:
    """Merge into the results file: a row of the same scenario, backend and size is replaced."""
    rows: list[dict[str, Any]] = []
    if path.exists():
        rows = json.loads(path.read_text()).get("rows", [])
    stamp = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "mode": mode,
        "machine": f"{platform.machine()}, {platform.node() and 'shared dev box'}",
    }
    fresh = [r.row() | stamp for r in results]
    keys = {(r["scenario"], r["backend"], r["size"]) for r in fresh}
    rows = [r for r in rows if (r["scenario"], r["backend"], r["size"]) not in keys] + fresh
    rows.sort(key=lambda r: (r["scenario"], r["backend"], r["mode"], r["size"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | backend | ran | pass figure | measured | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        verdict = "**pass**" if r["passed"] else "**FAIL**"
        lines.append(
            f"| ({r['scenario']}) {r['title']} | {r['backend']} | {r['size']} ({r['mode']}, "
            f"{r['seconds']:.0f} s, {r['at'][:10]}) | {r['pass_figure']} | {r['measured']} "
            f"| {verdict} |"
        )
    return "\n".join(lines)


def write_doc(rows: list[dict[str, Any]], path: Path = DOC) -> None:
    text = path.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{table(rows)}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (long)")
    parser.add_argument("--only", default="a,b,c,d,e,f,g,h", help="scenarios, e.g. a,c")
    parser.add_argument(
        "--backend",
        choices=["embedded", "production", "rabbitmq", "both", "all"],
        default="both",
        help="production: PostgreSQL + Redis as broker (compose's layout); rabbitmq: the same "
        "with RabbitMQ as broker; both: embedded and production; all: the three",
    )
    parser.add_argument(
        "--outages", help="PostgreSQL stops in seconds for (d), e.g. 30,180 (default by mode)"
    )
    parser.add_argument(
        "--model",
        help="(e), (f), (g), (h): the bundle serving runs (a path or models:/…; default the "
        "champion of THUMBLOOP_HOME)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    sizes = {k: dict(v) for k, v in (FULL if args.full else SHORT).items()}
    if args.outages:
        sizes["d"]["outages"] = [float(s) for s in args.outages.split(",")]
    groups = {"both": ["embedded", "production"], "all": ["embedded", "production", "rabbitmq"]}
    backends = groups.get(args.backend, [args.backend])
    scenarios = [s.strip() for s in args.only.split(",") if s.strip()]
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="thumbloop-chaos-") as root:
        results = list(run(scenarios, backends, sizes, Path(root), args.model))
    # serving alone: no backend to vary
    serving: dict[str, Callable[..., Result]] = {
        "e": model_process_faults,
        "f": overload,
        "h": alias_moves,
    }
    for name in (s for s in scenarios if s in serving):
        from bench.harness import resolve_bundle  # torch: only where a model is served

        results.append(serving[name](resolve_bundle(args.model), **sizes[name]))
        print(f"[{name}] {results[-1].backend:10} {results[-1].measured}", flush=True)
    passed = sum(r.passed for r in results)
    print(f"{passed}/{len(results)} passed in {time.monotonic() - began:.0f} s")
    if not args.no_save:
        rows = save(results, "full" if args.full else "short")
        write_doc(rows)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
