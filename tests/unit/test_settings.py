from pathlib import Path

import pytest

from thumbloop.settings import Settings


def test_defaults_live_under_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.effective_database_url == f"sqlite:///{tmp_path}/thumbloop.db"
    assert s.effective_tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert s.effective_broker_url.startswith("sqla+sqlite:///")
    assert s.model_uri == "models:/thumbloop@champion"
    assert s.device == "auto"


def test_environment_prefix_and_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THUMBLOOP_HOME", str(tmp_path))
    monkeypatch.setenv("THUMBLOOP_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("THUMBLOOP_TELEGRAM_TOKEN", "123:very-secret")
    monkeypatch.setenv("THUMBLOOP_MAX_BATCH_SIZE", "8")
    s = Settings()
    assert s.effective_database_url == "postgresql://u@h/db"
    assert s.max_batch_size == 8
    assert s.telegram_token is not None
    assert s.telegram_token.get_secret_value() == "123:very-secret"
    assert "very-secret" not in repr(s)


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THUMBLOOP_DEVICE", "tpu")
    with pytest.raises(ValueError):
        Settings()
