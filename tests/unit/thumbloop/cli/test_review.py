"""`thumbloop review add-user | remove-user | users`, and no inbox without a reviewer."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from learning.review.users import UserStore
from thumbloop.cli.main import cli


def _env(home: Path) -> dict[str, str]:
    return {"THUMBLOOP_HOME": str(home)}


def test_add_user_prompts_twice_and_writes_a_private_file(tmp_path: Path) -> None:
    runner = CliRunner()
    pw = "correct horse battery"
    out = runner.invoke(
        cli, ["review", "add-user", "alice"], input=f"{pw}\n{pw}\n", env=_env(tmp_path)
    )
    assert out.exit_code == 0, out.output
    assert "added alice" in out.output
    path = tmp_path / "review-users"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pw not in path.read_text()
    assert UserStore(path).check("alice", pw)
    again = runner.invoke(
        cli,
        ["review", "add-user", "alice"],
        input="a new password!\na new password!\n",
        env=_env(tmp_path),
    )
    assert "changed the password of alice" in again.output
    assert UserStore(path).check("alice", "a new password!")
    listed = runner.invoke(cli, ["review", "users"], env=_env(tmp_path))
    assert listed.output.split() == ["alice"]
    assert runner.invoke(cli, ["review", "remove-user", "alice"], env=_env(tmp_path)).exit_code == 0
    assert runner.invoke(cli, ["review", "remove-user", "alice"], env=_env(tmp_path)).exit_code == 1


def test_weak_or_mistyped_passwords_and_bad_names_are_refused(tmp_path: Path) -> None:
    runner = CliRunner()
    short = runner.invoke(
        cli, ["review", "add-user", "bob"], input="short\nshort\n", env=_env(tmp_path)
    )
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    # a mistyped confirmation asks again; end of input then aborts
    typo = runner.invoke(
        cli,
        ["review", "add-user", "bob"],
        input="password-one!\npassword-two!\n",
        env=_env(tmp_path),
    )
    assert typo.exit_code != 0
    bad = runner.invoke(
        cli, ["review", "add-user", "bob smith"], input="x\nx\n", env=_env(tmp_path)
    )
    assert bad.exit_code == 2
    assert not (tmp_path / "review-users").exists()


def test_the_inbox_refuses_to_start_without_reviewers(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["review"], env=_env(tmp_path))
    assert out.exit_code == 1
    assert "no reviewers" in out.output and "add-user" in out.output
