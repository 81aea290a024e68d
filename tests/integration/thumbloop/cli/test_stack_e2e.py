"""`thumbloop up` end to end: chat, rate, retrain, promote, hot swap, shut down.

The stack runs as real processes (serving worker, Celery worker + beat, MLflow server) from the
CLI, as a user starts it; the chat is `thumbloop chat --script`. Once on the embedded default
(SQLite broker, database and MLflow; no Redis, no PostgreSQL), once with Redis as broker and
PostgreSQL as database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.integration.servers import flushed_redis, free_port, fresh_postgres_db, wait_until
from tests.services import redis_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500), pytest.mark.redis, pytest.mark.postgres]

REDIS_DB = redis_url(9)
FIRST = """\
# one message per tiny intent, rated
> my new card still hasn't arrived
+
> how can I change my PIN?
+
> what exchange rate do you use?
+
> someone stole my card
+
> hello!
+
> my card hasn't come yet, where is it?
-
"""
SECOND = "> has my card been sent yet?\n+\n"


def _env(home: Path, domain: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBLOOP_")}
    env.update(
        THUMBLOOP_HOME=str(home),
        THUMBLOOP_DOMAIN_DIR=str(domain),
        THUMBLOOP_DEVICE="cpu",
        THUMBLOOP_RETRAIN_MIN_VOTES="5",
        THUMBLOOP_RETRAIN_CHECK_INTERVAL_S="2",
        THUMBLOOP_WATCH_INTERVAL_S="1",
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return env


def _thumbloop(*args: str) -> list[str]:
    return [sys.executable, "-m", "thumbloop", *args]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _thumbloop(*args), env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _chat(env: dict[str, str], api: str, script: str, tmp: Path) -> list[dict[str, object]]:
    path = tmp / f"script-{len(list(tmp.glob('script-*')))}.txt"
    path.write_text(script, encoding="utf-8")
    out = _cli(env, "chat", "--api", api, "--script", str(path), "--json", "--user", "e2e")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _processes_of(home: Path) -> list[int]:
    """Pids whose environment names this stack's home: anything `up` started."""
    marker = f"THUMBLOOP_HOME={home}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # gone meanwhile
        return ""


def _versions(tracking_uri: str) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return sorted(str(v.version) for v in client.search_model_versions("name='thumbloop'"))


def _run_the_tour(tmp_path: Path, env: dict[str, str]) -> None:
    home = Path(env["THUMBLOOP_HOME"])
    port, ui_port = free_port(), free_port()
    api = f"http://127.0.0.1:{port}"
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        _thumbloop("up", "--port", str(port), "--mlflow-port", str(ui_port)),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            return _healthy(f"{api}/readyz")

        wait_until(ready, timeout=900, interval=1, what="the seed model to be trained and served")
        wait_until(
            lambda: _healthy(f"http://127.0.0.1:{ui_port}/health"), timeout=120, what="MLflow UI"
        )
        commands = [_cmdline(pid) for pid in _processes_of(home)]
        assert any("mlflow" in c and "server" in c for c in commands), commands
        assert not any("huey_consumer" in c for c in commands)  # MLflow's unused job runner
        first = _chat(env, api, FIRST, tmp_path)
        replies = [r for r in first if r["step"] == "message"]
        votes = [r for r in first if r["step"] == "vote"]
        assert len(replies) == 6 and len(votes) == 6
        assert {r["model_version"] for r in replies} == {"thumbloop/1"}
        assert {"card_arrival", "change_pin", "greeting"} <= {r["intent"] for r in replies}

        tracking = f"sqlite:///{home / 'mlflow.db'}"
        wait_until(lambda: "2" in _versions(tracking), timeout=600, interval=2, what="a retrain")
        promoted = _cli(env, "promote", "2", "--who", "e2e")
        assert promoted.returncode == 0, promoted.stderr
        assert "1 -> 2" in promoted.stdout
        wait_until(
            lambda: httpx.get(f"{api}/v1/model", timeout=2).json()["version"] == "thumbloop/2",
            timeout=120,
            what="the serving worker to swap in version 2",
        )
        second = _chat(env, api, SECOND, tmp_path)
        assert second[0]["model_version"] == "thumbloop/2"
        assert second[1] == {
            "step": "vote",
            "value": 1,
            "interaction_id": second[0]["interaction_id"],
        }

        ui = f"http://127.0.0.1:{ui_port}"
        wait_until(lambda: _ok(f"{ui}/health"), timeout=120, what="the MLflow UI to answer")
        models = httpx.get(f"{ui}/ajax-api/2.0/mlflow/registered-models/search", timeout=10)
        assert models.json()["registered_models"][0]["name"] == "thumbloop"
        database = env.get("THUMBLOOP_DATABASE_URL") or f"sqlite:///{home / 'thumbloop.db'}"
        wait_until(
            lambda: _counts(database) == (7, 7), timeout=60, what="every reply and vote stored"
        )
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            up.wait(timeout=60)
        finally:
            if up.poll() is None:
                up.kill()
            log.close()
    output = (tmp_path / "up.log").read_text(errors="replace")
    assert "SIGINT received" in output
    assert "serving stopped" in output and "worker stopped" in output
    wait_until(lambda: not _processes_of(home), timeout=30, what="every stack process to exit")


def _counts(database_url: str) -> tuple[int, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return (
                conn.execute(text("select count(*) from interactions")).scalar_one(),
                conn.execute(text("select count(*) from votes")).scalar_one(),
            )
    finally:
        engine.dispose()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_tour_on_the_embedded_default(tmp_path: Path, tiny_domain: Path) -> None:
    env = _env(tmp_path / "home", tiny_domain, {})
    _run_the_tour(tmp_path, env)
    # nothing but files under the home: SQLite stores, artifacts
    assert (tmp_path / "home" / "broker.db").exists()
    assert (tmp_path / "home" / "thumbloop.db").exists()


@pytest.fixture
def clean_redis() -> Iterator[str]:
    with flushed_redis(REDIS_DB) as url:
        yield url


def test_the_tour_on_redis_and_postgres(
    tmp_path: Path, tiny_domain: Path, clean_redis: str
) -> None:
    with fresh_postgres_db() as pg:
        env = _env(
            tmp_path / "home",
            tiny_domain,
            {
                "THUMBLOOP_DATABASE_URL": pg,
                "THUMBLOOP_BROKER_URL": clean_redis,
                "THUMBLOOP_RESULT_BACKEND": clean_redis,
                "THUMBLOOP_REDIS_URL": clean_redis,
            },
        )
        _run_the_tour(tmp_path, env)
        assert not (tmp_path / "home" / "broker.db").exists()
        assert not (tmp_path / "home" / "thumbloop.db").exists()
        # the reply posteriors live in Redis here: the worker moved them with each vote
        keys = redis.Redis.from_url(clean_redis).keys("thumbloop:posterior:thumbloop:*")
        assert keys
