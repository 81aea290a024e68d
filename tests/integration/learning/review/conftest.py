"""The review inbox running for real: uvicorn on loopback, a migrated database with seeded
interactions and votes, one reviewer with a password."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from learning.review.app import create_app
from learning.review.throttle import LoginThrottle
from learning.review.users import set_user
from tests.conftest import BANKING
from tests.integration.servers import run_uvicorn
from tests.unit.learning.review.seed import Msg, complaints, store
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, upgrade

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def seeded_messages() -> list[Msg]:
    return [
        *complaints(40),
        Msg(
            "what is the exchange rate",
            intent="exchange_rate",
            confidence=0.3,
            minutes=90,
            reply="We use the interbank rate, updated every few seconds.",
        ),
        Msg(
            "bla bla",
            intent="out_of_scope",
            confidence=0.2,
            response_id="oos-1+clarify:card_arrival|change_pin",
            platform="slack",
            model="thumbloop/2",
            raw_user="U024BE7LH",
            minutes=200,
            reply="I'm not sure I understood. Did you mean card arrival, or change pin?",
        ),
        Msg("where is my card", confidence=0.97, votes=[1]),
    ]


@dataclass
class Running:
    url: str
    settings: Settings
    engine: Engine
    ids: list[str]


def start(
    tmp_path: Path,
    database_url: str | None = None,
    messages: list[Msg] | None = None,
    throttle: LoginThrottle | None = None,
) -> Generator[Running]:
    """The app on a fresh database holding ``messages`` (default: :func:`seeded_messages`),
    failed logins limited by ``throttle`` (default: the app's)."""
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        domain_dir=BANKING,
        review_sync_interval_s=0.3,
    )
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    ids = store(engine, seeded_messages() if messages is None else messages)
    set_user(settings.home / "review-users", "alice", PASSWORD)
    app = create_app(settings, engine, throttle=throttle)
    with run_uvicorn(app, ready_path="/readyz", timeout=60) as url:
        yield Running(url, settings, engine, ids)
    engine.dispose()


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Running]:
    yield from start(tmp_path)


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(client: httpx.Client, name: str = "alice", password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(client.get("/login"))
    return client.post("/login", data={"csrf": token, "name": name, "password": password})
