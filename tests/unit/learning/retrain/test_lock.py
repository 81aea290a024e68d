"""One retrain at a time: on the embedded default the lock is a file under THUMBLOOP_HOME."""

from __future__ import annotations

from pathlib import Path

from learning.retrain.lock import retrain_lock
from thumbloop.settings import Settings


def test_a_second_retrain_is_told_another_is_running(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, redis_url=None)
    with retrain_lock(settings) as first:
        assert first
        with retrain_lock(settings) as second:
            assert not second
    with retrain_lock(settings) as after:
        assert after  # released when the first retrain ended
