"""The process plan of `thumbloop up` and its supervisor."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from pydantic import SecretStr

from thumbloop.cli import supervisor
from thumbloop.settings import Settings


def test_up_runs_serving_worker_and_ui_and_only_the_bots_with_credentials(tmp_path: Any) -> None:
    opts = supervisor.StackOptions(port=8123, mlflow_port=5123, python="py")
    bare = supervisor.plan(Settings(home=tmp_path), opts)
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
    assert [p.name for p in supervisor.plan(with_bots, opts)][-2:] == ["telegram", "slack"]
    half_slack = Settings(home=tmp_path, slack_bot_token=SecretStr("xoxb-1"))
    assert "slack" not in [p.name for p in supervisor.plan(half_slack, opts)]


def test_up_runs_no_ui_for_a_remote_tracking_server(tmp_path: Any) -> None:
    remote = Settings(home=tmp_path, mlflow_tracking_uri="http://mlflow.internal:5000")
    opts = supervisor.StackOptions()
    assert "mlflow" not in [p.name for p in supervisor.plan(remote, opts)]
    assert supervisor.mlflow_url(remote, opts) == "http://mlflow.internal:5000"
    no_ui = supervisor.StackOptions(mlflow_ui=False)
    assert "mlflow" not in [p.name for p in supervisor.plan(Settings(home=tmp_path), no_ui)]


def test_children_get_the_resolved_home_and_serving_url(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path)
    env = supervisor.child_env(settings, supervisor.StackOptions(host="0.0.0.0", port=9001))
    assert env["THUMBLOOP_HOME"] == str(tmp_path)
    assert env["THUMBLOOP_SERVING_URL"] == "http://127.0.0.1:9001"


def test_busy_ports_are_found_before_starting(tmp_path: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        opts = supervisor.StackOptions(port=port, mlflow_ui=False)
        assert supervisor.busy_ports(Settings(home=tmp_path), opts) == [port]


def test_the_banner_says_where_things_are_and_hides_passwords(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path, database_url="postgresql://app:hunter2@db/thumbloop")
    opts = supervisor.StackOptions(port=8123)
    text = supervisor.banner(settings, opts, supervisor.plan(settings, opts))
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
        supervisor.StackProcess(
            "boom", (sys.executable, "-c", "import sys; print('up'); sys.exit(3)")
        ),
        supervisor.StackProcess("sleeper", (sys.executable, "-c", "import time; time.sleep(120)")),
    ]
    started = time.monotonic()
    code = supervisor.run(procs, dict(os.environ))
    out = capsys.readouterr().out
    assert code == 3
    assert "boom stopped (rc=3)" in out
    assert "sending SIGTERM to sleeper" in out and "sleeper stopped" in out
    assert time.monotonic() - started < 60


def test_up_runs_the_review_inbox_once_a_reviewer_exists(tmp_path: Any) -> None:
    from learning.review.users import set_user, users_file

    opts = supervisor.StackOptions(port=8123, mlflow_port=5123, python="py")
    settings = Settings(home=tmp_path)
    assert "review" not in [p.name for p in supervisor.plan(settings, opts)]
    assert "review       off" in supervisor.banner(settings, opts, [])
    set_user(users_file(settings), "alice", "a long enough password")
    review = [p for p in supervisor.plan(settings, opts) if p.name == "review"]
    assert [p.argv for p in review] == [("py", "-m", "thumbloop", "review")]
    assert "review       http://127.0.0.1:8090" in supervisor.banner(settings, opts, review)
