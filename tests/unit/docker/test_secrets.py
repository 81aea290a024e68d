"""How secrets reach a container: docker/make_secrets.py writes them once (never over a secret
that exists), docker/with-secrets.sh (every service's entry point) and healthcheck.py's
load_secrets turn /run/secrets/<VARIABLE> into that variable, and nothing else."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.unit.docker.test_compose import DOCKER, load_script


def _mounted(folder: Path) -> Path:
    folder.mkdir()
    (folder / "THUMBLOOP_DATABASE_URL").write_text("postgresql://u:p@postgres/db\n")
    (folder / "MLFLOW_TRACKING_PASSWORD").write_text("s3cr3t")
    (folder / "redis_acl").write_text("user default on #abc ~* &* +@all\n")  # the file itself
    (folder / "lower_case").write_text("not a variable")
    (folder / "9STARTS_WITH_A_DIGIT").write_text("x")
    return folder


def test_the_entry_point_exports_variable_named_secrets_and_runs_the_command(
    tmp_path: Path,
) -> None:
    folder = _mounted(tmp_path / "run-secrets")
    env = {"PATH": os.environ["PATH"], "SECRETS_DIR": str(folder)}
    out = subprocess.run(
        ["sh", str(DOCKER / "with-secrets.sh"), "env"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "THUMBLOOP_DATABASE_URL=postgresql://u:p@postgres/db" in out  # newline dropped
    assert "MLFLOW_TRACKING_PASSWORD=s3cr3t" in out
    names = {line.split("=", 1)[0] for line in out}
    assert not names & {"redis_acl", "lower_case", "9STARTS_WITH_A_DIGIT"}
    # the command's status is the container's
    failed = subprocess.run(["sh", str(DOCKER / "with-secrets.sh"), "false"], env=env)
    assert failed.returncode == 1
    # no folder (a local run): the command still runs
    env["SECRETS_DIR"] = str(tmp_path / "none")
    assert subprocess.run(["sh", str(DOCKER / "with-secrets.sh"), "true"], env=env).returncode == 0


def test_health_checks_read_the_secrets_the_same_way(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    folder = _mounted(tmp_path / "run-secrets")
    for name in ("THUMBLOOP_DATABASE_URL", "MLFLOW_TRACKING_PASSWORD"):
        # set, then deleted: monkeypatch records the name and removes what load_secrets sets
        # (a bare delenv of an absent name records nothing, and the URL leaked into later tests)
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    names = load_script("healthcheck").load_secrets(str(folder))
    assert names == ["MLFLOW_TRACKING_PASSWORD", "THUMBLOOP_DATABASE_URL"]
    assert os.environ["THUMBLOOP_DATABASE_URL"] == "postgresql://u:p@postgres/db"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cr3t"
    assert load_script("healthcheck").load_secrets(str(tmp_path / "none")) == []


def test_make_secrets_writes_each_once_and_derives_the_urls(tmp_path: Path) -> None:
    make = load_script("make_secrets")
    folder = tmp_path / "secrets"
    made = make.make(folder)
    assert set(made) == set(make.ALL)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    values = {p.name: p.read_text(encoding="utf-8").strip() for p in folder.iterdir()}
    assert len({values[n] for n in make.RANDOM}) == len(make.RANDOM)  # all different
    assert all(len(values[n]) == 64 for n in make.RANDOM)
    assert all(values[n] == "" for n in make.TOKENS)  # filled in by hand
    assert values["db_learning_password"] in values["learning_database_url"]
    assert values["redis_password"] in values["redis_broker_url"]
    # a second run keeps every secret, and fills in only what is missing
    (folder / "telegram_token").write_text("123:abc\n")
    (folder / "redis_state_url").unlink()
    assert make.make(folder) == ["redis_state_url"]
    again = {p.name: p.read_text(encoding="utf-8").strip() for p in folder.iterdir()}
    assert again == values | {"telegram_token": "123:abc"}
