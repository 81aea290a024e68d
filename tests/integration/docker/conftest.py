"""What the production access tests share: the secrets docker/make_secrets.py writes, in a folder
private servers can read, and a private Redis started with the ACL file among them (never the
machine's shared Redis, whose users these tests would otherwise change)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.integration.servers import free_port

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
# redis-py retries a refused login with backoff (seconds each): a refusal is the answer here
NO_RETRY = Retry(NoBackoff(), 0)


def docker_script(name: str) -> ModuleType:
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
    docker_script("make_secrets").make(folder)
    folder.chmod(0o755)  # the init script and RabbitMQ run as their servers' users here
    return {p.name: p.read_text(encoding="utf-8").strip() for p in folder.iterdir()}


def local_redis(url: str, port: int) -> str:
    """A compose Redis URL (host `redis`), pointed at the private server."""
    return url.replace("@redis:6379/", f"@127.0.0.1:{port}/")


@pytest.fixture
def private_redis(work: Path, secrets: dict[str, str]) -> Iterator[int]:
    """redis-server with exactly the ACL file compose mounts; yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("no redis-server on this machine: install redis-server")
    acl = work / "redis_acl"
    acl.write_text(secrets["redis_acl"] + "\n")
    port = free_port()
    log = work / "redis.log"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--aclfile", str(acl)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=port, retry=NO_RETRY).ping()
            except (redis.AuthenticationError, redis.ResponseError):
                break  # up, and refusing a client that names no user
            except redis.ConnectionError:
                alive = proc.poll() is None
                assert alive and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
