"""A small simulation through the real loop: seed on 3 shots, two rounds of votes through a
real Celery worker (embedded SQLite broker), retrain, gate, promote; accuracy goes up."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest

from learning.simulate.run import SimConfig, simulate
from tests.tiny_lm import make_tiny_lm
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import CorrectionRow, InteractionRow

ROOT = Path(__file__).resolve().parents[4]
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
    shown = saved["supervised_reference"]["shown"]  # seed rows + voted messages, true labels
    assert 250 <= shown["train_examples"] <= 3 * len(INTENTS) + 260
    assert 0 < shown["accuracy"] <= 1
    # follow-ups after 👎 (default rate 0.5) went through the queue and were stored by the worker
    said = [r["follow_ups"] for r in rounds[1:]]
    answered = sum(f["picks"] + f["other"] + f["unhelpful"] for f in said)
    assert 0 < answered <= sum(f["down"] for f in said) + 260  # clarifying replies ask at once
    assert all(f["unhelpful"] > 0 for f in said)  # some right answers did not help
    engine = make_engine(f"sqlite:///{tmp_path / 'out/home/thumbloop.db'}")
    with session_scope(engine) as s:
        assert s.query(CorrectionRow).count() == answered
    engine.dispose()


@pytest.mark.slow
def test_generative_simulation_rates_what_the_generator_wrote(tmp_path: Path) -> None:
    """The plumbing of ``--replies generative`` with a tiny random LM (what it writes is noise;
    the real run on SmolLM2 is in the README): replies come from serving's generative strategy,
    each stored interaction says how its reply was made, generated ones keep their prompt, and
    every round reports the reply statistics and the champion generator's golden like rate."""
    domain = _sim_domain(tmp_path / "domain")
    lm = make_tiny_lm(tmp_path / "lm")
    base = Settings(
        home=tmp_path / "unused",
        device="cpu",
        gate_tolerance=0.05,
        generator=str(lm),
        generator_max_new_tokens=12,
        generator_min_votes=8,
    )
    cfg = SimConfig(
        seed_shots=3, rounds=1, votes_per_round=40, honest_raters=5, seed=1,
        replies="generative", golden_prompts=4,
    )  # fmt: skip
    report = simulate(domain, tmp_path / "out", cfg, base)
    seed, first = report["rounds"]
    assert 0 <= seed["golden_like_rate"] <= 1 and 0 <= first["golden_like_rate"] <= 1
    stats = first["replies"]
    assert first["generator_gate"] in {"skipped", "passed", "failed"}
    engine = make_engine(f"sqlite:///{tmp_path / 'out/home/thumbloop.db'}")
    with session_scope(engine) as s:
        rows = s.query(InteractionRow).all()
        assert len(rows) == 40
        generated = [r for r in rows if r.reply_strategy == "generative"]
        fallbacks = [r for r in rows if r.reply_strategy.startswith("template:fallback")]
        assert (len(generated), len(fallbacks)) == (stats["generated"], stats["fallbacks"])
        assert generated or fallbacks  # generation was attempted for the confident messages
        assert all(r.reply_prompt and r.reply_prompt[-1]["role"] == "user" for r in generated)
        assert all(r.reply_prompt is None for r in rows if r.reply_strategy != "generative")
        assert all(r.generator and r.generator.startswith("lm:") for r in generated + fallbacks)
    engine.dispose()
