"""The chaos runs' oracle: a script of interactions, votes, flips and withdrawals whose final
state is known in advance, and the comparison of what the stack stored with it.

The expected state follows the documented rules (docs/feedback-loop.md): one vote per
(interaction, rater), the one cast last (its ``at``) wins whatever order the queue delivers
them in, a withdrawal is a cast of its own. The Redis posteriors must equal the counts the
votes table implies (``sql_counts``) and no count may be below zero.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from learning.worker.posterior_sync import Counts, PosteriorWriter, sql_counts
from thumbloop.contracts import Interaction, Vote
from thumbloop.identity import hash_id
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import FAILED, DroppedTaskRow, InteractionRow, VoteRow
from thumbloop.task_names import (
    RECORD_INTERACTION,
    RECORD_VOTE,
    WITHDRAW_VOTE,
    interaction_payload,
    vote_payload,
    withdraw_payload,
)

NAMESPACE = "thumbloop-chaos"
INTENTS = ("card_arrival", "lost_or_stolen_card", "transfer_timing", "exchange_rate", "top_up")
KEY = "chaos"  # the HMAC key of the script's made-up user ids

Task = tuple[str, dict[str, Any]]
Pair = tuple[str, str]  # (interaction id, rater)


@dataclass
class Script:
    tasks: list[Task]  # in the order a bot would send them
    interactions: set[str]
    votes: dict[Pair, int]  # the live vote each pair must end with (withdrawn pairs absent)
    n_votes: int  # vote tasks in the script: casts, flips and withdrawals

    def delivered(self, times: int, seed: int) -> list[Task]:
        """Every task ``times`` times, in a shuffled order."""
        out = [t for t in self.tasks for _ in range(times)]
        random.Random(seed).shuffle(out)
        return out


def build_script(n_votes: int, seed: int, start: datetime | None = None) -> Script:
    """``n_votes`` vote tasks over about n/4 interactions: about 60 % first votes, 25 % flips
    (the same rater, the other thumb) and 15 % withdrawals; each interaction is sent before
    its first vote, and every cast is 10 ms after the one before."""
    rng = random.Random(seed)
    at = start or datetime.now(UTC) - timedelta(hours=1)
    step = timedelta(milliseconds=10)
    raters = [hash_id(KEY, "telegram", f"rater-{i}") for i in range(max(20, n_votes // 8))]
    pool = [
        Interaction(
            interaction_id=uuid.UUID(int=rng.getrandbits(128)),
            platform="telegram",
            user=hash_id(KEY, "telegram", f"user-{i}"),
            conversation=hash_id(KEY, "telegram", f"chat-{i % 7}"),
            text=f"chaos message {i}",
            intent=(intent := rng.choice(INTENTS)),
            intent_confidence=0.9,
            sentiment="neutral",
            response_id=f"{intent}/{rng.randint(1, 2)}",
            reply_text="ok",
            model_version=f"{NAMESPACE}/1",
            at=at,
        )
        for i in range(max(5, n_votes // 4))
    ]
    tasks: list[Task] = []
    sent: set[str] = set()
    live: dict[Pair, int] = {}
    voted: list[Pair] = []  # pairs that ever voted, withdrawn ones included
    for _ in range(n_votes):
        at += step
        roll = rng.random()
        if voted and roll < 0.40:
            pair = rng.choice(voted)
            if pair in live and roll < 0.15:
                tasks.append((WITHDRAW_VOTE, withdraw_payload(pair[0], pair[1], "telegram", at)))
                del live[pair]
                continue
            value = -live[pair] if pair in live else rng.choice((1, -1))
        else:
            item = rng.choice(pool)
            pair = (str(item.interaction_id), rng.choice(raters))
            if pair not in live and pair not in voted:
                voted.append(pair)
            value = rng.choice((1, -1))
            if pair[0] not in sent:
                sent.add(pair[0])
                tasks.append((RECORD_INTERACTION, interaction_payload(item)))
        live[pair] = value
        vote = Vote(
            interaction_id=uuid.UUID(pair[0]),
            rater=pair[1],
            value=value,  # type: ignore[arg-type]
            platform="telegram",
            at=at,
        )
        tasks.append((RECORD_VOTE, vote_payload(vote)))
    return Script(tasks=tasks, interactions=sent, votes=live, n_votes=n_votes)


@dataclass
class Observed:
    interactions: int
    interaction_ids: set[str]
    votes: dict[Pair, int]  # live votes
    failed_waiting: int  # dead letters not yet re-driven
    counts: Counts = field(default_factory=dict)


def observe(db_url: str) -> Observed:
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            ids = set(s.scalars(select(InteractionRow.interaction_id)))
            n = int(s.scalar(select(func.count()).select_from(InteractionRow)) or 0)
            votes = {
                (iid, rater): int(value)
                for iid, rater, value in s.execute(
                    select(VoteRow.interaction_id, VoteRow.rater, VoteRow.value).where(
                        VoteRow.value != 0
                    )
                )
            }
            failed = s.scalar(
                select(func.count())
                .select_from(DroppedTaskRow)
                .where(DroppedTaskRow.kind == FAILED, DroppedTaskRow.redriven_at.is_(None))
            )
            counts = sql_counts(s)
    finally:
        engine.dispose()
    return Observed(n, ids, votes, int(failed or 0), counts)


@dataclass(frozen=True)
class Verdict:
    lost: int  # interactions or live votes the script says must be there, missing or wrong
    extra: int  # live votes that should not be (a lost withdrawal, a stale vote applied)
    duplicated: int  # interaction rows beyond the script's
    failed_waiting: int
    # up to five of what was lost, as "interaction id" or "pair: expected vote, seen vote"
    examples: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.lost or self.extra or self.duplicated or self.failed_waiting)


def judge(script: Script, seen: Observed) -> Verdict:
    missing = sorted(script.interactions - seen.interaction_ids)
    wrong = [(p, v) for p, v in script.votes.items() if seen.votes.get(p) != v]
    stale = [p for p in seen.votes if p not in script.votes]
    examples = [*missing, *(f"{p}: want {v}, seen {seen.votes.get(p)}" for p, v in wrong)]
    examples += [f"{p}: want none, seen {seen.votes[p]}" for p in stale]
    return Verdict(
        len(missing) + len(wrong),
        len(stale),
        max(0, seen.interactions - len(script.interactions)),
        seen.failed_waiting,
        tuple(examples[:5]),
    )


def _nonzero(counts: Counts) -> dict[tuple[str, str], float]:
    return {
        (intent, name): value
        for intent, fields in counts.items()
        for name, value in fields.items()
        if value
    }


@dataclass(frozen=True)
class PosteriorCheck:
    cells_off: int  # (intent, field) cells where Redis differs from the votes table
    below_zero: int
    over_counted: float  # weight in Redis beyond the votes table's (a double count)


def check_posteriors(redis_url: str, counts: Counts) -> PosteriorCheck:
    writer = PosteriorWriter(redis_url, NAMESPACE)
    try:
        redis_counts = {intent: writer.read(intent) for intent in INTENTS}
    finally:
        writer.close()
    want, have = _nonzero(counts), _nonzero(redis_counts)
    cells = set(want) | set(have)
    off = sum(1 for c in cells if abs(want.get(c, 0.0) - have.get(c, 0.0)) > 1e-9)
    below = sum(1 for v in have.values() if v < 0)
    over = sum(max(0.0, have.get(c, 0.0) - want.get(c, 0.0)) for c in cells)
    return PosteriorCheck(off, below, over)
