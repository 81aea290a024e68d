"""A reviewer's labels reach the next retrain: relabelled in the inbox, trained on as gold
examples, counted in the run's metrics (``reviewed_examples``). The whole loop with 200
simulated messages and the gate is issue 22's end-to-end test, not this one."""

from __future__ import annotations

import json
from pathlib import Path

from learning.registry.client import configure
from learning.registry.versions import log_and_register
from learning.retrain.run import run_retrain
from learning.review.actions import apply_action
from learning.review.filters import Filters
from learning.review.inbox import groups_page
from learning.review.index import sync
from tests.unit.learning.review.seed import Msg, store
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, upgrade


def test_reviewed_labels_are_trained_on_and_counted(
    tmp_path: Path,
    tiny_registered,  # type: ignore[no-untyped-def]
    tiny_domain: Path,
) -> None:
    settings = Settings(
        home=tmp_path, model_name="thumbloop-review", device="cpu", domain_dir=tiny_domain
    )
    log_and_register(
        settings,
        tiny_registered.bundle_dir,
        params={},
        metrics={},
        artifacts={},
        dicts={},
        tags={"kind": "seed"},
    )
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    rows = [
        json.loads(line)
        for line in (tiny_domain / "intents/validation.jsonl").read_text().split("\n")
        if line
    ]
    pins = [r["text"] for r in rows if r["label"] == "change_pin"]
    # two users each asked about their PIN; the model said card_arrival and got a 👎
    messages = [
        Msg(
            text, intent="card_arrival", confidence=0.4, votes=[-1], raw_user=f"u{k}-{c}", minutes=k
        )
        for k, text in enumerate(pins)
        for c in range(2)
    ]
    # and thumbs on other messages, so the retrain also has votes to learn from
    messages += [
        Msg(r["text"], intent=r["label"], confidence=0.9, votes=[1], raw_user=f"v{k}", minutes=k)
        for k, r in enumerate(rows)
        if r["label"] != "change_pin"
    ]
    store(engine, messages)
    sync(engine)
    relabelled = 0
    for g in groups_page(engine, Filters(intent="card_arrival", signal="downvoted"), 0.5).groups:
        done = apply_action(engine, "alice", g.key, Filters(), 0.5, "change_pin", "out_of_scope")
        relabelled += done.count
    assert relabelled == 2 * len(pins)

    outcome = run_retrain(settings, engine)
    assert outcome.version is not None and outcome.run_id is not None, outcome
    metrics = outcome.metrics
    assert metrics["reviewed_examples"] + metrics["reviewed_examples_heldout"] == relabelled
    assert metrics["reviewed_examples"] > 0
    run = configure(settings).get_run(outcome.run_id)
    assert run.data.metrics["reviewed_examples"] == metrics["reviewed_examples"]
    engine.dispose()
