"""`thumbloop chat` scripts and sessions; the process plan of `thumbloop up`."""

from __future__ import annotations

import re
import socket
import uuid
from typing import Any

import pytest
from pydantic import SecretStr

from bots.terminal.session import ChatSession, ScriptError, Step, parse_script, reply_record
from thumbloop import task_names as tasks
from thumbloop.cli import supervisor as stack
from thumbloop.contracts import (
    IntentResult,
    Interaction,
    Prediction,
    Reply,
    SentimentResult,
    Vote,
)
from thumbloop.identity import hash_id
from thumbloop.settings import Settings


class RecordingSender:
    """A TaskSender that keeps what it was given (the broker side is tested in integration)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, name: str, kwargs: dict[str, Any]) -> str:
        self.sent.append((name, kwargs))
        return uuid.uuid4().hex


def _prediction(intent: str = "card_arrival") -> Prediction:
    return Prediction(
        intent=IntentResult(name=intent, confidence=0.9, ranking=[]),
        sentiment=SentimentResult(label="negative", score=0.7),
        reply=Reply(text="Your card is on its way.", response_id=f"{intent}/1"),
        model_version="thumbloop/3",
        latency_ms=12.0,
    )


def test_a_script_is_messages_and_votes_with_comments_skipped() -> None:
    steps = parse_script(["# demo", "> where is my card", "+", "", ">  hi  ", "-"])
    assert steps == [
        Step("message", 2, text="where is my card"),
        Step("vote", 3, value=1),
        Step("message", 5, text="hi"),
        Step("vote", 6, value=-1),
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["+"], "line 1: a vote before any message"),
        (["> hi", ">"], "line 2: '>' needs a message"),
        (["> hi", "thumbs up"], "line 2: expected '> text', '+' or '-'"),
    ],
)
def test_a_bad_script_line_is_named(lines: list[str], message: str) -> None:
    with pytest.raises(ScriptError, match=re.escape(message)):
        parse_script(lines)


def test_a_reply_is_recorded_as_an_interaction_and_a_vote_rates_it() -> None:
    sender = RecordingSender()
    session = ChatSession(queue=sender, secret="s", user="ann", conversation="cli-x")
    with pytest.raises(ValueError, match="nothing to rate"):
        session.vote(1)
    prediction = _prediction()
    session.record("my card is late", prediction)
    vote = session.vote(-1)

    (name, payload), (vname, vpayload) = sender.sent
    assert name == tasks.RECORD_INTERACTION and vname == tasks.RECORD_VOTE
    item = Interaction.model_validate(payload["interaction"])
    assert item.interaction_id == prediction.interaction_id
    assert item.user == hash_id("s", "cli", "ann") != "ann"
    assert item.conversation == hash_id("s", "cli", "cli-x")
    assert (item.intent, item.response_id, item.model_version) == (
        "card_arrival",
        "card_arrival/1",
        "thumbloop/3",
    )
    assert Vote.model_validate(vpayload["vote"]) == vote
    assert (vote.value, vote.rater, vote.platform) == (-1, item.user, "cli")


def test_history_goes_with_the_next_message_and_is_capped() -> None:
    session = ChatSession(queue=RecordingSender(), secret="s", user="ann", history_turns=2)
    for i in range(4):
        session.record(f"message {i}", _prediction())
    message = session.message("next")
    assert [t.text for t in message.history if t.role == "user"] == ["message 2", "message 3"]
    assert len(message.history) == 4 and message.platform == "cli"


def test_forget_asks_the_queue_to_erase_the_user() -> None:
    sender = RecordingSender()
    session = ChatSession(queue=sender, secret="s", user="ann")
    session.record("hi", _prediction("greeting"))
    session.forget()
    assert sender.sent[-1] == (
        tasks.FORGET_USER,
        {"user": hash_id("s", "cli", "ann"), "platform": "cli"},
    )
    assert session.last is None and session.history == []


def test_reply_record_is_json_ready() -> None:
    p = _prediction()
    record = reply_record("my card", p)
    assert record["interaction_id"] == str(p.interaction_id)
    assert record["model_version"] == "thumbloop/3" and record["sentiment"] == "negative"


def test_up_runs_serving_worker_and_ui_and_only_the_bots_with_credentials(tmp_path: Any) -> None:
    opts = stack.StackOptions(port=8123, mlflow_port=5123, python="py")
    bare = stack.plan(Settings(home=tmp_path), opts)
    assert [p.name for p in bare] == ["serving", "worker", "mlflow"]
    assert bare[0].argv == (
        "py",
        "-m",
        "thumbloop",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
    )
    assert "--beat" in bare[1].argv
    assert bare[2].argv[bare[2].argv.index("--port") + 1] == "5123"
    assert bare[0].command.startswith("exec py -m thumbloop serve")

    with_bots = Settings(
        home=tmp_path,
        telegram_token=SecretStr("123:abc"),
        slack_bot_token=SecretStr("xoxb-1"),
        slack_app_token=SecretStr("xapp-1"),
    )
    assert [p.name for p in stack.plan(with_bots, opts)][-2:] == ["telegram", "slack"]
    half_slack = Settings(home=tmp_path, slack_bot_token=SecretStr("xoxb-1"))
    assert "slack" not in [p.name for p in stack.plan(half_slack, opts)]


def test_up_runs_no_ui_for_a_remote_tracking_server(tmp_path: Any) -> None:
    remote = Settings(home=tmp_path, mlflow_tracking_uri="http://mlflow.internal:5000")
    opts = stack.StackOptions()
    assert "mlflow" not in [p.name for p in stack.plan(remote, opts)]
    assert stack.mlflow_url(remote, opts) == "http://mlflow.internal:5000"
    no_ui = stack.StackOptions(mlflow_ui=False)
    assert "mlflow" not in [p.name for p in stack.plan(Settings(home=tmp_path), no_ui)]


def test_children_get_the_resolved_home_and_serving_url(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path)
    env = stack.child_env(settings, stack.StackOptions(host="0.0.0.0", port=9001))
    assert env["THUMBLOOP_HOME"] == str(tmp_path)
    assert env["THUMBLOOP_SERVING_URL"] == "http://127.0.0.1:9001"


def test_busy_ports_are_found_before_starting(tmp_path: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        opts = stack.StackOptions(port=port, mlflow_ui=False)
        assert stack.busy_ports(Settings(home=tmp_path), opts) == [port]


def test_the_banner_says_where_things_are_and_hides_passwords(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path, database_url="postgresql://app:hunter2@db/thumbloop")
    opts = stack.StackOptions(port=8123)
    text = stack.banner(settings, opts, stack.plan(settings, opts))
    assert "http://127.0.0.1:8123/docs" in text and "http://127.0.0.1:5000" in text
    assert "hunter2" not in text and "app:***@db" in text
    assert "thumbloop chat --api http://127.0.0.1:8123" in text


def test_a_crashed_process_is_reported_and_stops_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os
    import sys
    import time

    procs = [
        stack.StackProcess("boom", (sys.executable, "-c", "import sys; print('up'); sys.exit(3)")),
        stack.StackProcess("sleeper", (sys.executable, "-c", "import time; time.sleep(120)")),
    ]
    started = time.monotonic()
    code = stack.run(procs, dict(os.environ))
    out = capsys.readouterr().out
    assert code == 3
    assert "boom stopped (rc=3)" in out
    assert "sending SIGTERM to sleeper" in out and "sleeper stopped" in out
    assert time.monotonic() - started < 60
