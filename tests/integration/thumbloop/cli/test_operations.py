"""`thumbloop backfill` and `thumbloop forget` through the embedded queue to a real worker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.integration.servers import wait_until
from tests.integration.workers import count_rows, start_worker, stop_worker, worker_env
from thumbloop.cli.main import cli
from thumbloop.identity import hash_id
from thumbloop.store.db import upgrade
from thumbloop.store.schema import InteractionRow, VoteRow

SECRET = "ops-secret"


def _records(user: str, n: int) -> list[str]:
    lines = []
    for i in range(n):
        iid = str(uuid.uuid4())
        lines.append(
            json.dumps(
                {
                    "interaction": {
                        "interaction_id": iid,
                        "platform": "telegram",
                        "user": hash_id(SECRET, "telegram", user),
                        "conversation": hash_id(SECRET, "telegram", "chat"),
                        "text": f"where is my card {i}",
                        "intent": "card_arrival",
                        "intent_confidence": 0.8,
                        "sentiment": "neutral",
                        "response_id": "card_arrival/1",
                        "reply_text": "On its way.",
                        "model_version": "thumbloop/1",
                    }
                }
            )
        )
        vote = {
            "interaction_id": iid,
            "rater": hash_id(SECRET, "telegram", user),
            "value": 1 if i % 2 else -1,
            "platform": "telegram",
        }
        lines.append(json.dumps({"vote": vote}))
    return lines


def test_backfill_then_forget_a_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = f"sqlite:///{tmp_path}/t.db"
    broker = f"sqla+sqlite:///{tmp_path}/broker.db"
    env = worker_env(tmp_path, db, broker, None, THUMBLOOP_HMAC_SECRET=SECRET)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    upgrade(db)
    path = tmp_path / "backfill.jsonl"
    path.write_text("\n".join(_records("4242", 3) + _records("7", 2)) + "\n")
    runner = CliRunner()
    proc = start_worker(env)
    try:
        sent = runner.invoke(cli, ["backfill", str(path)])
        assert sent.exit_code == 0, sent.output
        assert "queued 5 interactions, 5 votes" in sent.output
        again = runner.invoke(cli, ["backfill", str(path)])  # idempotent
        assert again.exit_code == 0, again.output
        wait_until(
            lambda: count_rows(db, InteractionRow) == 5 and count_rows(db, VoteRow) == 5,
            90,
            what="backfilled rows",
        )
        forgot = runner.invoke(cli, ["forget", "telegram", "4242"])
        assert forgot.exit_code == 0, forgot.output
        wait_until(
            lambda: count_rows(db, InteractionRow) == 2 and count_rows(db, VoteRow) == 2,
            90,
            what="the user's rows to be erased",
        )
        gone = hash_id(SECRET, "telegram", "4242")
        assert count_rows(db, InteractionRow, user_hash=gone) == 0
        assert count_rows(db, VoteRow, rater=gone) == 0
    finally:
        stop_worker(proc)
