"""A `thumbloop chat --script` file read into steps, and its bad lines named."""

from __future__ import annotations

import re

import pytest

from bots.common.followup import FollowUp
from bots.terminal.convert import ScriptError, Step, parse_script, pick_code


def test_a_script_is_messages_and_votes_with_comments_skipped() -> None:
    steps = parse_script(["# demo", "> where is my card", "+", "", ">  hi  ", "-"])
    assert steps == [
        Step("message", 2, text="where is my card"),
        Step("vote", 3, value=1),
        Step("message", 5, text="hi"),
        Step("vote", 6, value=-1),
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["+"], "line 1: a vote before any message"),
        (["> hi", ">"], "line 2: '>' needs a message"),
        (["> hi", "thumbs up"], "line 2: expected '> text', '+', '-' or '? pick'"),
        (["? 1"], "line 1: a pick before any message"),
        (["> hi", "-", "? 7"], "line 3: '?' takes 1-4, s or h"),
    ],
)
def test_a_bad_script_line_is_named(lines: list[str], message: str) -> None:
    with pytest.raises(ScriptError, match=re.escape(message)):
        parse_script(lines)


def test_a_pick_step_follows_a_message() -> None:
    steps = parse_script(["> charged twice", "-", "? 2", "?S"])
    assert steps[2:] == [Step("pick", 3, text="2"), Step("pick", 4, text="s")]


def test_a_typed_pick_names_a_choice_on_offer_or_nothing() -> None:
    offer = FollowUp(("a", "b"), unhelpful=True)
    assert [pick_code(offer, t) for t in ("1", "2", "s", "H", " 1 ")] == ["0", "1", "o", "h", "0"]
    assert [pick_code(offer, t) for t in ("0", "3", "x", "", "-1")] == [None] * 5
    assert pick_code(FollowUp(("a",), unhelpful=False, at_once=True), "h") is None
