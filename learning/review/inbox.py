"""The inbox's reads: a page of groups (near-duplicate messages that need a look) with what a
reviewer decides on, one group's messages, the values the filters offer, the action log.

A page is two steps: SQL groups the matching rows of the inbox's index (``review_items``) by
group key and orders the groups (by size or by their newest message); then the page's groups
alone are described: intents, model versions, platforms, signals, votes, and the newest message
of each, read from ``interactions`` (the index holds no text)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select
from sqlalchemy.orm import Session

from learning.review.filters import CORRECTED_KINDS, Filters, conditions
from thumbloop.store.db import session_scope
from thumbloop.store.schema import (
    LIVE,
    LIVE_CORRECTION,
    CorrectionRow,
    InteractionRow,
    ReviewActionRow,
    ReviewItemRow,
    VoteRow,
)

PAGE_SIZE = 50
GROUP_ROWS = 200  # messages shown on one group's page

M, K = InteractionRow, ReviewItemRow  # messages and their index rows, short as in SQL


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass
class Group:
    key: str
    count: int
    last_at: datetime
    text: str = ""  # one member's message (the newest), as stored: redact before showing
    reply: str = ""
    response_id: str = ""
    intents: Counter[str] = field(default_factory=Counter)
    confidence: dict[str, float] = field(default_factory=dict)  # mean, per predicted intent
    models: Counter[str] = field(default_factory=Counter)
    platforms: Counter[str] = field(default_factory=Counter)
    downvoted: int = 0
    unsure: int = 0
    low_confidence: int = 0
    up: int = 0
    down: int = 0
    users: int = 0
    # users' follow-ups after a 👎 (live corrections): intents picked (one per user and
    # message), "something else", "right topic, the answer didn't help"; messages corrected
    picked: Counter[str] = field(default_factory=Counter)
    other: int = 0
    unhelpful: int = 0
    corrected: int = 0

    @property
    def intent(self) -> str:
        """The intent predicted most often in the group (what "confirm" confirms)."""
        return self.intents.most_common(1)[0][0] if self.intents else ""

    @property
    def offered(self) -> list[str]:
        """The intents a clarifying reply offered (``…+clarify:a|b``), for the label picks."""
        _, sep, options = self.response_id.partition("+clarify:")
        return [o for o in options.split("|") if o] if sep else []


@dataclass(frozen=True)
class Page:
    groups: list[Group]
    has_next: bool


def groups_page(engine: Engine, f: Filters, threshold: float) -> Page:
    where = conditions(f, threshold)
    n, last = func.count().label("n"), func.max(K.created_at).label("last")
    order: list[Any] = [n.desc(), last.desc()] if f.sort == "count" else [last.desc(), n.desc()]
    with session_scope(engine) as s:
        rows = s.execute(
            select(K.group_key, n, last)
            .where(*where)
            .group_by(K.group_key)
            .order_by(*order, K.group_key)
            .limit(PAGE_SIZE + 1)
            .offset((f.page - 1) * PAGE_SIZE)
        ).all()
        groups = [Group(key, int(count), _aware(at)) for key, count, at in rows[:PAGE_SIZE]]
        if groups:
            _describe(s, {g.key: g for g in groups}, where, threshold)
    # a group whose every message was deleted since the index last synced shows no text
    return Page([g for g in groups if g.text], len(rows) > PAGE_SIZE)


SAMPLES = 5  # newest members per group tried for the text shown (one may be just deleted)


def _describe(
    s: Session, by_key: dict[str, Group], where: list[ColumnElement[bool]], threshold: float
) -> None:
    """Fill in the page's groups from their members' index rows, read once and summed here:
    one query under the filters (the planner then keeps one plan, whatever the filters), the
    votes on the groups, and the newest messages' text."""
    rows = s.execute(
        select(
            K.group_key,
            K.interaction_id,
            K.intent,
            K.model_version,
            K.platform,
            K.confidence,
            K.unsure,
            K.user_hash,
        )
        .where(*where, K.group_key.in_(list(by_key)))
        # newest first within a group: the samples are the first few (no times parsed here)
        .order_by(K.group_key, K.created_at.desc(), K.interaction_id)
    ).all()
    sums: dict[tuple[str, str], float] = defaultdict(float)
    users: dict[str, set[str]] = defaultdict(set)
    newest: dict[str, list[str]] = defaultdict(list)
    key_of: dict[str, str] = {}
    for key, iid, intent, model, platform, conf, clar, user in rows:
        g = by_key[key]
        g.intents[intent] += 1
        g.models[model] += 1
        g.platforms[platform] += 1
        sums[key, intent] += conf
        g.unsure += bool(clar)
        g.low_confidence += conf < threshold
        users[key].add(user)
        if len(newest[key]) < SAMPLES:
            newest[key].append(iid)
        key_of[iid] = key
    for (key, intent), total in sums.items():
        by_key[key].confidence[intent] = total / by_key[key].intents[intent]
    for key, seen in users.items():
        by_key[key].users = len(seen)
    downvoted_ids: set[str] = set()
    for key, iid, value in s.execute(
        select(K.group_key, VoteRow.interaction_id, VoteRow.value)
        .join(VoteRow, VoteRow.interaction_id == K.interaction_id)
        .where(K.group_key.in_(list(by_key)), LIVE)
    ):
        if iid in key_of:  # a vote on a message the filters leave out does not count
            by_key[key].up += value > 0
            by_key[key].down += value < 0
            if value < 0:
                downvoted_ids.add(iid)
    for iid in downvoted_ids:
        by_key[key_of[iid]].downvoted += 1
    corrected_ids: set[str] = set()
    for iid, kind, label in _corrections(s, K.group_key.in_(list(by_key))):
        if iid in key_of:
            g = by_key[key_of[iid]]
            _count(g, kind, label)
            if kind in CORRECTED_KINDS:
                corrected_ids.add(iid)
    for iid in corrected_ids:
        by_key[key_of[iid]].corrected += 1
    rank = {iid: k for ids in newest.values() for k, iid in enumerate(ids)}
    texts = s.execute(
        select(M.interaction_id, M.text, M.reply_text, M.response_id).where(
            M.interaction_id.in_(list(rank)), M.text.is_not(None)
        )
    ).all()
    for iid, text, reply, rid in sorted(texts, key=lambda r: -rank[r[0]]):
        g = by_key[key_of[iid]]  # the newest one with text is written last
        g.text, g.reply, g.response_id = text or "", reply or "", rid


