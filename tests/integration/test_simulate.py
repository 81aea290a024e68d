"""A small simulation through the real loop: seed on 3 shots, two rounds of votes through a
real Celery worker (embedded SQLite broker), retrain, gate, promote; accuracy goes up."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest

from learning.simulate import SimConfig, simulate
from thumbloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INTENTS = [
    "card_arrival",
    "change_pin",
    "exchange_rate",
    "lost_or_stolen_card",
    "top_up_failed",
    "transfer_timing",
    "activate_my_card",
    "greeting",
]


def _sim_domain(out: Path) -> Path:
    rows = [
        json.loads(x) for x in (ROOT / "data/banking/intents/train.jsonl").read_text().splitlines()
    ]
    val = [
        json.loads(x)
        for x in (ROOT / "data/banking/intents/validation.jsonl").read_text().splitlines()
    ]
    by: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        if r["label"] in INTENTS and len(by[r["label"]]) < 45:
            by[r["label"]].append(r)
    (out / "intents").mkdir(parents=True)
    (out / "intents/train.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for v in by.values() for r in v)
    )
    keep = [r for r in val if r["label"] in INTENTS]
    (out / "intents/validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    table = json.loads((ROOT / "data/banking/responses.json").read_text())
    (out / "responses.json").write_text(
        json.dumps(
            {
                "version": 1,
                "responses": {k: v for k, v in table["responses"].items() if k in INTENTS},
            }
        )
    )
    sent = [json.loads(x) for x in (ROOT / "data/sentiment/train.jsonl").read_text().splitlines()]
    random.Random(0).shuffle(sent)
    (out / "sentiment").mkdir()
    (out / "sentiment/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sent[:240]))
    sval = [
        json.loads(x) for x in (ROOT / "data/sentiment/validation.jsonl").read_text().splitlines()
    ][:150]
    (out / "sentiment/validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sval))
    (out / "domain.json").write_text(
        json.dumps({"name": "sim8", "out_of_scope": "out_of_scope", "sentiment": "sentiment"})
    )
    return out


@pytest.mark.slow
def test_small_simulation_improves_accuracy(tmp_path: Path) -> None:
    domain = _sim_domain(tmp_path / "domain")
    base = Settings(home=tmp_path / "unused", device="cpu", gate_tolerance=0.05)
    cfg = SimConfig(
        seed_shots=3, rounds=2, votes_per_round=130, noise=0.05, honest_raters=10, seed=1
    )
    report = simulate(domain, tmp_path / "out", cfg, base)
    rounds = report["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert [r["votes"] for r in rounds] == [0, 130, 260]
    assert rounds[-1]["accuracy"] > rounds[0]["accuracy"], rounds
    assert any(r["gate"] == "passed" for r in rounds[1:])
    assert (tmp_path / "out/learning_curve.png").stat().st_size > 0
    saved = json.loads((tmp_path / "out/learning_curve.json").read_text())
    assert saved["final_model"].startswith("models:/thumbloop-sim/")
    assert 0 < saved["supervised_reference"]["accuracy"] <= 1
