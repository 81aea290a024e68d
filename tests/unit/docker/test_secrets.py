"""How secrets reach a container: docker/make_secrets.py writes them once (never over a secret
that exists), docker/with-secrets.sh (every service's entry point) and healthcheck.py's
load_secrets turn /run/secrets/<VARIABLE> into that variable, and nothing else."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from tests.unit.docker.test_compose import DOCKER, load_script


def _mounted(folder: Path) -> Path:
    folder.mkdir()
    (folder / "THUMBLOOP_DATABASE_URL").write_text("postgresql://u:p@postgres/db\n")
    (folder / "MLFLOW_TRACKING_PASSWORD").write_text("s3cr3t")
    (folder / "redis_acl").write_text("user default off\n")  # the file itself
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
    assert values["redis_worker_password"] in values["worker_redis_url"]
    assert values["rabbitmq_telegram_password"] in values["telegram_broker_url"]
    # a second run keeps every secret, and fills in only what is missing
    (folder / "telegram_token").write_text("123:abc\n")
    (folder / "serving_redis_url").unlink()
    assert make.make(folder) == ["serving_redis_url"]
    again = {p.name: p.read_text(encoding="utf-8").strip() for p in folder.iterdir()}
    assert again == values | {"telegram_token": "123:abc"}


def test_the_rules_files_follow_the_passwords_and_the_rules(tmp_path: Path) -> None:
    """redis_acl and rabbitmq_definitions are rewritten when they say anything else: an ACL
    from an earlier release (one password for everything), or a rotated password."""
    make = load_script("make_secrets")
    folder = tmp_path / "secrets"
    make.make(folder)
    (folder / "redis_acl").write_text("user default on sanitize-payload #abc ~* &* +@all\n")
    for name in ("rabbitmq_slack_password", "slack_broker_url"):  # rotating slack's user
        (folder / name).unlink()
    definitions = (folder / "rabbitmq_definitions").read_text()
    assert sorted(make.make(folder)) == sorted(
        ["rabbitmq_slack_password", "slack_broker_url", "redis_acl", "rabbitmq_definitions"]
    )
    values = {p.name: p.read_text(encoding="utf-8").strip() for p in folder.iterdir()}
    assert values["redis_acl"] == make.redis_acl(values)
    assert "~*" not in values["redis_acl"]
    rotated = json.loads(values["rabbitmq_definitions"])
    hashes = {u["name"]: u["password_hash"] for u in rotated["users"]}
    assert make.rabbit_hash_matches(values["rabbitmq_slack_password"], hashes["slack"])
    # the others' hashes are salted anew, and still match their unchanged passwords
    assert values["rabbitmq_definitions"] != definitions.strip()
    assert make.rabbit_hash_matches(values["rabbitmq_worker_password"], hashes["worker"])
    assert make.make(folder) == []  # in step now: left alone
    assert not list(folder.glob(".*.tmp"))
    assert stat.S_IMODE((folder / "redis_acl").stat().st_mode) == 0o644


def test_rabbitmq_password_hashes_are_salted_sha256() -> None:
    make = load_script("make_secrets")
    # the worked example of RabbitMQ's docs (Credentials and Passwords, computing a hash)
    hashed = make.rabbit_hash("test12", bytes.fromhex("908DC60A"))
    assert hashed == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    assert make.rabbit_hash_matches("test12", hashed)
    assert not make.rabbit_hash_matches("test13", hashed)
    assert not make.rabbit_hash_matches("test12", "not base64!")
    assert make.rabbit_hash("test12") != make.rabbit_hash("test12")  # a new salt each time