def _corrections(s: Session, where: ColumnElement[bool]) -> list[tuple[str, str, str | None]]:
    """(interaction id, kind, label) of the live corrections on the index rows under ``where``."""
    c = CorrectionRow
    rows = s.execute(
        select(c.interaction_id, c.kind, c.label)
        .join(K, K.interaction_id == c.interaction_id)
        .where(where, LIVE_CORRECTION)
    ).all()
    return [(str(i), str(k), label) for i, k, label in rows]


def _count(g: Group | Member, kind: str, label: str | None) -> None:
    if kind == "intent" and label:
        g.picked[label] += 1
    elif kind == "other":
        g.other += 1
    elif kind == "unhelpful":
        g.unhelpful += 1


@dataclass
class Member:
    interaction_id: str
    text: str
    intent: str
    confidence: float
    reply: str
    response_id: str
    model: str
    platform: str
    user_hash: str
    at: datetime
    up: int
    down: int
    picked: Counter[str] = field(default_factory=Counter)  # users' corrections, as on Group
    other: int = 0
    unhelpful: int = 0


def group_members(
    engine: Engine, key: str, f: Filters, threshold: float, limit: int = GROUP_ROWS
) -> tuple[Group | None, list[Member]]:
    """One group's summary and its newest messages under the filters (None: nothing left)."""
    where = [*conditions(f, threshold), K.group_key == key]
    with session_scope(engine) as s:
        head = s.execute(select(func.count(), func.max(K.created_at)).where(*where)).one()
        if not head[0]:
            return None, []
        group = Group(key, int(head[0]), _aware(head[1]))
        _describe(s, {key: group}, where, threshold)
        found = list(
            s.scalars(
                select(M)
                .join(K, K.interaction_id == M.interaction_id)
                .where(*where, M.text.is_not(None))
                .order_by(K.created_at.desc(), K.interaction_id)
                .limit(limit)
            )
        )
        tally: dict[str, Counter[int]] = {r.interaction_id: Counter() for r in found}
        for iid, value in s.execute(
            select(VoteRow.interaction_id, VoteRow.value).where(
                VoteRow.interaction_id.in_(list(tally)), LIVE
            )
        ):
            tally[iid][int(value)] += 1
        follow_ups = _corrections(s, K.interaction_id.in_(list(tally)))
    if not found:
        return None, []
    members = [
        Member(
            r.interaction_id,
            r.text or "",
            r.intent,
            r.intent_confidence,
            r.reply_text or "",
            r.response_id,
            r.model_version,
            r.platform,
            r.user_hash,
            _aware(r.created_at),
            tally[r.interaction_id][1],
            tally[r.interaction_id][-1],
        )
        for r in found
    ]
    by_id = {m.interaction_id: m for m in members}
    for iid, kind, label in follow_ups:
        _count(by_id[iid], kind, label)
    return group, members


def model_versions(engine: Engine) -> list[str]:
    with session_scope(engine) as s:  # the interactions' index on model_version answers this
        return sorted(s.scalars(select(M.model_version).distinct()), reverse=True)


@dataclass(frozen=True)
class LoggedAction:
    id: int
    reviewer: str
    action: str
    label: str | None
    count: int
    at: datetime
    text: str | None  # a member's message, None once every member is gone (forgotten)


def history(engine: Engine, limit: int = 100) -> list[LoggedAction]:
    """The latest actions, newest first, each with one member's message where one is left."""
    with session_scope(engine) as s:
        rows = list(
            s.scalars(select(ReviewActionRow).order_by(ReviewActionRow.id.desc()).limit(limit))
        )
        first = {r.id: r.interaction_ids[0] for r in rows if r.interaction_ids}
        texts: dict[str, str | None] = {
            iid: text
            for iid, text in s.execute(
                select(M.interaction_id, M.text).where(M.interaction_id.in_(set(first.values())))
            )
        }
    return [
        LoggedAction(
            r.id,
            r.reviewer,
            r.action,
            r.label,
            r.count,
            _aware(r.at),
            texts.get(first.get(r.id, "")),
        )
        for r in rows
    ]
