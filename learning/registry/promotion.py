"""Moving `champion`: promote, roll back, and the history of both as model-version tags.

Each move writes a tag ``promotion.<unix-ms>`` on the version that became champion, with a JSON
value {"action", "from", "to", "who", "at"}; the history is the union of those tags, so it
survives in the registry itself (and moves made in the MLflow UI show up as gaps: the alias
is simply where it is).
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from learning.registry.client import alias_version, configure
from thumbloop.settings import Settings

TAG_PREFIX = "promotion."


class PromotionError(RuntimeError):
    pass


@dataclass(frozen=True)
class Move:
    action: str
    from_version: str | None
    to_version: str
    who: str
    at: str


def _who(who: str | None) -> str:
    if who:
        return who
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def history(client: MlflowClient, name: str) -> list[Move]:
    moves: list[tuple[str, Move]] = []
    for mv in client.search_model_versions(f"name='{name}'"):
        for key, value in (mv.tags or {}).items():
            if key.startswith(TAG_PREFIX):
                d: dict[str, Any] = json.loads(value)
                moves.append((key, Move(d["action"], d.get("from"), d["to"], d["who"], d["at"])))
    return [m for _, m in sorted(moves, key=lambda km: int(km[0][len(TAG_PREFIX) :]))]


def _move(settings: Settings, to: str, action: str, who: str | None) -> Move:
    client = configure(settings)
    name = settings.model_name
    try:
        client.get_model_version(name, to)
    except MlflowException as exc:
        raise PromotionError(f"{name} has no version {to}") from exc
    current = alias_version(client, name, "champion")
    move = Move(
        action,
        str(current.version) if current else None,
        str(to),
        _who(who),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    client.set_registered_model_alias(name, "champion", str(to))
    key = f"{TAG_PREFIX}{int(time.time() * 1000)}"
    client.set_model_version_tag(
        name,
        str(to),
        key,
        json.dumps(move.__dict__ | {"from": move.from_version, "to": move.to_version}),
    )
    return move


def promote(settings: Settings, version: str, who: str | None = None) -> Move:
    return _move(settings, str(version), "promote", who)


def rollback(settings: Settings, who: str | None = None) -> Move:
    """Move `champion` back to the version it replaced most recently."""
    client = configure(settings)
    current = alias_version(client, settings.model_name, "champion")
    if current is None:
        raise PromotionError(f"{settings.model_name} has no champion")
    for move in reversed(history(client, settings.model_name)):
        if move.to_version == str(current.version) and move.from_version:
            return _move(settings, move.from_version, "rollback", who)
    raise PromotionError(f"no earlier champion recorded before version {current.version}")
