"""Moving `champion`: promote, roll back, and the history of both as model-version tags.

Each move writes a tag ``promotion.<unix-ms>`` on the version that became champion, with a JSON
value {"action", "from", "to", "who", "at"}; the history is the union of those tags, so it
survives in the registry itself (and moves made in the MLflow UI show up as gaps: the alias
is simply where it is).

Serving refuses a version its admission rule refuses (``serving.admission.refusal``: a failed
gate, or no gate verdict on a version that is not a seed), so promoting or rolling back to one is
refused here too, with the reason. ``promote(..., force=True)`` (``thumbloop promote --force``)
goes through and writes the override tag ``gate.override`` ({"who", "at", "gate"}) on the
version before the alias moves, so serving admits it.
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
from serving.admission import GATE_TAG, OVERRIDE_TAG, refusal
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
    forced: bool = False  # the gate was overridden (`promote --force`)


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
                move = Move(
                    d["action"], d.get("from"), d["to"], d["who"], d["at"], d.get("forced", False)
                )
                moves.append((key, move))
    return [m for _, m in sorted(moves, key=lambda km: int(km[0][len(TAG_PREFIX) :]))]


def _move(settings: Settings, to: str, action: str, who: str | None, force: bool = False) -> Move:
    client = configure(settings)
    name = settings.model_name
    try:
        tags = dict(client.get_model_version(name, to).tags or {})
    except MlflowException as exc:
        raise PromotionError(f"{name} has no version {to}") from exc
    why = refusal(tags)
    if why is not None and not force:
        raise PromotionError(
            f"serving would refuse {name} version {to}: {why}. "
            f"`thumbloop promote --force {to}` overrides the gate (recorded on the version)"
        )
    current = alias_version(client, name, "champion")
    move = Move(
        action,
        str(current.version) if current else None,
        str(to),
        _who(who),
        datetime.now(UTC).isoformat(timespec="seconds"),
        forced=why is not None,
    )
    if move.forced:  # before the alias moves, so serving never sees it unadmitted
        override = {"who": move.who, "at": move.at, "gate": tags.get(GATE_TAG)}
        client.set_model_version_tag(name, str(to), OVERRIDE_TAG, json.dumps(override))
    client.set_registered_model_alias(name, "champion", str(to))
    key = f"{TAG_PREFIX}{int(time.time() * 1000)}"
    client.set_model_version_tag(
        name,
        str(to),
        key,
        json.dumps(move.__dict__ | {"from": move.from_version, "to": move.to_version}),
    )
    return move


def promote(settings: Settings, version: str, who: str | None = None, force: bool = False) -> Move:
    """Make ``version`` the champion; a version serving would refuse needs ``force``."""
    return _move(settings, str(version), "promote", who, force)


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
