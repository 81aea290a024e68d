"""Rows for `thumbloop models`: the registry joined with the thumbs each version received."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from learning.registry.client import configure
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import LIVE, InteractionRow, VoteRow


def _vote_stats(settings: Settings) -> dict[str, tuple[int, float]]:
    engine = make_engine(settings.effective_database_url)
    try:
        with session_scope(engine) as s:
            rows = s.execute(
                select(
                    InteractionRow.model_version, func.count(VoteRow.id), func.avg(VoteRow.value)
                )
                .join(VoteRow, VoteRow.interaction_id == InteractionRow.interaction_id)
                .where(LIVE)
                .group_by(InteractionRow.model_version)
            ).all()
    except Exception:  # no database yet: no vote columns
        return {}
    finally:
        engine.dispose()
    return {str(v): (int(n), (float(avg) + 1) / 2) for v, n, avg in rows}


def list_versions(settings: Settings) -> list[dict[str, Any]]:
    client = configure(settings)
    votes = _vote_stats(settings)
    out = []
    for found in client.search_model_versions(f"name='{settings.model_name}'"):
        # search results carry no aliases in every store; the single-version read does
        mv = client.get_model_version(settings.model_name, found.version)
        tags = mv.tags or {}
        n, rate = votes.get(f"{settings.model_name}/{mv.version}", (0, None))

        def num(key: str, tags: dict[str, str] = tags) -> float | None:
            try:
                return float(tags[key])
            except (KeyError, ValueError):
                return None

        out.append(
            {
                "version": str(mv.version),
                "aliases": list(mv.aliases or []),
                "kind": tags.get("kind"),
                "gate": tags.get("gate"),
                "base_version": tags.get("base_version"),
                "golden_intent_accuracy": num("golden_intent_accuracy"),
                "golden_sentiment_accuracy": num("golden_sentiment_accuracy"),
                "votes": n,
                "thumbs_up_rate": rate,
                "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(
                    timespec="seconds"
                ),
            }
        )
    return sorted(out, key=lambda r: int(r["version"]))
