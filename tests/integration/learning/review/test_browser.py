"""The review inbox in a real browser: Playwright for Python driving Debian's chromium (the
`chromium` package; Playwright's own browser download cannot work offline). Log in, filter,
move with the keyboard, relabel a group by typing, confirm and ignore with single keys, and
see each label stored; the dashboard draws its charts from two weeks of traffic.

Set THUMBLOOP_REVIEW_SCREENSHOT=docs/images/review-inbox.png and
THUMBLOOP_REVIEW_DASHBOARD_SCREENSHOT=docs/images/review-dashboard.png to refresh the docs'
screenshots.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api
from sqlalchemy import select

from tests.integration.learning.review.conftest import PASSWORD, Running, start
from tests.unit.learning.review.seed import Msg, store
from thumbloop.identity import hash_id
from thumbloop.store.db import session_scope
from thumbloop.store.schema import ReviewActionRow, ReviewedInteractionRow

CHROMIUM = shutil.which("chromium")


def _more() -> list[Msg]:
    """A few more kinds of trouble, so the inbox looks as it would after a busy day."""
    late = [
        Msg(
            f"I still haven't received my new card{'.' if k % 3 else ''}",
            intent="card_delivery_estimate",
            confidence=0.45,
            votes=[-1] if k % 2 else [],
            # most of those who gave a 👎 then picked what they meant (issue 21's follow-up)
            corrections=[("intent", "card_arrival") if k < 11 else ("other", None)]
            if k % 2
            else [],
            raw_user=f"late-{k}",
            minutes=300 + k,
            reply="New cards usually arrive within 3-5 working days.",
        )
        for k in range(12)
    ]
    pay = [
        Msg(
            "can I top up with apple pay?",
            intent="top_up_by_card_charge",
            confidence=0.34,
            votes=[-1] if k < 3 else [],
            corrections=[("intent", "apple_pay_or_google_pay")] if k < 3 else [],
            raw_user=f"pay-{k}",
            platform="slack",
            model="thumbloop/2",
            minutes=400 + k,
            reply="You can top up by card from the Top up screen.",
        )
        for k in range(5)
    ]
    return [
        *late,
        *pay,
        Msg(
            "my IBAN is GB82 WEST 1234 5698 7654 32, why was the transfer refused",
            intent="beneficiary_not_allowed",
            confidence=0.41,
            votes=[-1, -1],
            raw_user="iban",
            minutes=500,
            reply="Some beneficiaries cannot receive transfers from us.",
        ),
    ]


@pytest.fixture
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Running]:
    for running in start(tmp_path):
        store(running.engine, _more())
        yield running


def _stored(inbox: Running) -> dict[str, tuple[str | None, str]]:
    with session_scope(inbox.engine) as s:
        rows = s.scalars(select(ReviewedInteractionRow)).all()
        return {r.interaction_id: (r.label, r.action) for r in rows}


def test_log_in_filter_and_label_groups_with_the_keyboard(browser, inbox: Running) -> None:  # type: ignore[no-untyped-def]
    expect = sync_api.expect
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(inbox.url + "/")
    expect(page).to_have_url(inbox.url + "/login")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("Wrong name or password.")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(inbox.url + "/")
    # the new messages are indexed by the background sync: wait for them
    page.wait_for_function("document.querySelectorAll('[data-row]').length >= 6", timeout=30_000)
    rows = page.locator("[data-row]")
    expect(rows.first).to_contain_text("×40")
    expect(rows.first).to_contain_text("My card #### was charged twice")
    expect(page.locator("body")).not_to_contain_text("5698")  # the IBAN is redacted
    # users' picks after a 👎: the "corrected" badge, and the picked intent offered as key 2
    late = rows.filter(has_text="received my new card")
    expect(late.locator(".sig.corrected")).to_have_text("picked card_arrival ×5, something else ×1")
    expect(late.locator("button[data-key='2']")).to_contain_text("card_arrival")
    if target := os.environ.get("THUMBLOOP_REVIEW_SCREENSHOT"):
        page.screenshot(path=target, full_page=False)

    # filter: telegram only, through the form
    page.select_option("select[name=platform]", "telegram")
    page.click(".filters button[type=submit]")
    expect(page).to_have_url(inbox.url + "/?platform=telegram")
    expect(rows).to_have_count(4)
    expect(page.locator("body")).not_to_contain_text("apple pay")

    # j moves to the second group (the late cards); l, type, Enter relabels it
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class("group selected")
    expect(rows.nth(1)).to_contain_text("received my new card")
    page.keyboard.press("l")
    page.keyboard.type("card_arrival")
    page.keyboard.press("Enter")
    expect(page.locator(".flash.ok")).to_have_text("Relabelled 12 messages as card_arrival.")
    expect(page).to_have_url(inbox.url + "/?platform=telegram&cursor=1")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_have_class("group selected")  # the cursor stays where it was

    # 1 confirms the selected group's predicted intent; k goes up, x ignores
    selected = rows.nth(1).locator(".text").inner_text()
    page.keyboard.press("1")
    expect(page.locator(".flash.ok")).to_contain_text("Confirmed")
    expect(page.locator("body")).not_to_contain_text(selected)
    page.keyboard.press("k")
    page.keyboard.press("x")
    expect(page.locator(".flash.ok")).to_contain_text("Ignored 40 messages.")
    page.close()

    stored = _stored(inbox)
    assert sum(v == ("card_arrival", "relabel") for v in stored.values()) == 12
    assert sum(v == (None, "ignore") for v in stored.values()) == 40
    assert sum(v[1] == "confirm" for v in stored.values()) == 1
    with session_scope(inbox.engine) as s:
        log = s.scalars(select(ReviewActionRow).order_by(ReviewActionRow.id)).all()
    assert [(r.reviewer, r.action, r.count) for r in log] == [
        ("alice", "relabel", 12),
        ("alice", "confirm", 1),
        ("alice", "ignore", 40),
    ]


def _two_weeks() -> list[Msg]:
    """Fourteen days of traffic: version 2 takes over on day 5 and version 3 on day 10, each
    understanding more (more 👍, fewer unsure replies), and users' picks after a 👎."""
    rng = random.Random(7)
    topics = [
        ("where is my card", "card_arrival", "card_delivery_estimate"),
        ("I was charged twice", "card_payment_fee_charged", "transaction_charged_twice"),
        ("how do I change my pin", "change_pin", "get_physical_card"),
        ("is there a fee to top up", "top_up_by_card_charge", "top_up_by_bank_transfer_charge"),
        ("my transfer has not arrived", "transfer_not_received_by_recipient", "pending_transfer"),
    ]
    out: list[Msg] = []
    for day in range(14):
        version = 1 if day < 5 else 2 if day < 10 else 3
        for k in range(24):
            model = version if k > 3 or version == 1 else version - 1  # the old one lingers
            text, predicted, meant = topics[rng.randrange(len(topics))]
            good = rng.random() < 0.55 + 0.12 * model
            vote = [1] if good else [-1]
            pick: list[tuple[str, str | None]] = (
                [] if good or rng.random() < 0.5 else [("intent", meant)]
            )
            out.append(
                Msg(
                    f"{text} #{day}-{k}",
                    intent=predicted,
                    confidence=0.9 if good else 0.55,
                    votes=vote if rng.random() < 0.7 else [],
                    corrections=pick,
                    model=f"thumbloop/{model}",
                    response_id="x+clarify:a|b" if rng.random() < 0.3 / model else f"{predicted}-1",
                    sentiment="negative" if rng.random() < 0.35 - 0.08 * model else "neutral",
                    platform="slack" if k % 3 == 0 else "telegram",
                    raw_user=hash_id("browser", "telegram", f"{day}-{k}"),
                    minutes=day * 24 * 60 + k * 20,
                )
            )
    return out


