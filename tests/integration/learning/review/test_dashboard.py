"""The dashboard over HTTP (behind the login; each chart's CSV at its own URL) and its numbers
on PostgreSQL; users' corrections in the inbox's rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest

from learning.review.dashboard_page import CHARTS
from tests.integration.learning.review.conftest import Running, login, start
from tests.integration.servers import fresh_postgres_db, wait_until
from tests.unit.learning.review import dashboard_seed
from tests.unit.learning.review.seed import Msg, store
from thumbloop.store.db import make_engine, upgrade


def _client(inbox: Running) -> httpx.Client:
    return httpx.Client(base_url=inbox.url, follow_redirects=False, timeout=30)


def _csv(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def test_the_dashboard_and_its_csvs_need_a_login(inbox: Running) -> None:
    with _client(inbox) as c:
        for path in ["/dashboard", *(f"/dashboard/{chart}.csv" for chart in CHARTS)]:
            refused = c.get(path)
            assert (refused.status_code, refused.headers["location"]) == (303, "/login"), path
            assert "thumbloop" not in refused.text  # no numbers before the login


def test_the_dashboard_draws_each_chart_and_serves_its_csv(inbox: Running) -> None:
    with _client(inbox) as c:
        login(c)
        page = c.get("/dashboard")
        assert page.status_code == 200
        for chart in CHARTS:
            assert f'data-chart="{chart}"' in page.text
            assert f'href="/dashboard/{chart}.csv"' in page.text
        assert "<script" not in page.text.split("</head>")[1]  # drawn on the server
        assert "43 interactions" in page.text  # the conftest's seeded messages
        # all on 2026-03-02: the 40 downvoted complaints and one 👍 on version 1
        up = _csv(c.get("/dashboard/thumbs_up.csv"))
        assert up == [
            ["day", "model_version", "up", "down", "up_rate"],
            ["2026-03-02", "thumbloop/1", "1", "40", "0.0244"],
            ["2026-03-02", "thumbloop/2", "0", "0", ""],
        ]
        download = c.get("/dashboard/unsure.csv?platform=slack")
        assert 'filename="thumbloop-unsure.csv"' in download.headers["content-disposition"]
        assert _csv(download)[1:] == [["2026-03-02", "thumbloop/2", "1", "1", "1.0000"]]
        assert _csv(c.get("/dashboard/unsure.csv?since=2026-03-03"))[1:] == []
        top = _csv(c.get("/dashboard/downvoted_intents.csv"))
        assert top[1] == ["card_arrival", "thumbloop/1", "40", "1"]
        assert c.get("/dashboard/nothing.csv").status_code == 404
        filtered = c.get("/dashboard?platform=slack&since=2026-03-01")
        assert 'href="/dashboard/unsure.csv?since=2026-03-01&amp;platform=slack"' in filtered.text


def test_users_corrections_show_in_the_inbox_and_offer_their_label(inbox: Running) -> None:
    store(
        inbox.engine,
        [
            Msg(
                f"I paid {k} pounds for my card and was charged twice",
                confidence=0.93,
                corrections=[("intent", "transaction_charged_twice")],
                raw_user=f"pick-{k}",
                minutes=300 + k,
            )
            for k in range(3)
        ],
    )
    with _client(inbox) as c:
        login(c)
        page = wait_until(
            lambda: (p := c.get("/?signal=corrected")).text.count("data-row") and p,
            timeout=30,
            what="the corrected messages indexed",
        )
        assert page.text.count('data-row id="row-') == 1
        assert "picked transaction_charged_twice ×3" in page.text
        # the users' pick is a numbered label of the row: key 2 after the prediction (key 1)
        assert 'value="transaction_charged_twice" data-key="2"' in page.text


@pytest.mark.postgres
def test_the_dashboard_on_postgresql(tmp_path: Path) -> None:
    with fresh_postgres_db() as url:
        upgrade(url)
        engine = make_engine(url)
        dashboard_seed.seed(engine)
        dashboard_seed.check(engine)
        engine.dispose()
        for running in start(tmp_path, url):
            with _client(running) as c:
                login(c)
                page = c.get("/dashboard")
                assert page.status_code == 200
                assert page.text.count('class="marker"') == 3  # version 2, on three charts
                pairs = _csv(c.get("/dashboard/corrections.csv"))
                assert pairs[1] == ["exchange_rate", "card_arrival", "1", "2", "3"]
            running.engine.dispose()
