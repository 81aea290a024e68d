"""A `thumbloop chat --script` file read into steps, and a typed follow-up pick read into a
choice: pure, so a bad line is named before anything connects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bots.common.followup import FollowUp
from bots.common.signing import OTHER, UNHELPFUL

PICK_KEYS = ("s", "h")  # typed for Something else, and for "the answer didn't help"


class ScriptError(ValueError):
    """A script line that is neither a message nor a vote (names the line)."""


@dataclass(frozen=True)
class Step:
    kind: Literal["message", "vote", "pick"]
    line: int
    text: str = ""
    value: int = 0


def parse_script(lines: Iterable[str]) -> list[Step]:
    """Steps of a chat script; blank lines and lines starting with '#' are skipped."""
    steps: list[Step] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line in ("+", "-"):
            if not any(s.kind == "message" for s in steps):
                raise ScriptError(f"line {number}: a vote before any message")
            steps.append(Step("vote", number, value=1 if line == "+" else -1))
        elif line.startswith("?"):
            typed = line[1:].strip().lower()
            if not any(s.kind == "message" for s in steps):
                raise ScriptError(f"line {number}: a pick before any message")
            if typed not in ("1", "2", "3", "4", *PICK_KEYS):
                raise ScriptError(f"line {number}: '?' takes 1-4, s or h ({line[:40]!r})")
            steps.append(Step("pick", number, text=typed))
        elif line.startswith(">"):
            text = line[1:].strip()
            if not text:
                raise ScriptError(f"line {number}: '>' needs a message after it")
            steps.append(Step("message", number, text=text))
        else:
            raise ScriptError(
                f"line {number}: expected '> text', '+', '-' or '? pick' ({line[:40]!r})"
            )
    return steps


def pick_code(followup: FollowUp, typed: str) -> str | None:
    """The choice a typed pick names (``1``-``n``: the numbered intents, ``s``: something else,
    ``h``: the answer didn't help), or None when it names nothing on offer."""
    typed = typed.strip().lower()
    if typed == "s":
        code = OTHER
    elif typed == "h":
        code = UNHELPFUL
    elif typed.isdigit() and typed != "0":
        code = str(int(typed) - 1)
    else:
        return None
    return code if code in followup.choices else None
