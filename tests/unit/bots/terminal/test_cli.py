"""``thumbloop chat``: its options, a bad script named before anything connects, and a serving
worker that is down reported step by step."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from thumbloop.cli.main import cli


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"THUMBLOOP_HOME": str(tmp_path), "THUMBLOOP_BROKER_URL": None}
    result = CliRunner().invoke(cli, ["chat", *args], env=env)
    return result.exit_code, result.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_help_lists_the_options(tmp_path: Path) -> None:
    code, out = run(tmp_path, "--help")
    assert code == 0
    assert "rate its replies" in out
    for option in ("--api", "--script", "--json", "--user"):
        assert option in out


def test_a_bad_script_is_named_with_its_line(tmp_path: Path) -> None:
    script = tmp_path / "demo.chat"
    script.write_text("+\n", encoding="utf-8")
    code, out = run(tmp_path, "--script", str(script))
    assert code == 1
    assert f"Error: {script}: line 1: a vote before any message" in out


def test_steps_that_fail_are_reported_and_counted(tmp_path: Path) -> None:
    script = tmp_path / "demo.chat"
    script.write_text("> hi\n+\n", encoding="utf-8")
    api = f"http://127.0.0.1:{_closed_port()}"  # nothing listens there
    code, out = run(tmp_path, "--api", api, "--script", str(script), "--user", "u")
    assert code == 1
    assert "you ▸ hi" in out
    assert f"line 1: no reply from {api}" in out and "line 2: no reply to rate" in out
    assert "Error: 2 step(s) failed (see above)" in out
