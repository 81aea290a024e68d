"""The inbox's filters: parsed leniently from a query string (a stale bookmark shows the
inbox, not an error), written back without their defaults, and turned into SQL conditions.

An interaction needs a look when a user downvoted it, the bot was unsure (its reply asked to
clarify: the response id carries ``clarify``, see docs/design.md), a user corrected it (a live
follow-up pick of another intent, or "something else"), or the predicted intent's confidence
was below ``review_low_confidence``. It leaves the inbox once reviewed, once
retention blanked its text, or at once when its user is forgotten. Conditions are on the
inbox's index (``review_items``, :mod:`learning.review.index`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, exists, or_, select

from thumbloop.store.schema import CorrectionRow, ForgottenUserRow, ReviewItemRow, VoteRow

SIGNALS = ("any", "downvoted", "unsure", "corrected", "low_confidence")
CORRECTED_KINDS = ("intent", "other")  # "the answer didn't help" is no doubt about the intent
SORTS = ("count", "recent")
PLATFORMS = ("telegram", "slack", "cli", "api", "simulator")
K = ReviewItemRow  # the inbox reads its index, not the interactions


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Filters:
    intent: str = ""
    model: str = ""
    platform: str = ""
    since: date | None = None
    until: date | None = None  # inclusive
    signal: str = "any"
    sort: str = "count"
    page: int = 1
    reveal: bool = False  # show messages unredacted

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Filters:
        def text(name: str) -> str:
            return str(params.get(name, "")).strip()[:128]

        page = text("page")
        return cls(
            intent=text("intent"),
            model=text("model"),
            platform=text("platform") if text("platform") in PLATFORMS else "",
            since=_date(text("since")),
            until=_date(text("until")),
            signal=text("signal") if text("signal") in SIGNALS else "any",
            sort=text("sort") if text("sort") in SORTS else "count",
            page=max(1, int(page)) if page.isdigit() and len(page) < 7 else 1,
            reveal=text("reveal") in ("1", "on", "true"),
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """The non-default filters as query parameters (``changes`` applied first)."""
        current = replace(self, **changes)
        default = type(self)()
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(current, f.name)
            if value == getattr(default, f.name):
                continue
            out[f.name] = (
                "1"
                if value is True
                else value.isoformat()
                if isinstance(value, date)
                else str(value)
            )
        return out

    def query(self, **changes: Any) -> str:
        return urlencode(self.params(**changes))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def downvoted() -> ColumnElement[bool]:
    # one set of 👎'd ids per query (SQLite and PostgreSQL hash it once), not a lookup per row
    return K.interaction_id.in_(select(VoteRow.interaction_id).where(VoteRow.value < 0))


def corrected() -> ColumnElement[bool]:
    # a withdrawn correction is kind "withdrawn": the kinds asked for are the live ones
    c = CorrectionRow
    return K.interaction_id.in_(select(c.interaction_id).where(c.kind.in_(CORRECTED_KINDS)))


def unsure() -> ColumnElement[bool]:
    return K.unsure.is_(True)


def low_confidence(threshold: float) -> ColumnElement[bool]:
    return K.confidence < threshold


def not_forgotten() -> ColumnElement[bool]:
    """Leaves out a forgotten user's messages at once (the tombstone of ``thumbloop forget``),
    before the next sync deletes their index rows."""
    f = ForgottenUserRow
    return ~exists().where(f.user_hash == K.user_hash, K.created_at < f.forgotten_at)


def conditions(f: Filters, threshold: float) -> list[ColumnElement[bool]]:
    """What an indexed interaction must satisfy to be listed under ``f``: not reviewed, not
    gone, showing the chosen signal, and matching every filter."""
    signal = {
        "any": or_(downvoted(), unsure(), corrected(), low_confidence(threshold)),
        "downvoted": downvoted(),
        "unsure": unsure(),
        "corrected": corrected(),
        "low_confidence": low_confidence(threshold),
    }[f.signal]
    out: list[ColumnElement[bool]] = [
        K.reviewed.is_(False),
        K.gone.is_(False),
        signal,
        not_forgotten(),
    ]
    if f.intent:
        out.append(K.intent == f.intent)
    if f.model:
        out.append(K.model_version == f.model)
    if f.platform:
        out.append(K.platform == f.platform)
    if f.since:
        out.append(K.created_at >= datetime.combine(f.since, time(), UTC))
    if f.until:
        out.append(K.created_at < datetime.combine(f.until + timedelta(days=1), time(), UTC))
    return [and_(*out)]
