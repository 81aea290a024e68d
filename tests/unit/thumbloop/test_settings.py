import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from thumbloop.settings import DEV_KEY, Settings


def test_defaults_live_under_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.effective_database_url == f"sqlite:///{tmp_path}/thumbloop.db"
    assert s.effective_tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert s.effective_broker_url.startswith("sqla+sqlite:///")
    assert s.model_uri == "models:/thumbloop@champion"
    assert s.compute.device == "auto"


def test_environment_prefix_and_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THUMBLOOP_HOME", str(tmp_path))
    monkeypatch.setenv("THUMBLOOP_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("THUMBLOOP_TELEGRAM_TOKEN", "123:very-secret")
    monkeypatch.setenv("THUMBLOOP_MAX_BATCH_SIZE", "8")
    s = Settings()
    assert s.effective_database_url == "postgresql://u@h/db"
    assert s.serving.max_batch_size == 8
    assert s.bots.telegram_token is not None
    assert s.bots.telegram_token.get_secret_value() == "123:very-secret"
    assert "very-secret" not in repr(s)


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THUMBLOOP_DEVICE", "tpu")
    with pytest.raises(ValueError):
        Settings()


def test_redis_broker_rescans_unacked_tasks_within_the_visibility_timeout(tmp_path: Path) -> None:
    from learning.worker.celery_app import create_celery

    def options(visibility_timeout_s: int = 3600) -> dict[str, int]:
        settings = Settings(
            home=tmp_path,
            broker_url="redis://127.0.0.1:6379/9",
            visibility_timeout_s=visibility_timeout_s,
        )
        return dict(create_celery(settings).conf.broker_transport_options)

    quick = options(3)
    assert quick["visibility_timeout"] == 3
    # every scan counts (no throttle), at least once a second, mutex never outliving a few scans
    assert quick["unacked_restore_throttle"] == 1
    assert quick["unacked_restore_interval"] == 1
    assert quick["unacked_mutex_expire"] == 10
    slow = options()
    assert slow["visibility_timeout"] == 3600
    assert slow["unacked_restore_interval"] * slow["unacked_restore_throttle"] == 60
    assert slow["unacked_mutex_expire"] == 300
    embedded = Settings(home=tmp_path)
    assert not create_celery(embedded).conf.broker_transport_options
    rabbit = Settings(home=tmp_path, broker_url="amqp://guest:guest@127.0.0.1:5672//")
    assert not create_celery(rabbit).conf.broker_transport_options  # redelivery is the broker's


def test_the_two_keys_and_their_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from thumbloop.identity import check_keys, resolve_keys

    monkeypatch.setenv("THUMBLOOP_HOME", str(tmp_path))
    monkeypatch.setenv("THUMBLOOP_HMAC_SECRET", "h" * 64)
    old = resolve_keys(Settings())  # a deployment from before the split: one key for both
    assert old.id_key == old.signing_key == "h" * 64 and old.id_key_from == "THUMBLOOP_HMAC_SECRET"
    monkeypatch.setenv("THUMBLOOP_ID_KEY", "i" * 64)
    monkeypatch.setenv("THUMBLOOP_SIGNING_KEY", "s" * 64)
    monkeypatch.setenv("THUMBLOOP_SIGNING_KEY_PREVIOUS", "h" * 64)
    keys = check_keys(Settings())
    assert (keys.id_key, keys.signing_key, keys.signing_key_previous) == (
        "i" * 64,
        "s" * 64,
        "h" * 64,
    )
    assert not any(k * 64 in repr(keys) + repr(Settings()) for k in "ish")


def test_the_development_key_is_refused_unless_thumbloop_dev(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from thumbloop.identity import KeyConfigError, check_keys

    monkeypatch.setenv("THUMBLOOP_HOME", str(tmp_path))
    with pytest.raises(KeyConfigError, match="openssl rand -hex 32"):
        check_keys(Settings())
    monkeypatch.setenv("THUMBLOOP_SIGNING_KEY_PREVIOUS", DEV_KEY)  # public, even as previous
    monkeypatch.setenv("THUMBLOOP_HMAC_SECRET", "h" * 64)
    with pytest.raises(KeyConfigError, match="THUMBLOOP_SIGNING_KEY_PREVIOUS"):
        check_keys(Settings())
    monkeypatch.setenv("THUMBLOOP_DEV", "true")
    assert Settings().bots.dev and check_keys(Settings()).signing_key_previous == DEV_KEY


def test_up_generates_private_keys_per_home_once(tmp_path: Path) -> None:
    from thumbloop.identity import check_keys, ensure_home_keys, resolve_keys

    fresh = Settings(home=tmp_path / "a", hmac_secret=DEV_KEY)
    path = ensure_home_keys(fresh)
    assert path == tmp_path / "a" / "keys.json" and stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert all(len(stored[k]) == 64 for k in ("id_key", "signing_key"))
    assert stored["id_key"] != stored["signing_key"]
    keys = check_keys(fresh)  # no development mode needed: the keys are the home's own
    assert (keys.id_key, keys.signing_key) == (stored["id_key"], stored["signing_key"])
    assert keys.id_key_from == str(path)
    assert ensure_home_keys(fresh) == path and json.loads(path.read_text()) == stored  # kept
    other = Settings(home=tmp_path / "b", hmac_secret=DEV_KEY)
    assert resolve_keys(other).id_key == DEV_KEY  # a home without the file: nothing generated
    ensure_home_keys(other)
    assert resolve_keys(other).id_key not in (DEV_KEY, stored["id_key"])
    # keys set in the environment win, and then nothing is generated
    legacy = Settings(home=tmp_path / "c", hmac_secret="h" * 64)
    assert ensure_home_keys(legacy) is None and not (tmp_path / "c" / "keys.json").exists()
    own = fresh.replace(id_key="i" * 64, signing_key="s" * 64)
    assert ensure_home_keys(own) is None and resolve_keys(own).id_key == "i" * 64


def test_home_keys_are_made_once_under_races_and_kept_private(tmp_path: Path) -> None:
    from thumbloop.identity import KeyConfigError, ensure_home_keys, resolve_keys

    settings = Settings(home=tmp_path, hmac_secret=DEV_KEY)
    with ThreadPoolExecutor(8) as pool:
        made = list(
            pool.map(
                lambda _: resolve_keys(settings) if ensure_home_keys(settings) else None, range(16)
            )
        )
    assert len({(k.id_key, k.signing_key) for k in made if k}) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json"]  # no temporary left
    path = tmp_path / "keys.json"
    path.chmod(0o644)
    ensure_home_keys(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("{not json")
    with pytest.raises(KeyConfigError, match=r"keys\.json"):
        resolve_keys(settings)
