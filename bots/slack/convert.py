"""Pure converters from Slack payloads to the few facts the handlers act on.

Nothing here does I/O: each function takes a Slack event, interaction payload or slash-command
text (as bolt hands it over) and returns a small frozen value, or ``None`` when the payload is
not for us (a bot's message, an edit, a reaction on someone else's message, …).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Subcommand = Literal["help", "privacy", "forget"]

VOTE_ACTION = re.compile(r"^thumbloop_vote_(up|down)$")
CHOICE_ACTION_PREFIX = "thumbloop_choice_"  # + the choice: 0-3, o (something else), h
CHOICE_ACTION = re.compile(rf"^{CHOICE_ACTION_PREFIX}([0-3oh])$")

# Slack's canonical names (`thumbsup` is an alias it normalises to `+1`, but accept both).
REACTION_VALUES: dict[str, int] = {"+1": 1, "thumbsup": 1, "-1": -1, "thumbsdown": -1}

# uuid5 namespace of the interactions answered on Slack (fixed; differs from Telegram's)
_INTERACTIONS = uuid.UUID("9b3f1c52-6a0e-4d8e-b7c4-2f5e8a1d9c63")


def message_interaction_id(conversation: str, ts: str) -> uuid.UUID:
    """The interaction a reply to the message at ``ts`` records: the same each time the message
    is handled (a bot killed after replying handles it again on restart, see
    :mod:`bots.slack.inbox`). ``conversation`` is the channel's HMAC, never its raw id."""
    return uuid.uuid5(_INTERACTIONS, f"{conversation}:{ts}")


_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^>]*)>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")


@dataclass(frozen=True)
class Inbound:
    """A user's message the bot should answer."""

    text: str
    user: str
    channel: str
    ts: str
    thread_ts: str  # where the reply goes: the thread's root (the message itself if none)


@dataclass(frozen=True)
class VoteClick:
    """A press on one of our 👍/👎 buttons (the value is still unverified)."""

    token: str
    direction: int  # what the button's action_id says: +1 or -1
    user: str
    channel: str
    message_ts: str
    message_text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True)
class ChoiceClick:
    """A press on one of our follow-up buttons (the value is still unverified)."""

    token: str
    choice: str  # what the button's action_id says
    user: str
    channel: str
    message_ts: str
    thread_ts: str  # where the reply sits: answers to a pick go to the same thread
    message_text: str
    blocks: list[dict[str, Any]]
    at: datetime  # when the person pressed (the action's own time)


@dataclass(frozen=True)
class ReactionChange:
    """A 👍/👎 reaction added to or removed from a message the bot posted."""

    value: int
    added: bool
    user: str
    channel: str
    ts: str
    at: datetime  # when the person reacted (the event's own time), so late deliveries order right


