"""Block Kit for the bot's replies: the answer, 👍/👎 buttons, and the vote taken. Pure."""

from __future__ import annotations

import copy
from typing import Any

from bots.slack.convert import escape_mrkdwn

VOTE_BLOCK_ID = "thumbloop_vote"
STATUS_BLOCK_ID = "thumbloop_vote_status"
UP_ACTION = "thumbloop_vote_up"
DOWN_ACTION = "thumbloop_vote_down"
SECTION_LIMIT = 3000  # characters Slack accepts in a section's text

Block = dict[str, Any]


def _button(action_id: str, emoji: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": emoji, "emoji": True},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def reply_text(text: str) -> str:
    """The reply as message text (the notification fallback and the section's text)."""
    escaped = escape_mrkdwn(text)
    return escaped if len(escaped) <= SECTION_LIMIT else escaped[: SECTION_LIMIT - 1] + "…"


def reply_blocks(text: str, up_value: str, down_value: str) -> list[Block]:
    """A section with the reply, then the two vote buttons carrying signed values."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": reply_text(text)}},
        {
            "type": "actions",
            "block_id": VOTE_BLOCK_ID,
            "elements": [
                _button(UP_ACTION, "👍", up_value),
                _button(DOWN_ACTION, "👎", down_value),
            ],
        },
    ]


def status_line(value: int) -> str:
    thumb, other = ("👍", "👎") if value > 0 else ("👎", "👍")
    return f"Thanks, vote recorded: {thumb} (press {other} to change it)"


def voted_blocks(blocks: list[Block], value: int) -> list[Block]:
    """The message's blocks with the chosen button highlighted and a status line under them.

    Works on the blocks Slack sends back in the ``block_actions`` payload, so whatever else the
    message holds is kept; the buttons stay, so the other one changes the vote.
    """
    chosen = UP_ACTION if value > 0 else DOWN_ACTION
    out: list[Block] = []
    for block in blocks:
        if block.get("block_id") == STATUS_BLOCK_ID:
            continue
        block = copy.deepcopy(block)
        if block.get("block_id") == VOTE_BLOCK_ID:
            for element in block.get("elements", []):
                if not isinstance(element, dict):
                    continue
                element.pop("style", None)
                if element.get("action_id") == chosen:
                    element["style"] = "primary" if value > 0 else "danger"
        out.append(block)
        if block.get("block_id") == VOTE_BLOCK_ID:
            out.append(
                {
                    "type": "context",
                    "block_id": STATUS_BLOCK_ID,
                    "elements": [{"type": "mrkdwn", "text": status_line(value)}],
                }
            )
    return out
