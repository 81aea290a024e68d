"""A `thumbloop chat --script` file read into steps: pure, so a bad line is named before anything
connects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


class ScriptError(ValueError):
    """A script line that is neither a message nor a vote (names the line)."""


@dataclass(frozen=True)
class Step:
    kind: Literal["message", "vote"]
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
        elif line.startswith(">"):
            text = line[1:].strip()
            if not text:
                raise ScriptError(f"line {number}: '>' needs a message after it")
            steps.append(Step("message", number, text=text))
        else:
            raise ScriptError(f"line {number}: expected '> text', '+' or '-' ({line[:40]!r})")
    return steps