def _event_time(event: Mapping[str, Any]) -> datetime:
    try:
        return datetime.fromtimestamp(float(event["event_ts"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return datetime.now(UTC)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def clean_text(text: str, bot_user_id: str | None) -> str:
    """Slack mrkdwn to plain text: drop mentions of the bot, unwrap links, unescape (the inverse
    of :func:`bots.slack.texts.escape_mrkdwn`)."""

    def mention(m: re.Match[str]) -> str:
        return "" if m.group(1) == bot_user_id else "@someone"

    text = _MENTION.sub(mention, text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(1)}", text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(1)}", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())


def inbound_from_event(event: Mapping[str, Any], bot_user_id: str | None) -> Inbound | None:
    """A direct message or an @-mention from a person; ``None`` for everything else."""
    kind = event.get("type")
    if kind not in ("message", "app_mention"):
        return None
    # bot posts (ours included), edits, deletions, joins, thread broadcasts: never answered
    if event.get("subtype") or event.get("bot_id") or event.get("bot_profile"):
        return None
    user, channel, ts = _str(event.get("user")), _str(event.get("channel")), _str(event.get("ts"))
    if user is None or channel is None or ts is None or user == bot_user_id:
        return None
    if kind == "message" and event.get("channel_type") != "im":
        return None  # in channels the bot answers @-mentions only
    if kind == "app_mention" and channel.startswith("D"):
        return None  # a mention inside a DM also arrives as message.im
    text = clean_text(_str(event.get("text")) or "", bot_user_id)
    if not text:
        return None
    return Inbound(
        text=text,
        user=user,
        channel=channel,
        ts=ts,
        thread_ts=_str(event.get("thread_ts")) or ts,
    )


def vote_click(body: Mapping[str, Any]) -> VoteClick | None:
    """The first vote button in a ``block_actions`` payload; ``None`` if malformed."""
    actions = body.get("actions")
    if not isinstance(actions, list):
        return None
    for action in actions:
        if not isinstance(action, dict):
            continue
        match = VOTE_ACTION.match(str(action.get("action_id", "")))
        if match is None:
            continue
        user = body.get("user") or {}
        channel = body.get("channel") or body.get("container") or {}
        message = body.get("message") or {}
        container = body.get("container") or {}
        token = _str(action.get("value"))
        user_id = _str(user.get("id")) if isinstance(user, dict) else None
        channel_id = (
            _str(channel.get("id") or channel.get("channel_id"))
            if isinstance(channel, dict)
            else None
        )
        ts = (_str(message.get("ts")) if isinstance(message, dict) else None) or (
            _str(container.get("message_ts")) if isinstance(container, dict) else None
        )
        if token is None or user_id is None or channel_id is None or ts is None:
            return None
        blocks = message.get("blocks") if isinstance(message, dict) else None
        return VoteClick(
            token=token,
            direction=1 if match.group(1) == "up" else -1,
            user=user_id,
            channel=channel_id,
            message_ts=ts,
            message_text=(_str(message.get("text")) if isinstance(message, dict) else None) or "",
            blocks=[b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else [],
        )
    return None


def choice_click(body: Mapping[str, Any]) -> ChoiceClick | None:
    """The first follow-up button in a ``block_actions`` payload; ``None`` if malformed."""
    actions = body.get("actions")
    if not isinstance(actions, list):
        return None
    for action in actions:
        if not isinstance(action, dict):
            continue
        match = CHOICE_ACTION.match(str(action.get("action_id", "")))
        if match is None:
            continue
        vote = vote_click({**body, "actions": [{**action, "action_id": "thumbloop_vote_up"}]})
        if vote is None:
            return None
        message = body.get("message")
        thread = _str(message.get("thread_ts")) if isinstance(message, dict) else None
        try:
            at = datetime.fromtimestamp(float(action["action_ts"]), UTC)
        except (KeyError, TypeError, ValueError, OverflowError):
            at = datetime.now(UTC)
        return ChoiceClick(
            token=vote.token,
            choice=match.group(1),
            user=vote.user,
            channel=vote.channel,
            message_ts=vote.message_ts,
            thread_ts=thread or vote.message_ts,
            message_text=vote.message_text,
            blocks=vote.blocks,
            at=at,
        )
    return None


def reaction_change(event: Mapping[str, Any], bot_user_id: str | None) -> ReactionChange | None:
    """A thumbs reaction by a person on a message the bot wrote; ``None`` otherwise."""
    kind = event.get("type")
    if kind not in ("reaction_added", "reaction_removed"):
        return None
    name = str(event.get("reaction", "")).split("::", 1)[0]  # "+1::skin-tone-3" is still +1
    value = REACTION_VALUES.get(name)
    item = event.get("item")
    if value is None or not isinstance(item, dict) or item.get("type") != "message":
        return None
    user, channel, ts = _str(event.get("user")), _str(item.get("channel")), _str(item.get("ts"))
    if user is None or channel is None or ts is None or user == bot_user_id:
        return None
    if bot_user_id is None or event.get("item_user") != bot_user_id:
        return None
    return ReactionChange(
        value=value,
        added=kind == "reaction_added",
        user=user,
        channel=channel,
        ts=ts,
        at=_event_time(event),
    )


def remaining_thumb(reactions: Any, user: str) -> int | None:
    """From a ``reactions.get`` message: the thumb ``user`` still has on it, if exactly one."""
    if not isinstance(reactions, list):
        return None
    left = {
        REACTION_VALUES[name]
        for r in reactions
        if isinstance(r, dict)
        and (name := str(r.get("name", "")).split("::", 1)[0]) in REACTION_VALUES
        and user in (r.get("users") or [])
    }
    return left.pop() if len(left) == 1 else None


def parse_subcommand(text: str | None) -> Subcommand | None:
    """``help``/``privacy``/``forget`` (any case, extra words ignored); ``None`` if unknown.

    An empty command means help.
    """
    words = (text or "").split()
    if not words:
        return "help"
    word = words[0].lower()
    if word in ("help", "privacy", "forget"):
        return word  # type: ignore[return-value]
    return None