def test_the_dashboard_draws_its_charts_from_real_traffic(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    expect = sync_api.expect
    for inbox in start(tmp_path, messages=_two_weeks()):
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(inbox.url + "/dashboard")
        expect(page).to_have_url(inbox.url + "/login")  # behind the login
        page.fill("input[name=name]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(inbox.url + "/dashboard")
        charts = page.locator("svg[data-chart]")
        expect(charts).to_have_count(5)
        for k in range(5):
            chart = charts.nth(k)
            expect(chart).to_be_visible()
            assert int(chart.get_attribute("data-points") or 0) > 0, chart.get_attribute(
                "data-chart"
            )
            assert chart.bounding_box()["height"] > 50  # type: ignore[index]
        rate = page.locator("svg[data-chart=thumbs_up]")
        expect(rate.locator("polyline")).to_have_count(3)  # one line per version
        # version 2 and 3 first answered on days 5 and 10: the champion changed there
        expect(rate.locator("line.marker")).to_have_count(2)
        assert rate.locator("line.marker").first.get_attribute("data-day") == "2026-03-07"
        expect(page.locator("svg[data-chart=corrections] rect.bar").first).to_be_visible()
        if target := os.environ.get("THUMBLOOP_REVIEW_DASHBOARD_SCREENSHOT"):
            page.screenshot(path=target, full_page=True)
        # the platform filter narrows every chart; the CSV link keeps it
        page.select_option("select[name=platform]", "slack")
        page.click(".filters button[type=submit]")
        expect(page).to_have_url(inbox.url + "/dashboard?platform=slack")
        link = page.locator("#chart-unsure a.csv")
        expect(link).to_have_attribute("href", "/dashboard/unsure.csv?platform=slack")
        with page.expect_download() as download:
            link.click()
        rows = Path(download.value.path()).read_text().splitlines()
        assert rows[0] == "day,model_version,interactions,unsure,unsure_share"
        assert len(rows) > 14  # a row per day and version
        page.close()
