"""What follow-up picks are worth (issue #21): one retrain from the same voted messages, read as
thumbs only or as thumbs + follow-ups, against the ceiling of asking.

    python bench/followups.py [--domain data/banking] [--seeds 0 1 2] [--votes 5000]
                              [--variants thumbs-0 thumbs-0.2 follow-ups oracle] [--out ...]

Per seed: the simulator's 10-shot seed model (``thumbloop simulate --seed-shots 10``), the same
``--votes`` unseen training messages predicted by it once; then, per variant, a copy of that
home, the simulated raters' votes (and follow-ups) written straight into its database (the queue
is not what is measured; ``thumbloop simulate`` covers it), one ``run_retrain``, a promotion when
the gate passed, and the champion's accuracy on the domain's validation split. Variants:

- ``thumbs-0``: thumbs only, no 👎 on right answers (``--unhelpful-rate 0``);
- ``thumbs-0.2``: thumbs only, a fifth of the 👎 on right answers that did not help;
- ``follow-ups``: as ``thumbs-0.2``, and raters answer the follow-up half the time
  (``--follow-up-rate 0.5``): the true intent when it is offered, else "something else";
- ``oracle``: the ceiling of asking at that rate: half the wrong answers' 👎 come with their
  true label, as if the follow-up always offered it (no bot can offer all 77 intents in a tap);
- ``thumbs-0-no-down``, ``thumbs-0.2-no-down`` (not run by default): thumbs only with the
  learner ignoring bare 👎, so the difference between them is what the 👍 the unhelpful 👎 took
  away cost, whatever weight a 👎 gets.

Prints a table (median over the seeds) and writes followups.json under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "thumbs-0": (0.0, 0.0),  # (follow-up rate, unhelpful rate)
    "thumbs-0.2": (0.0, 0.2),
    "follow-ups": (0.5, 0.2),
    "oracle": (0.0, 0.2),  # its labels are added below, not by the raters
    # the learner told to ignore bare 👎 (weight 0): what unhelpful 👎 cost once no weighting
    # of 👎 can matter, i.e. the 👍 they took away (not run by default)
    "thumbs-0-no-down": (0.0, 0.0),
    "thumbs-0.2-no-down": (0.0, 0.2),
}
DEFAULT = ["thumbs-0", "thumbs-0.2", "follow-ups", "oracle"]
DEFAULT_RATIO: list[float] = []  # the learner's own, kept at the first variant
ORACLE_RATE = 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domain", type=Path, default=ROOT / "data/banking")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--votes", type=int, default=5000)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--variants", nargs="+", default=DEFAULT, choices=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench/results")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        runs += one_seed(args, seed)
        write(args, runs)  # after every seed: a cut-off run keeps what it measured


def one_seed(args: argparse.Namespace, seed: int) -> list[dict[str, Any]]:
    from learning.seed.config import TrainConfig
    from learning.seed.run import train_and_register
    from learning.simulate.data import few_shot_domain
    from learning.simulate.run import SimConfig, _evaluate
    from thumbloop.domain import load_domain
    from thumbloop.settings import Settings
    from thumbloop.store.db import upgrade

    work = Path(tempfile.mkdtemp(prefix=f"bench-followups-{seed}-"))
    full = load_domain(args.domain)
    seed_dir, pool = few_shot_domain(full, 10, work / "seed-domain", seed)
    if len(pool) < args.votes:
        raise SystemExit(f"only {len(pool)} unseen training messages for {args.votes} votes")
    base = Settings(
        home=work / "seed", device="cpu", model_name="bench-followups", domain_dir=seed_dir
    )
    base.ensure_home()
    upgrade(base.effective_database_url)
    cfg = SimConfig(seed=seed)
    t = time.perf_counter()
    train_and_register(
        base,
        seed_dir,
        TrainConfig(max_sentiment_examples=cfg.seed_sentiment_examples, device="cpu", seed=seed),
        progress=False,
    )
    seed_domain = load_domain(seed_dir)
    _, seed_acc = _evaluate(base, seed_domain)
    print(f"seed {seed}: 10-shot accuracy {seed_acc:.4f} ({time.perf_counter() - t:.0f} s)")
    out = []
    for name in args.variants:
        home = work / name
        shutil.copytree(base.home, home)  # the seed's registry and an empty store, per variant
        settings = base.replace(home=home, database_url=None, mlflow_tracking_uri=None)
        row = variant(settings, name, pool[: args.votes], seed, args.noise)
        row |= {"seed": seed, "seed_accuracy": round(seed_acc, 4)}
        _, row["accuracy"] = _evaluate(settings, seed_domain)
        print(f"  {name}: accuracy {row['accuracy']:.4f} (gate {row['gate']})")
        out.append(row)
    shutil.rmtree(work, ignore_errors=True)
    return out


def variant(settings: Any, name: str, batch: list[Any], seed: int, noise: float) -> dict[str, Any]:
    import learning.retrain.signals as signals
    from learning.registry.promotion import promote
    from learning.retrain.run import run_retrain
    from learning.simulate.run import SimConfig, _champion, round_messages
    from thumbloop.contracts import Correction
    from thumbloop.store.db import (
        make_engine,
        session_scope,
        upsert_correction,
        upsert_interaction,
        upsert_vote,
    )

    follow_up, unhelpful = VARIANTS[name]
    # doubt() reads the ratio when called: 0 makes every bare 👎 weigh nothing
    if not DEFAULT_RATIO:
        DEFAULT_RATIO.append(signals.DOWN_LIKELIHOOD_RATIO)
    signals.DOWN_LIKELIHOOD_RATIO = 0.0 if name.endswith("no-down") else DEFAULT_RATIO[0]
    cfg = SimConfig(seed=seed, noise=noise, follow_up_rate=follow_up, unhelpful_rate=unhelpful)
    # the same rng per seed: every variant rates the same messages with the same draws
    done = round_messages(settings, _champion(settings), batch, cfg, random.Random(seed))
    if name == "oracle":
        pick = random.Random(seed + 1)
        for ex, item, vote in zip(batch, done.items, done.votes, strict=True):
            if vote.value < 0 and item.intent != ex.label and pick.random() < ORACLE_RATE:
                done.corrections.append(
                    Correction(
                        interaction_id=item.interaction_id,
                        rater=vote.rater,
                        kind="intent",
                        label=ex.label,
                        platform="simulator",
                        at=vote.at + timedelta(milliseconds=1),  # as a user answers: just after
                    )
                )
    engine = make_engine(settings.effective_database_url)
    t = time.perf_counter()
    fixes = {c.interaction_id: c for c in done.corrections}
    with session_scope(engine) as s:
        # each follow-up stored right after its vote: retrains order by arrival, and stored at
        # the end every one would fall in the newest, held-back share (none trained on)
        for item, vote in zip(done.items, done.votes, strict=True):
            upsert_interaction(s, item)
            upsert_vote(s, vote)
            if item.interaction_id in fixes:
                upsert_correction(s, fixes[item.interaction_id])
    result = run_retrain(settings, engine)
    engine.dispose()
    if result.passed and result.version is not None:
        promote(settings, result.version, who="bench")
    m = result.metrics
    return {
        "variant": name,
        "follow_up_rate": follow_up,
        "unhelpful_rate": unhelpful,
        "gate": result.gate,
        "counts": done.counts(),
        "pick_examples": m.get("pick_examples"),
        "confirmed_flips": m.get("confirmed_flips"),
        "seconds": round(time.perf_counter() - t, 1),
    }


def write(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    by: dict[str, list[float]] = {}
    for r in runs:
        by.setdefault(r["variant"], []).append(r["accuracy"])
    medians = {k: round(statistics.median(v), 4) for k, v in by.items()}
    table = Table(title=f"one retrain on {args.votes} voted messages, seeds {args.seeds}")
    for col in ("variant", "accuracy per seed", "median"):
        table.add_column(col)
    for k, v in by.items():
        table.add_row(k, " ".join(f"{a:.4f}" for a in v), f"{medians[k]:.4f}")
    Console().print(table)
    report = {
        "issue": 21,
        "domain": str(args.domain.relative_to(ROOT) if args.domain.is_relative_to(ROOT) else ""),
        "votes": args.votes,
        "noise": args.noise,
        "median_accuracy": medians,
        "runs": runs,
        "cpus": os.cpu_count(),
    }
    name = "followups.json" if set(by) <= set(DEFAULT) else "followups-extra.json"
    (args.out / name).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
