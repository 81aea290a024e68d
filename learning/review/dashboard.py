"""The dashboard's numbers: how the loop is doing, per model version and per day, aggregated in
the database (a handful of GROUP BY queries, whatever the number of interactions).

- **daily**: per UTC day and model version, the interactions answered, how many replies asked
  to clarify (the response id carries ``clarify``), how many messages had negative sentiment,
  and the live 👍/👎 on those replies. A day is the day of the interaction, so a vote counts for
  the version and the day of the reply it rates.
- **downvoted intents**: the predicted intents with the most 👎, per model version.
- **corrections**: the most frequent predicted → corrected pairs, from reviewers' labels
  (``reviewed_interactions``: relabels and out of scope) and users' intent picks (live
  ``corrections`` of kind ``intent``), each counted apart.
- **first answers**: the time each model version first answered; the dashboard marks that day
  as where the champion changed. It is read from the interactions (the review app holds no
  MLflow client and stays light), so a version that never answered has no marker, and a canary
  or a rollback shows as the day the other version first (or again) answered only the first
  time.

Filters are the date range (UTC, inclusive) and the platform; they apply to the interaction
(its time and platform). Forgotten users' interactions are deleted by ``thumbloop forget``, so
they leave every number with them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Engine, case, func, select

from learning.review.filters import PLATFORMS
from thumbloop.store.db import session_scope
from thumbloop.store.schema import (
    LIVE,
    CorrectionRow,
    InteractionRow,
    ReviewedInteractionRow,
    VoteRow,
)

M = InteractionRow
TOP_INTENTS = 10
TOP_PAIRS = 15


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class DashboardFilters:
    since: date | None = None
    until: date | None = None  # inclusive
    platform: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> DashboardFilters:
        def text(name: str) -> str:
            return str(params.get(name, "")).strip()[:32]

        platform = text("platform")
        return cls(
            since=_date(text("since")),
            until=_date(text("until")),
            platform=platform if platform in PLATFORMS else "",
        )

    def params(self) -> dict[str, str]:
        out = {"since": self.since, "until": self.until, "platform": self.platform}
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in out.items() if v}

    def query(self) -> str:
        return urlencode(self.params())

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.platform:
            out.append(M.platform == self.platform)
        if self.since:
            out.append(M.created_at >= datetime.combine(self.since, time(), UTC))
        if self.until:
            out.append(M.created_at < datetime.combine(self.until + timedelta(days=1), time(), UTC))
        return out


def _day(engine: Engine) -> ColumnElement[Any]:
    """The interaction's UTC day as ``YYYY-MM-DD`` text, in the database."""
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", M.created_at), "YYYY-MM-DD")
    # SQLite keeps times as ISO text in UTC (the writers store aware UTC times)
    return func.substr(M.created_at, 1, 10)


@dataclass(frozen=True)
class Daily:
    day: str
    model_version: str
    interactions: int
    unsure: int
    negative: int
    up: int
    down: int

    @property
    def up_rate(self) -> float | None:
        return self.up / (self.up + self.down) if self.up + self.down else None

    @property
    def unsure_share(self) -> float | None:
        return self.unsure / self.interactions if self.interactions else None

    @property
    def negative_share(self) -> float | None:
        return self.negative / self.interactions if self.interactions else None


def daily(engine: Engine, f: DashboardFilters) -> list[Daily]:
    """Per (day, model version), oldest day first: two aggregate queries, merged here."""
    day = _day(engine).label("day")
    where = f.conditions()
    with session_scope(engine) as s:
        counts = s.execute(
            select(
                day,
                M.model_version,
                func.count(),
                func.sum(case((M.response_id.contains("clarify"), 1), else_=0)),
                func.sum(case((M.sentiment == "negative", 1), else_=0)),
            )
            .where(*where)
            .group_by(day, M.model_version)
        ).all()
        votes = s.execute(
            select(
                day,
                M.model_version,
                func.sum(case((VoteRow.value > 0, 1), else_=0)),
                func.sum(case((VoteRow.value < 0, 1), else_=0)),
            )
            .join(VoteRow, VoteRow.interaction_id == M.interaction_id)
            .where(LIVE, *where)
            .group_by(day, M.model_version)
        ).all()
    tally = {(str(d), str(v)): (int(up or 0), int(down or 0)) for d, v, up, down in votes}
    out = [
        Daily(
            str(d), str(v), int(n), int(u or 0), int(neg or 0), *tally.get((str(d), str(v)), (0, 0))
        )
        for d, v, n, u, neg in counts
    ]
    return sorted(out, key=lambda r: (r.day, r.model_version))


