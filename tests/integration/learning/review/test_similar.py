"""Near-duplicate groups by meaning: paraphrases of one complaint become one inbox row (the
packaged encoder's embeddings), a later copy follows its group, other messages stay apart, and a
forgotten or blanked message takes its group's embedding with it."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, select, update

from learning.review.index import sync
from learning.review.similar import group_similar
from tests.integration.learning.review.conftest import Running, login, start
from tests.unit.learning.review.seed import Msg, store, user
from thumbloop.model.sentences import SentenceEncoder
from thumbloop.store.db import make_engine, session_scope, upgrade
from thumbloop.store.privacy import forget_user
from thumbloop.store.schema import InteractionRow, ReviewGroupRow, ReviewItemRow

COFFEE = [
    "I was charged twice for the same coffee",
    "I was charged two times for the same coffee",
    "i got charged twice for the same coffee!!",
    "I have been charged twice for the same coffee",
    "My coffee was charged twice",
]
OTHERS = ["where is my card", "what is the exchange rate", "I was charged twice for a taxi ride"]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


def messages(texts: list[str], first_user: int = 0) -> list[Msg]:
    return [
        Msg(
            t, intent="card_arrival", confidence=0.6, votes=[-1], raw_user=first_user + k, minutes=k
        )
        for k, t in enumerate(texts)
    ]


def database(tmp_path: Path, msgs: list[Msg]) -> tuple[Engine, list[str]]:
    url = f"sqlite:///{tmp_path}/thumbloop.db"
    upgrade(url)
    engine = make_engine(url)
    return engine, store(engine, msgs)


def groups(engine: Engine, ids: list[str]) -> list[str]:
    with session_scope(engine) as s:
        key = dict(s.execute(select(ReviewItemRow.interaction_id, ReviewItemRow.group_key)).all())
    return [key[i] for i in ids]


def test_paraphrases_are_one_group_and_a_later_copy_follows_it(
    tmp_path: Path, encoder: SentenceEncoder
) -> None:
    engine, ids = database(tmp_path, messages(COFFEE + OTHERS))
    sync(engine)
    before = groups(engine, ids)
    assert len(set(before)) == len(COFFEE + OTHERS)  # the text key alone: all apart

    done = group_similar(engine, encoder.embed)
    assert (done.new_keys, done.joined, done.leaders) == (8, 4, 4)
    after = groups(engine, ids)
    assert len(set(after[: len(COFFEE)])) == 1  # the paraphrases: one group
    assert len(set(after)) == 1 + len(OTHERS)  # the others each alone (the taxi: 0.73)
    assert group_similar(engine, encoder.embed).new_keys == 0  # nothing new: nothing embedded

    # a new copy of a grouped paraphrase (its text key was seen): moved without embedding
    copy = store(engine, messages(["I WAS CHARGED TWICE for the same coffee"], 50))
    copy += store(engine, messages(["I was charged two times for the same coffee!"], 51))
    sync(engine)

    def refuse(texts: object) -> np.ndarray:
        raise AssertionError(f"embedded again: {texts}")

    moved = group_similar(engine, refuse)
    assert moved.moved >= 1 and moved.new_keys == 0
    assert set(groups(engine, copy)) == {after[0]}


def test_the_inbox_shows_the_paraphrases_as_one_row(
    tmp_path: Path, encoder: SentenceEncoder
) -> None:
    gen: Generator[Running] = start(tmp_path, messages=messages(COFFEE + OTHERS))
    running = next(gen)
    try:
        sync(running.engine)
        group_similar(running.engine, encoder.embed)
        with httpx.Client(base_url=running.url, follow_redirects=True) as c:
            login(c)
            page = c.get("/?signal=downvoted")
        assert page.text.count('data-row id="row-') == 1 + len(OTHERS)
        assert f"×{len(COFFEE)}" in page.text
    finally:
        gen.close()


def test_a_forgotten_or_blanked_leader_takes_its_embedding_along(
    tmp_path: Path, encoder: SentenceEncoder
) -> None:
    engine, ids = database(tmp_path, messages([COFFEE[0], OTHERS[0]]))
    sync(engine)
    group_similar(engine, encoder.embed)
    coffee = ReviewGroupRow.interaction_id == ids[0]
    with session_scope(engine) as s:
        assert s.scalar(select(ReviewGroupRow.embedding).where(coffee))
        forget_user(s, user(0))  # the coffee's author
    with session_scope(engine) as s:
        assert s.scalars(select(ReviewGroupRow).where(coffee)).all() == []  # at once
        s.execute(
            update(InteractionRow).where(InteractionRow.interaction_id == ids[1]).values(text=None)
        )  # retention blanked the other
    assert group_similar(engine, encoder.embed).dropped == 1
    with session_scope(engine) as s:
        assert s.scalars(select(ReviewGroupRow)).all() == []
