"""The production roles for real, on private servers started here (never the shared ones): the
PostgreSQL init script (docker/postgres/init-roles.sh) and the table grants (docker/db_grants.py)
give each service's role only what it needs, and Redis with the ACL file docker/make_secrets.py
writes lets in only its users (each service's: tests/integration/docker/test_redis_users.py)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from tests.integration.docker.conftest import DOCKER, NO_RETRY, ROOT, local_redis
from tests.integration.servers import free_port
from thumbloop.store.db import upgrade


def _pg_bin() -> Path | None:
    found = shutil.which("initdb") or next(
        iter(glob.glob("/usr/lib/postgresql/*/bin/initdb")), None
    )
    return Path(found).parent if found else None


def _as_server_user(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as `postgres` there."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser") is None:
        pytest.fail("running as root without runuser (util-linux): no private PostgreSQL")
    return ["runuser", "-u", "postgres", "--", *argv]


@pytest.fixture
def private_postgres(work: Path) -> Iterator[tuple[str, int]]:
    """A throwaway PostgreSQL cluster (socket folder, port), like the image's first start: a
    superuser `postgres` and the database `thumbloop`."""
    pg = _pg_bin()
    if pg is None:
        pytest.fail("no initdb on this machine: install PostgreSQL's server binaries (postgresql)")
    home = work / "pg"
    home.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    port = free_port()
    subprocess.run(
        _as_server_user(
            [str(pg / "initdb"), "-D", f"{home}/data", "-A", "trust", "-U", "postgres"]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_server_user(
            [
                str(pg / "pg_ctl"),
                "-D",
                f"{home}/data",
                "-o",
                options,
                "-l",
                f"{home}/log",
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        admin = create_engine(
            f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE thumbloop"))
        admin.dispose()
        yield str(home), port
    finally:
        subprocess.run(
            _as_server_user([str(pg / "pg_ctl"), "-D", f"{home}/data", "-m", "immediate", "stop"]),
            capture_output=True,
        )


def _local(url: str, port: int) -> str:
    return url.replace("@postgres:5432/", f"@127.0.0.1:{port}/")


def _run_init_script(sockets: str, port: int, secrets_dir: Path) -> None:
    env = os.environ | {
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "thumbloop",
        "SECRETS_DIR": str(secrets_dir),
        "PGHOST": sockets,
        "PGPORT": str(port),
    }
    subprocess.run(
        _as_server_user(["sh", str(DOCKER / "postgres" / "init-roles.sh")]),
        env=env,
        check=True,
        capture_output=True,
        cwd="/",
    )


def _can(url: str, sql: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
        return True
    except (ProgrammingError, OperationalError) as exc:
        assert "permission denied" in str(exc) or "CONNECT privilege" in str(exc), exc
        return False
    finally:
        engine.dispose()


def test_each_database_role_can_do_only_its_part(
    private_postgres: tuple[str, int], secrets: dict[str, str], work: Path
) -> None:
    sockets, port = private_postgres
    _run_init_script(sockets, port, work / "secrets")
    _run_init_script(sockets, port, work / "secrets")  # again: idempotent
    owner = _local(secrets["owner_database_url"], port)
    upgrade(owner)  # what `migrate` runs
    grants = subprocess.run(
        [str(ROOT / ".venv/bin/python"), str(DOCKER / "db_grants.py")],
        env=os.environ | {"THUMBLOOP_DATABASE_URL": owner},
        capture_output=True,
        text=True,
    )
    assert grants.returncode == 0, grants.stderr
    assert secrets["db_owner_password"] not in grants.stdout + grants.stderr
    learning = _local(secrets["learning_database_url"], port)
    review = _local(secrets["review_database_url"], port)
    serving = _local(
        secrets["learning_database_url"]
        .replace("thumbloop_learning", "thumbloop_serving")
        .replace(secrets["db_learning_password"], secrets["db_serving_password"]),
        port,
    )
    mlflow = _local(
        secrets["mlflow_backend_uri"].replace("postgresql://", "postgresql+psycopg2://"), port
    )
    upgrade(learning)  # `thumbloop worker` checks the migrations at start: at head, a read

    assert _can(learning, "DELETE FROM interactions")
    assert _can(learning, "UPDATE training_runs SET status = status")
    assert not _can(learning, "CREATE TABLE planted (i int)")
    assert _can(review, "SELECT count(*) FROM interactions")
    assert _can(review, "DELETE FROM review_actions")
    assert not _can(review, "DELETE FROM interactions")
    assert not _can(review, "UPDATE votes SET value = value")
    assert _can(serving, "SELECT count(*) FROM votes JOIN interactions USING (interaction_id)")
    assert not _can(serving, "SELECT count(*) FROM training_runs")
    assert not _can(serving, "DELETE FROM votes")
    # MLflow's role has its own databases and cannot even connect to Thumbloop's
    assert _can(mlflow, "CREATE TABLE its_own (i int)")
    assert not _can(mlflow.rsplit("/", 1)[0] + "/thumbloop", "SELECT 1")
    # no role but the owner may change the schema
    assert _can(owner, "CREATE TABLE owners_only (i int)")


def test_redis_lets_in_only_its_users(
    private_redis: int, secrets: dict[str, str], work: Path
) -> None:
    with pytest.raises(redis.AuthenticationError):  # a client that names no user
        redis.Redis(port=private_redis, retry=NO_RETRY).set("injected", "task")
    for user, password in (("default", ""), ("worker", "wrong"), ("nobody", "x")):
        client = redis.Redis(port=private_redis, username=user, password=password, retry=NO_RETRY)
        with pytest.raises(redis.AuthenticationError):
            client.ping()
    for name in (n for n in secrets if n.endswith(("_redis_url", "_result_url"))):
        url = urlsplit(local_redis(secrets[name], private_redis))
        assert url.password == secrets[f"redis_{url.username}_password"], name
        # logged in (AUTH and SELECT passed), and refused even a PING: it needs none
        with pytest.raises(redis.exceptions.NoPermissionError):
            redis.Redis.from_url(url.geturl()).ping()
    # compose's health check, with its secret where compose mounts it
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))["services"]
    kind, command = services["redis"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    command = command.replace("$$", "$").replace("/run/secrets/", f"{work / 'secrets'}/")
    command = command.replace("redis-cli ", f"redis-cli -p {private_redis} ")
    assert subprocess.run(["sh", "-c", command], capture_output=True).returncode == 0
    health = redis.Redis(
        port=private_redis, username="healthcheck", password=secrets["redis_healthcheck_password"]
    )
    with pytest.raises(redis.exceptions.NoPermissionError):
        health.get("thumbloop:history:anything")
