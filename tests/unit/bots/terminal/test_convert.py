"""A `thumbloop chat --script` file read into steps, and its bad lines named."""

from __future__ import annotations

import re

import pytest

from bots.terminal.convert import ScriptError, Step, parse_script


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
        (["> hi", "thumbs up"], "line 2: expected '> text', '+' or '-'"),
    ],
)
def test_a_bad_script_line_is_named(lines: list[str], message: str) -> None:
    with pytest.raises(ScriptError, match=re.escape(message)):
        parse_script(lines)
