"""The review inbox in a real browser: Playwright for Python driving Debian's chromium (the
`chromium` package; Playwright's own browser download cannot work offline). Log in, filter,
move with the keyboard, relabel a group by typing, confirm and ignore with single keys, and
see each label stored.

Set THUMBLOOP_REVIEW_SCREENSHOT=docs/images/review-inbox.png to refresh the docs' screenshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api
from sqlalchemy import select

from tests.integration.learning.review.conftest import PASSWORD, Running, start
from tests.unit.learning.review.seed import Msg, store
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
