"""The production roles for real, on private servers started here (never the shared ones): the
PostgreSQL init script (docker/postgres/init-roles.sh) and the table grants (docker/db_grants.py)
give each service's role only what it needs, and Redis with the ACL file docker/make_secrets.py
writes answers only to the password every service's Redis URL carries."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from tests.integration.servers import free_port
from thumbloop.store.db import upgrade

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docker_{name}", DOCKER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder the private servers can reach when they run as another user (pytest's own
    temporary folders are private to the user running the tests)."""
    folder = Path(tempfile.mkdtemp(prefix="thumbloop-roles-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def secrets(work: Path) -> dict[str, str]:
    folder = work / "secrets"
    _script("make_secrets").make(folder)
    folder.chmod(0o755)  # the init script runs as the server's user here
    return {p.name: p.read_text(encoding="utf-8").strip() for p in folder.iterdir()}


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


@pytest.fixture
def private_redis(work: Path, secrets: dict[str, str]) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("no redis-server on this machine: install redis-server")
    acl = work / "redis_acl"
    acl.write_text(secrets["redis_acl"] + "\n")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--aclfile", str(acl)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=port).ping()
            except redis.AuthenticationError:
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, "redis did not start"
                time.sleep(0.1)
            except redis.ResponseError:
                break
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_answers_only_with_the_password_the_urls_carry(
    private_redis: int, secrets: dict[str, str]
) -> None:
    with pytest.raises((redis.AuthenticationError, redis.ResponseError), match=r"(?i)auth"):
        redis.Redis(port=private_redis).set("injected", "task")
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
        redis.Redis(port=private_redis, password="wrong").ping()
    for name in ("redis_broker_url", "redis_result_url", "redis_state_url"):
        url = secrets[name].replace("@redis:6379/", f"@127.0.0.1:{private_redis}/")
        assert urlsplit(url).password == secrets["redis_password"]
        client = redis.Redis.from_url(url)
        assert client.ping() and client.set(name, "ok")
        client.close()
