"""The review inbox over HTTP: logins and their refusals, CSRF, filters, a group relabelled and
stored, redaction, hashed users only, forgotten users, the security headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from tests.integration.learning.review.conftest import Running, csrf_of, login, start
from tests.integration.servers import fresh_postgres_db, wait_until
from tests.unit.learning.review.seed import Msg, store, user
from thumbloop.store.db import session_scope
from thumbloop.store.privacy import forget_user
from thumbloop.store.schema import ReviewActionRow, ReviewedInteractionRow

COMPLAINT = "My card #### was charged twice!"


def _client(inbox: Running) -> httpx.Client:
    return httpx.Client(base_url=inbox.url, follow_redirects=False, timeout=30)


def _reviewed(inbox: Running) -> dict[str, tuple[str | None, str, str]]:
    with session_scope(inbox.engine) as s:
        rows = s.scalars(select(ReviewedInteractionRow)).all()
        return {r.interaction_id: (r.label, r.action, r.reviewer) for r in rows}


def _act(client: httpx.Client, page: httpx.Response, row: int, **form: str) -> httpx.Response:
    """Submit the action form of the ``row``-th group on ``page`` with ``form`` on top."""
    forms = re.findall(r'<form class="act".*?</form>', page.text, flags=re.S)
    hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', forms[row]))
    hidden = {k: v.replace("&amp;", "&") for k, v in hidden.items()}
    return client.post("/actions", data=hidden | form)


def test_logins_are_refused_alike_and_need_the_form_token(inbox: Running) -> None:
    with _client(inbox) as c:
        assert c.get("/").headers["location"] == "/login"
        token = csrf_of(c.get("/login"))
        forged = c.post("/login", data={"name": "alice", "password": "correct horse battery"})
        assert forged.status_code == 403
        wrong = c.post("/login", data={"csrf": token, "name": "alice", "password": "nope"})
        unknown = c.post("/login", data={"csrf": token, "name": "mallory", "password": "nope"})
        assert wrong.status_code == unknown.status_code == 401
        # the same answer for a wrong password and for a name that does not exist
        assert wrong.text == unknown.text and "Wrong name or password." in wrong.text
        assert c.get("/").status_code == 303  # still logged out
        ok = login(c)
        assert (ok.status_code, ok.headers["location"]) == (303, "/")
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert c.get("/").status_code == 200
        # logging out needs the token too
        page = c.get("/")
        assert c.post("/logout", data={"csrf": ""}).status_code == 303
        assert c.get("/").status_code == 200
        assert c.post("/logout", data={"csrf": csrf_of(page)}).headers["location"] == "/login"
        assert c.get("/").status_code == 303


def test_a_forged_session_cookie_is_no_login(inbox: Running) -> None:
    with _client(inbox) as c:
        login(c)
        value = c.cookies["thumbloop_review"]
        c.cookies.clear()
        c.cookies.set("thumbloop_review", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
        assert c.get("/").status_code == 303


def test_actions_need_a_login_and_the_session_s_token(inbox: Running) -> None:
    with _client(inbox) as c:
        login(c)
        page = c.get("/")
        key = re.search(r'name="group" value="(\w+)"', page.text).group(1)  # type: ignore[union-attr]
        form = {"group": key, "action": "label", "label": "card_payment_fee_charged"}
        assert c.post("/actions", data=form).status_code == 403  # no token
        assert c.post("/actions", data=form | {"csrf": "x" * 43}).status_code == 403
        with _client(inbox) as stranger:  # a token from someone else's session
            other = csrf_of(stranger.get("/login"))
            assert stranger.post("/actions", data=form | {"csrf": other}).status_code == 401
        assert c.post("/actions", data=form | {"csrf": other}).status_code == 403
        as_json = c.post("/actions", json=form | {"csrf": csrf_of(page)})
        assert as_json.status_code == 415
    assert _reviewed(inbox) == {}


def test_filter_then_relabel_a_group_and_the_label_is_stored(inbox: Running) -> None:
    with _client(inbox) as c:
        login(c)
        page = c.get("/")
        assert page.text.count('data-row id="row-') == 3  # 40 complaints are one row
        assert "×40" in page.text and COMPLAINT in page.text
        assert "where is my card" not in page.text  # 👍 and confident: nothing to look at
        unsure = c.get("/", params={"signal": "unsure"})
        assert unsure.text.count('data-row id="row-') == 1 and "bla bla" in unsure.text
        assert "change_pin" in unsure.text  # offered by the clarifying reply: a pick
        filtered = c.get("/", params={"platform": "telegram", "intent": "card_arrival"})
        assert filtered.text.count('data-row id="row-') == 1
        done = _act(c, filtered, 0, action="label", label="card_payment_fee_charged")
        assert done.status_code == 303
        assert done.headers["location"] == "/?intent=card_arrival&platform=telegram"
        after = c.get(done.headers["location"])
        assert "Relabelled 40 messages as card_payment_fee_charged." in after.text
        assert "Nothing needs a look with these filters." in after.text
        history = c.get("/history")
        assert "alice" in history.text and "card_payment_fee_charged" in history.text
    stored = _reviewed(inbox)
    assert set(stored) == set(inbox.ids[:40])
    assert set(stored.values()) == {("card_payment_fee_charged", "relabel", "alice")}
    with session_scope(inbox.engine) as s:
        log = s.scalars(select(ReviewActionRow)).one()
    assert (log.reviewer, log.count, log.label) == ("alice", 40, "card_payment_fee_charged")
    assert (datetime.now(UTC) - log.at.replace(tzinfo=UTC)).total_seconds() < 3600


def test_unknown_labels_change_nothing_and_picks_confirm(inbox: Running) -> None:
    with _client(inbox) as c:
        login(c)
        page = c.get("/", params={"intent": "exchange_rate"})
        refused = _act(c, page, 0, action="label", label="no_such_intent")
        assert "unknown intent &#39;no_such_intent&#39;" in c.get(refused.headers["location"]).text
        assert _reviewed(inbox) == {}
        _act(c, page, 0, pick="exchange_rate")
        page = c.get("/", params={"signal": "unsure"})
        _act(c, page, 0, action="out_of_scope")
    assert sorted(v[:2] for v in _reviewed(inbox).values()) == [
        ("exchange_rate", "confirm"),
        ("out_of_scope", "out_of_scope"),
    ]


def test_messages_are_redacted_and_users_shown_only_as_hashes(inbox: Running) -> None:
    with _client(inbox) as c:
        login(c)
        page = c.get("/")
        key = re.search(r'href="/groups/(\w+)"', page.text).group(1)  # type: ignore[union-attr]
        group = c.get(f"/groups/{key}")
        assert group.status_code == 200
        assert "4039" not in page.text + group.text
        assert COMPLAINT in group.text
        assert user(39)[:12] in group.text  # the stored HMAC, shortened
        slack = c.get("/", params={"signal": "unsure"})
        for text in (page.text, group.text, slack.text):
            assert "U024BE7LH" not in text  # the raw Slack id is never stored, never shown
        shown = c.get(f"/groups/{key}", params={"reveal": "1"})
        assert "My card 4039 was charged twice!" in shown.text
        assert c.get("/groups/not-a-group!").status_code == 404
        assert c.get("/groups/" + "0" * 32).status_code == 404


def test_new_messages_come_in_and_forgotten_ones_leave_at_once(inbox: Running) -> None:
    with _client(inbox) as c:
        login(c)
        with session_scope(inbox.engine) as s:
            forget_user(s, user("U024BE7LH", "slack"))
        assert "bla bla" not in c.get("/").text
        store(inbox.engine, [Msg("I want to close my account", confidence=0.2, raw_user="n")])
        wait_until(
            lambda: "I want to close my account" in c.get("/").text,
            30,
            what="the new message in the inbox",
        )


def test_pages_carry_security_headers_and_vendored_assets(inbox: Running) -> None:
    with _client(inbox) as c:
        page = c.get("/login")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert "http" not in re.sub(r'href="/[^"]*"', "", page.text).split("<body")[0]
        js = c.get("/static/review.js")
        assert js.status_code == 200 and "keydown" in js.text
        assert c.get("/static/review.css").status_code == 200


@pytest.mark.postgres
def test_the_inbox_works_on_postgresql(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with fresh_postgres_db() as url:
        for running in start(tmp_path, url):
            with _client(running) as c:
                login(c)
                page = c.get("/")
                assert page.text.count('data-row id="row-') == 3
                _act(c, page, 0, pick="card_payment_fee_charged")
                _act(c, page, 1, action="ignore")
            stored = _reviewed(running)
            assert len(stored) == 41
            assert {v[1] for v in stored.values()} == {"relabel", "ignore"}
            running.engine.dispose()
