"""Beat schedules the maintenance tasks at the intervals the settings give."""

from __future__ import annotations

from pathlib import Path

from learning.worker.celery_app import create_celery
from learning.worker.maintenance import (
    APPLY_RETENTION,
    GROUP_INTERVAL_S,
    GROUP_REVIEW_MESSAGES,
    RECONCILE_POSTERIORS,
    REDRIVE_DEAD_LETTERS,
    RETENTION_INTERVAL_S,
)
from thumbloop.settings import Settings
from thumbloop.task_names import DEFAULT_QUEUE, RETRAIN_IF_DUE, TRAINING_QUEUE


def test_beat_schedules_the_maintenance_tasks(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, reconcile_interval_s=30, redrive_interval_s=20)
    app = create_celery(settings)
    due = {
        e["task"]: (e["schedule"], e["options"]["queue"]) for e in app.conf.beat_schedule.values()
    }
    assert due == {
        RETRAIN_IF_DUE: (60.0, TRAINING_QUEUE),
        RECONCILE_POSTERIORS: (30.0, DEFAULT_QUEUE),
        REDRIVE_DEAD_LETTERS: (20.0, DEFAULT_QUEUE),
        APPLY_RETENTION: (RETENTION_INTERVAL_S, DEFAULT_QUEUE),
        GROUP_REVIEW_MESSAGES: (GROUP_INTERVAL_S, DEFAULT_QUEUE),
    }
    assert {
        RECONCILE_POSTERIORS,
        REDRIVE_DEAD_LETTERS,
        APPLY_RETENTION,
        GROUP_REVIEW_MESSAGES,
    } <= set(app.tasks)


def test_retention_keeps_everything_by_default(tmp_path: Path) -> None:
    assert Settings(home=tmp_path).learning.retention_days is None


def test_a_redis_visibility_timeout_under_twice_the_retry_wait_is_warned_of(
    tmp_path: Path,
) -> None:
    from learning.worker.celery_app import warn_short_visibility

    redis = "redis://127.0.0.1:6379/0"
    short = Settings(home=tmp_path, broker_url=redis, visibility_timeout_s=5)
    assert warn_short_visibility(short)
    assert not warn_short_visibility(Settings(home=tmp_path, broker_url=redis))  # 3,600 s
    # RabbitMQ and the embedded broker have no visibility timeout
    rabbit = "amqp://guest:guest@127.0.0.1:5672//"
    assert not warn_short_visibility(
        Settings(home=tmp_path, broker_url=rabbit, visibility_timeout_s=5)
    )
