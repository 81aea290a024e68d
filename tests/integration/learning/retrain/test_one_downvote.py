"""Issue #21's scenario on the real worker and MLflow: one rater's bare 👎 on a confident, right
answer, a forced retrain, and the candidate still answers that intent, for the message and for a
paraphrase, and stays sure of it. Before votes were read for what they say, the lone 👎 was
scaled up to a full example: on the full banking domain the answer went out of scope (the
issue); on this small domain (seven labels, ten examples each, cheap to train) it stays the top
intent but its confidence more than halves, which is what fails on that code."""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from learning.registry.client import configure
from learning.retrain.run import retrain_if_due
from serving.model_source import resolve
from tests.integration.servers import wait_until
from tests.integration.workers import count_rows, start_worker, stop_worker, worker_env
from thumbloop.contracts import Interaction, Vote
from thumbloop.identity import hash_id
from thumbloop.model.bundle import load_bundle
from thumbloop.model.device import resolve_device
from thumbloop.model.predictor import intent_predictions, predict_many
from thumbloop.queue import TaskQueue
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, upgrade
from thumbloop.store.schema import InteractionRow, VoteRow
from thumbloop.task_names import RECORD_INTERACTION, RECORD_VOTE, interaction_payload, vote_payload

ROOT = Path(__file__).resolve().parents[4]
BANKING = ROOT / "data" / "banking"
INTENTS = {
    "transaction_charged_twice",
    "extra_charge_on_statement",
    "card_payment_fee_charged",
    "pending_card_payment",
    "card_arrival",
    "change_pin",
    "out_of_scope",
}
MESSAGE = "I was charged twice for the same coffee"
PARAPHRASE = "I was charged twice for my groceries"
SHOTS = 10  # as the seed: 10 examples per intent


def _rows(path: Path, keep: set[str], k: int, seed: int = 0) -> list[dict[str, str]]:
    by: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["label"] in keep:
            by[row["label"]].append(row)
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    for label in sorted(by):
        rows = by[label]
        rng.shuffle(rows)
        out += rows[:k]
    return out


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _domain(out: Path) -> Path:
    _write(out / "intents/train.jsonl", _rows(BANKING / "intents/train.jsonl", INTENTS, SHOTS))
    _write(
        out / "intents/validation.jsonl", _rows(BANKING / "intents/validation.jsonl", INTENTS, 5)
    )
    table = json.loads((BANKING / "responses.json").read_text(encoding="utf-8"))
    responses = {k: v for k, v in table["responses"].items() if k in INTENTS}
    (out / "responses.json").write_text(json.dumps({"version": 1, "responses": responses}))
    moods = {"negative", "neutral", "positive"}
    for split, k in (("train", 40), ("validation", 10)):
        _write(
            out / f"sentiment/{split}.jsonl",
            _rows(BANKING.parent / f"sentiment/{split}.jsonl", moods, k),
        )
    (out / "domain.json").write_text(
        json.dumps(
            {"name": "charged-twice", "out_of_scope": "out_of_scope", "sentiment": "sentiment"}
        )
    )
    return out


def _answers(settings: Settings, version: str, texts: list[str]) -> list[tuple[str, float]]:
    resolved = resolve(
        f"models:/{settings.model_name}/{version}",
        settings.effective_tracking_uri,
        settings.home / "models",
    )
    bundle = load_bundle(resolved.bundle_dir, resolve_device("cpu"))
    probs, _ = predict_many(bundle, texts)
    return list(zip(intent_predictions(bundle, probs), probs.max(axis=1).tolist(), strict=True))


@pytest.mark.slow
def test_one_raters_downvote_on_a_confident_right_answer_does_not_flip_it(tmp_path: Path) -> None:
    from learning.seed.config import TrainConfig
    from learning.seed.run import train_and_register

    db = f"sqlite:///{tmp_path}/thumbloop.db"
    broker = f"sqla+sqlite:///{tmp_path}/broker.db"
    upgrade(db)
    domain = _domain(tmp_path / "domain")
    settings = Settings(
        home=tmp_path, model_name="charged-twice", device="cpu", database_url=db, domain_dir=domain
    )
    cfg = TrainConfig(epochs=2, layers_to_tune=1, batch_size=16, refit_steps=100, device="cpu")
    seed = train_and_register(settings, domain, cfg, progress=False)
    assert seed.registered is not None
    champion = str(seed.registered.version)
    (intent, confidence), (again, _) = _answers(settings, champion, [MESSAGE, PARAPHRASE])
    assert intent == again == "transaction_charged_twice"
    assert confidence >= 0.8  # a confident, right answer

    rater = hash_id("k", "telegram", "one-rater")
    item = Interaction(
        interaction_id=uuid.uuid4(),
        platform="telegram",
        user=rater,
        conversation=hash_id("k", "telegram", "chat"),
        text=MESSAGE,
        intent=intent,
        intent_confidence=confidence,
        sentiment="neutral",
        response_id="transaction_charged_twice/1",
        reply_text="Sorry about that: a duplicate charge is usually a pending one that drops off.",
        model_version=f"charged-twice/{champion}",
    )
    down = Vote(interaction_id=item.interaction_id, rater=rater, value=-1, platform="telegram")
    proc = start_worker(
        worker_env(tmp_path, db, broker, None, THUMBLOOP_MODEL_NAME=settings.model_name)
    )
    queue = TaskQueue(broker)
    try:
        queue.send(RECORD_INTERACTION, interaction_payload(item))
        queue.send(RECORD_VOTE, vote_payload(down))
        wait_until(
            lambda: count_rows(db, VoteRow) == 1 and count_rows(db, InteractionRow) == 1,
            120,
            what="the interaction and its 👎 stored by the worker",
        )
    finally:
        queue.close()
        stop_worker(proc)

    engine = make_engine(db)
    try:
        outcome = retrain_if_due(settings, engine, force=True)  # `thumbloop retrain --force`
    finally:
        engine.dispose()
    candidate = outcome["version"]
    assert candidate and candidate != champion
    tags = configure(settings).get_model_version(settings.model_name, candidate).tags
    assert tags["kind"] == "retrain" and tags["confirmed_flips"] == "0"
    answers = _answers(settings, candidate, [MESSAGE, PARAPHRASE])
    assert [a for a, _ in answers] == ["transaction_charged_twice"] * 2, answers
    # and it stays sure of it: on the full banking domain the same 👎, read as a full example,
    # took a 0.81 answer under out of scope's; on this small domain it more than halved the
    # answer's confidence (0.83 -> 0.37), a single lone rater's word against the model's
    assert answers[0][1] >= 0.6 * confidence, (confidence, answers)
