"""Issue 22's end-to-end test: 200 users send one message the champion misunderstands and give
its reply a 👎 (through the real worker on the embedded broker) → one group in the inbox → one
relabel over HTTP → ``thumbloop retrain --force`` → the candidate answers those messages with the
reviewer's label and passes the gate; its MLflow run logs the reviewed set.

The 200 messages are copies of one message as users type it (case, punctuation, a number
changed): the inbox groups them by its normalised-text key. Grouping paraphrases by encoder
embeddings is not built (docs/review.md)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest
import torch
from click.testing import CliRunner

from learning.registry.client import configure
from learning.registry.versions import log_and_register
from learning.review.app import create_app
from learning.review.users import set_user
from serving.model_source import resolve
from tests.conftest import BANKING, TINY_INTENTS
from tests.integration.learning.review.conftest import PASSWORD, csrf_of, login
from tests.integration.servers import run_uvicorn, wait_until
from tests.integration.workers import count_rows, start_worker, stop_worker, worker_env
from thumbloop.cli.main import cli
from thumbloop.contracts import Interaction, Vote
from thumbloop.identity import hash_id
from thumbloop.model.bundle import load_bundle
from thumbloop.model.predictor import intent_predictions, predict_many
from thumbloop.queue import TaskQueue
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, upgrade
from thumbloop.store.schema import ReviewedInteractionRow, VoteRow
from thumbloop.task_names import (
    RECORD_INTERACTION,
    RECORD_VOTE,
    interaction_payload,
    vote_payload,
)

N = 200
NAME = "thumbloop-review-e2e"


def _misunderstood(bundle_dir: Path, tiny_domain: Path) -> tuple[str, str, str]:
    """(text, true intent, the champion's answer) for a banking training message of the tiny
    domain's intents that the tiny domain did not train on and the champion gets wrong."""
    seen = {
        json.loads(line)["text"]
        for split in ("train", "validation")
        for line in (tiny_domain / f"intents/{split}.jsonl").read_text().splitlines()
    }
    rows = [json.loads(line) for line in (BANKING / "intents/train.jsonl").read_text().splitlines()]
    pool = [r for r in rows if r["label"] in TINY_INTENTS and r["text"] not in seen][:300]
    champion = load_bundle(bundle_dir, torch.device("cpu"))
    probs, _ = predict_many(champion, [r["text"] for r in pool])
    answers = intent_predictions(champion, probs)
    wrong = [
        (r["text"], r["label"], a)
        for r, a in zip(pool, answers, strict=True)
        if a != r["label"] and a != champion.out_of_scope and len(r["text"]) > 20
    ]
    assert wrong, "the tiny champion answers every candidate message right"
    return wrong[0]


def _copies(text: str) -> list[str]:
    """How 200 users type one message: case, trailing punctuation, a number of their own."""
    base = text.rstrip(" ?.!")
    return [
        f"{base.lower() if k % 3 else base} (ref {1000 + k}){'?' if k % 2 else ''}"
        for k in range(N)
    ]


@pytest.mark.slow
def test_two_hundred_downvotes_one_relabel_a_retrain_that_answers_them(
    tmp_path: Path,
    tiny_registered,  # type: ignore[no-untyped-def]
    tiny_domain: Path,
) -> None:
    db = f"sqlite:///{tmp_path}/thumbloop.db"
    broker = f"sqla+sqlite:///{tmp_path}/broker.db"
    settings = Settings(
        home=tmp_path,
        model_name=NAME,
        device="cpu",
        domain_dir=tiny_domain,
        database_url=db,
        review_sync_interval_s=0.3,
    )
    first = log_and_register(
        settings,
        tiny_registered.bundle_dir,
        params={},
        metrics={},
        artifacts={},
        dicts={},
        tags={"kind": "seed"},
    )
    assert first.aliases == ["champion"]
    upgrade(db)
    text, meant, answered = _misunderstood(tiny_registered.bundle_dir, tiny_domain)
    messages = _copies(text)

    # 200 users send it; the bot answers `answered`; each gives the reply a 👎
    proc = start_worker(worker_env(tmp_path, db, broker, None, THUMBLOOP_MODEL_NAME=NAME))
    queue = TaskQueue(broker)
    try:
        for k, message in enumerate(messages):
            user = hash_id("e2e", "telegram", f"user-{k}")
            item = Interaction(
                interaction_id=uuid.uuid4(),
                platform="telegram",
                user=user,
                conversation=hash_id("e2e", "telegram", f"chat-{k}"),
                text=message,
                intent=answered,
                intent_confidence=0.7,
                sentiment="negative",
                response_id=f"{answered}/1",
                reply_text="(the reply to the wrong intent)",
                model_version=f"{NAME}/{first.version}",
            )
            queue.send(RECORD_INTERACTION, interaction_payload(item))
            vote = Vote(
                interaction_id=item.interaction_id, rater=user, value=-1, platform="telegram"
            )
            queue.send(RECORD_VOTE, vote_payload(vote))
        wait_until(lambda: count_rows(db, VoteRow) == N, 240, interval=1.0, what="200 votes")
    finally:
        queue.close()
        stop_worker(proc)

    # one group in the inbox; one relabel covers it
    engine = make_engine(db)
    set_user(settings.home / "review-users", "alice", PASSWORD)
    app = create_app(settings, engine)
    with (
        run_uvicorn(app, ready_path="/readyz", timeout=60) as url,
        httpx.Client(base_url=url, follow_redirects=False, timeout=30) as c,
    ):
        login(c)
        page = c.get("/?signal=downvoted")
        assert page.text.count('data-row id="row-') == 1
        assert f"×{N}" in page.text and f"▼ {N}" in page.text
        group = re.search(r'name="group" value="([^"]+)"', page.text)
        assert group is not None
        done = c.post(
            "/actions",
            data={
                "csrf": csrf_of(page),
                "group": group.group(1),
                "filters": "signal=downvoted",
                "action": "label",
                "label": meant,
            },
        )
        assert done.status_code == 303
        assert "Nothing needs a look" in c.get("/?signal=downvoted").text
    assert count_rows(db, ReviewedInteractionRow, label=meant, action="relabel") == N
    engine.dispose()

    # thumbloop retrain --force: a candidate that answers the messages as the reviewer said
    env = {
        "THUMBLOOP_HOME": str(tmp_path),
        "THUMBLOOP_MODEL_NAME": NAME,
        "THUMBLOOP_DATABASE_URL": db,
        "THUMBLOOP_DOMAIN_DIR": str(tiny_domain),
        "THUMBLOOP_DEVICE": "cpu",
    }
    res = CliRunner().invoke(cli, ["retrain", "--force", "--json"], env=env)
    assert res.exit_code == 0, res.output
    # the JSON first, then whatever the libraries logged after it
    outcome, _ = json.JSONDecoder().raw_decode(res.output[res.output.index("{") :])
    assert outcome["gate"] == "passed", outcome
    metrics = outcome["metrics"]
    assert metrics["reviewed_examples"] + metrics["reviewed_examples_heldout"] == N
    client = configure(settings)
    run_id = client.get_model_version(NAME, outcome["version"]).run_id
    assert run_id is not None
    resolved = resolve(
        f"models:/{NAME}/{outcome['version']}", settings.effective_tracking_uri, tmp_path / "m"
    )
    candidate = load_bundle(resolved.bundle_dir, torch.device("cpu"))
    probs, _ = predict_many(candidate, messages)
    answers = intent_predictions(candidate, probs)
    assert answers.count(meant) == N, (meant, answered, sorted(set(answers)))
    got = client.download_artifacts(run_id, "reviewed_set.json", str(tmp_path))
    logged = json.loads(Path(got).read_text())
    assert logged["train"] + logged["heldout"] == N
    assert logged["actions"] == {"relabel": N} and logged["labels"] == {meant: N}
    inputs = client.get_run(run_id).inputs
    assert inputs is not None
    assert "reviewed_train" in {d.dataset.name for d in inputs.dataset_inputs}
