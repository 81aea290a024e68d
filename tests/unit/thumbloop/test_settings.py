from pathlib import Path

import pytest

from thumbloop.settings import Settings


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