@dataclass(frozen=True)
class IntentDownvotes:
    intent: str
    model_version: str
    down: int
    up: int


def downvoted_intents(engine: Engine, f: DashboardFilters) -> list[IntentDownvotes]:
    """The ``TOP_INTENTS`` predicted intents with the most 👎 over every version, each split
    per model version (most 👎 first)."""
    down = func.sum(case((VoteRow.value < 0, 1), else_=0))
    up = func.sum(case((VoteRow.value > 0, 1), else_=0))
    joined = select(M.intent).join(VoteRow, VoteRow.interaction_id == M.interaction_id)
    with session_scope(engine) as s:
        top = [
            name
            for name, n in s.execute(
                joined.add_columns(down.label("down"))
                .where(LIVE, *f.conditions())
                .group_by(M.intent)
                .order_by(down.desc(), M.intent)
                .limit(TOP_INTENTS)
            )
            if n
        ]
        if not top:
            return []
        rows = s.execute(
            joined.add_columns(M.model_version, down, up)
            .where(LIVE, M.intent.in_(top), *f.conditions())
            .group_by(M.intent, M.model_version)
        ).all()
    rank = {name: k for k, name in enumerate(top)}
    out = [IntentDownvotes(str(i), str(v), int(d or 0), int(u or 0)) for i, v, d, u in rows]
    return sorted(out, key=lambda r: (rank[r.intent], -r.down, r.model_version))


@dataclass(frozen=True)
class CorrectedPair:
    predicted: str
    corrected: str
    by_reviewers: int  # messages a reviewer labelled so
    by_users: int  # users' picks (one per user and message)

    @property
    def total(self) -> int:
        return self.by_reviewers + self.by_users


def corrected_pairs(engine: Engine, f: DashboardFilters) -> list[CorrectedPair]:
    """The ``TOP_PAIRS`` most frequent predicted → corrected pairs (a label equal to the
    prediction is a confirmation, not a correction)."""
    r, c = ReviewedInteractionRow, CorrectionRow
    n = func.count()
    with session_scope(engine) as s:
        reviewed = s.execute(
            select(M.intent, r.label, n)
            .join(r, r.interaction_id == M.interaction_id)
            .where(r.label.is_not(None), r.label != M.intent, *f.conditions())
            .group_by(M.intent, r.label)
        ).all()
        picked = s.execute(
            select(M.intent, c.label, n)
            .join(c, c.interaction_id == M.interaction_id)
            .where(c.kind == "intent", c.label.is_not(None), c.label != M.intent, *f.conditions())
            .group_by(M.intent, c.label)
        ).all()
    pairs: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for predicted, label, count in reviewed:
        pairs[str(predicted), str(label)][0] += int(count)
    for predicted, label, count in picked:
        pairs[str(predicted), str(label)][1] += int(count)
    out = [CorrectedPair(p, c_, a, b) for (p, c_), (a, b) in pairs.items()]
    return sorted(out, key=lambda x: (-x.total, x.predicted, x.corrected))[:TOP_PAIRS]


@dataclass(frozen=True)
class FirstAnswer:
    model_version: str
    at: datetime

    @property
    def day(self) -> str:
        return self.at.date().isoformat()


def first_answers(engine: Engine) -> list[FirstAnswer]:
    """When each model version first answered, in that order: where the champion changed.
    Not narrowed by the filters: a change is a fact about the whole deployment."""
    with session_scope(engine) as s:
        rows = s.execute(
            select(M.model_version, func.min(M.created_at)).group_by(M.model_version)
        ).all()
    out = [
        FirstAnswer(str(v), at if at.tzinfo else at.replace(tzinfo=UTC))
        for v, at in rows
        if at is not None
    ]
    return sorted(out, key=lambda x: (x.at, x.model_version))
