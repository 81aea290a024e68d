"""What the Slack bot says and shows: the ``/thumbloop`` texts, apologies, and the Block Kit of
its replies (the answer, 👍/👎 buttons, the vote taken, the follow-up choices). Pure."""

from __future__ import annotations

import copy
from typing import Any

from bots.common.followup import FollowUp
from bots.slack.convert import CHOICE_ACTION_PREFIX, Subcommand

VOTE_BLOCK_ID = "thumbloop_vote"
STATUS_BLOCK_ID = "thumbloop_vote_status"
UP_ACTION = "thumbloop_vote_up"
DOWN_ACTION = "thumbloop_vote_down"
FOLLOWUP_TITLE_ID = "thumbloop_followup_title"
FOLLOWUP_BLOCK_ID = "thumbloop_followup"
SECTION_LIMIT = 3000  # characters Slack accepts in a section's text

Block = dict[str, Any]

HELP = (
    "*Thumbloop* answers your questions; rate each answer with 👍 or 👎 "
    "(the buttons, or a :+1: / :-1: reaction) and it learns from your votes.\n"
    "• Send me a direct message, or mention me in a channel.\n"
    "• `/thumbloop help`: this text\n"
    "• `/thumbloop privacy`: what is stored\n"
    "• `/thumbloop forget`: delete your stored messages and votes"
)

PRIVACY = (
    "*What Thumbloop keeps*: your messages to it, its replies and your votes, to improve its "
    "answers. Your Slack user and channel ids are replaced by a keyed hash before anything is "
    "stored. The last few turns of a thread are kept for context and expire on their own. "
    "`/thumbloop forget` deletes your stored messages and votes."
)

FORGET_DONE = (
    "Done: your stored messages and votes are being deleted. "
    "New messages you send will be stored again."
)

APOLOGY = "Sorry, I can't answer right now. Please try again in a minute."
REJECTED = "Sorry, I couldn't read that message (is it very long?). Could you shorten it?"
FORGED_VOTE = "Sorry, that vote button isn't valid, so the vote was not recorded."
FORGED_CHOICE = "Sorry, that button isn't valid, so nothing was recorded."
TICK = "✓"


def escape_mrkdwn(text: str) -> str:
    """The three characters Slack requires escaped in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def answer(sub: Subcommand | None, raw: str | None) -> str:
    """The reply text for ``help``/``privacy``/unknown (``forget`` is answered by its handler)."""
    if sub == "privacy":
        return PRIVACY
    if sub is None:
        word = escape_mrkdwn((raw or "").split()[0].replace("`", ""))[:40]
        return f"I don't know `{word}`.\n\n{HELP}"
    return HELP


# -- Block Kit ------------------------------------------------------------------------------


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


def reply_blocks(
    text: str, up_value: str, down_value: str, followup: list[Block] | None = None
) -> list[Block]:
    """A section with the reply, then the two vote buttons carrying signed values, then the
    follow-up's blocks when it is shown at once (a reply that asked to clarify)."""
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
        *(followup or []),
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


def followup_blocks(
    followup: FollowUp, tokens: dict[str, str], picked: str | None = None
) -> list[Block]:
    """The question and one button per choice (``tokens``: each choice's signed value); the
    ``picked`` one is ticked and highlighted."""
    buttons = []
    for choice in followup.choices:
        label = followup.label(choice)
        chosen = choice == picked
        buttons.append(
            _button(
                f"{CHOICE_ACTION_PREFIX}{choice}",
                f"{TICK} {label}" if chosen else label,
                tokens[choice],
                "primary" if chosen else None,
            )
        )
    return [
        {
            "type": "context",
            "block_id": FOLLOWUP_TITLE_ID,
            "elements": [{"type": "mrkdwn", "text": f"*{followup.question}*"}],
        },
        {"type": "actions", "block_id": FOLLOWUP_BLOCK_ID, "elements": buttons},
    ]


def with_followup(blocks: list[Block], followup: list[Block]) -> list[Block]:
    """The message's blocks with its follow-up replaced by ``followup`` (empty: removed)."""
    kept = [b for b in blocks if b.get("block_id") not in (FOLLOWUP_TITLE_ID, FOLLOWUP_BLOCK_ID)]
    return kept + followup
