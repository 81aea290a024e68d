"""Retrain benchmark: how long one retrain from thumbs takes on N votes (target: 10,000 in 5 min
on 2 CPU cores).

    python bench/retrain.py [--domain data/banking] [--seed-shots 10] [--votes 10000]
                            [--noise 0.1] [--device cpu|cuda] [--out bench/results]

Seed-trains on ``--seed-shots`` examples per intent and registers it as champion (as the
simulator does), predicts ``--votes`` unseen training messages with the serving code, lets
simulated raters vote on them, stores interactions and votes in the database directly (the queue is
not what is measured here; `thumbloop simulate` covers it), then times `run_retrain`: collect the
votes, evaluate the champion, cache + fine-tune, calibrate, evaluate the candidate, gate, save and
register in MLflow. Prints a table and writes retrain-<device>.json under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domain", type=Path, default=ROOT / "data/banking")
    ap.add_argument("--seed-shots", type=int, default=10)
    ap.add_argument("--votes", type=int, default=10_000)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench/results")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch

    from learning.retrain.run import run_retrain
    from learning.seed.config import TrainConfig
    from learning.seed.run import train_and_register
    from learning.simulate.data import few_shot_domain
    from learning.simulate.run import SimConfig, round_messages
    from serving.engine import load_active
    from thumbloop.domain import load_domain
    from thumbloop.model.device import cpu_has_native_bf16, cpu_model, resolve_device
    from thumbloop.settings import Settings
    from thumbloop.store.db import (
        make_engine,
        session_scope,
        upgrade,
        upsert_correction,
        upsert_interaction,
        upsert_vote,
    )

    home = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    full = load_domain(args.domain)
    seed_dir, pool = few_shot_domain(full, args.seed_shots, home / "seed-domain", 0)
    if len(pool) < args.votes:
        raise SystemExit(f"only {len(pool)} unseen training messages for {args.votes} votes")
    settings = Settings(
        home=home / "home", device=args.device, model_name="bench-retrain", domain_dir=seed_dir
    )
    settings.ensure_home()
    upgrade(settings.effective_database_url)
    t = time.perf_counter()
    seed_cfg = TrainConfig(max_sentiment_examples=4000, device=args.device)
    train_and_register(settings, seed_dir, seed_cfg, progress=False)
    seed_s = time.perf_counter() - t
    device = resolve_device(args.device, settings.compute.cpu_threads)
    active = load_active(
        f"models:/{settings.model_name}@champion",
        settings.effective_tracking_uri,
        settings.home / "models",
        device,
        settings.serving.max_seq_len,
    )
    cfg = SimConfig(noise=args.noise)
    done = round_messages(settings, active, pool[: args.votes], cfg, random.Random(0))
    engine = make_engine(settings.effective_database_url)
    with session_scope(engine) as s:
        for item, vote in zip(done.items, done.votes, strict=True):
            upsert_interaction(s, item)
            upsert_vote(s, vote)
        for fix in done.corrections:  # the follow-up picks the simulated raters made
            upsert_correction(s, fix)
    t = time.perf_counter()
    result = run_retrain(settings, engine, progress=True)
    wall = time.perf_counter() - t
    engine.dispose()
    metrics = result.metrics
    row = {
        "votes": args.votes,
        "seed_shots": args.seed_shots,
        "seed_seconds": round(seed_s, 1),
        "retrain_seconds": round(wall, 1),
        "tuned_layers": metrics.get("tuned_layers"),
        "fine_tune_steps": metrics.get("fine_tune_steps"),
        "fine_tune_planned_steps": metrics.get("fine_tune_planned_steps"),
        "replay_examples": metrics.get("replay_examples"),
        "gate": result.gate,
        "champion_golden_intent_accuracy": metrics.get("champion_golden_intent_accuracy"),
        "candidate_golden_intent_accuracy": metrics.get("candidate_golden_intent_accuracy"),
        "device": args.device,
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"one retrain from thumbs ({args.device}, {os.cpu_count()} cpus)")
    for key in row:
        table.add_column(key.replace("_", " "))
    table.add_row(*(f"{v:.4f}" if isinstance(v, float) and v < 1 else str(v) for v in row.values()))
    Console().print(table)
    (args.out / f"retrain-{args.device}.json").write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
