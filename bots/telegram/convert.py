"""Pure checks and builders for the Telegram adapter: no I/O, no bot calls.

Everything here takes plain values or python-telegram-bot data objects and returns a decision
(is this message for us, what does this reaction mean, what does this button say), so the
handlers in :mod:`bots.telegram.handlers` stay thin and these stay unit-testable.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from telegram import (
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReactionType,
    ReactionTypeEmoji,
)
from telegram.constants import MessageLimit

from bots.common.signing import InvalidVoteToken, sign_vote, verify_vote
from bots.telegram import texts

MAX_TEXT = int(MessageLimit.MAX_TEXT_LENGTH)  # 4096
FORGET_PREFIX = "fg"
ELLIPSIS = "…"


@dataclass(frozen=True)
class VoteChoice:
    interaction_id: uuid.UUID
    value: int  # +1 / -1


@dataclass(frozen=True)
class ForgetChoice:
    confirm: bool
    user_tag: str  # the first 16 hex chars of the asking user's hash


def is_addressed(message: Message, bot_id: int, bot_username: str | None) -> bool:
    """Private chats always; groups only when the bot is mentioned or replied to."""
    if message.chat.type == Chat.PRIVATE:
        return True
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        return True
    mention = f"@{bot_username}".lower() if bot_username else None
    for entity, text in message.parse_entities().items():
        if entity.type == MessageEntity.MENTION and mention and text.lower() == mention:
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot_id:
            return True
    return False


def strip_mention(text: str, bot_username: str | None) -> str:
    """The message without ``@botname`` (which says who it is for, not what it asks)."""
    if bot_username:
        text = re.sub(rf"@{re.escape(bot_username)}\b", " ", text, flags=re.IGNORECASE)
    return " ".join(text.split())


def fit_text(text: str, limit: int = MAX_TEXT) -> str:
    """Telegram refuses messages over 4,096 characters: cut at a word with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def emojis_of(reactions: Iterable[ReactionType]) -> list[str]:
    return [r.emoji for r in reactions if isinstance(r, ReactionTypeEmoji)]


def reaction_vote(old: Sequence[str], new: Sequence[str]) -> int | None:
    """What a reaction change means: +1 / -1 (a vote), 0 (vote withdrawn), None (nothing).

    A newly added 👍 or 👎 is a vote (the later one wins when both are added at once); removing
    the last thumb withdraws the vote; other emoji are ignored.
    """
    thumbs = {texts.UP: 1, texts.DOWN: -1}
    old_t = [e for e in old if e in thumbs]
    new_t = [e for e in new if e in thumbs]
    added = [e for e in new_t if e not in old_t]
    if added:
        return thumbs[added[-1]]
    if new_t:
        if len(set(new_t)) == 1 and set(old_t) - set(new_t):
            return thumbs[new_t[0]]  # had both, kept one
        return None
    return 0 if old_t else None


def vote_keyboard(
    secret: str, interaction_id: uuid.UUID, chosen: int | None = None
) -> InlineKeyboardMarkup:
    """👍 / 👎 with signed callback data; the chosen one carries a tick."""

    def label(emoji: str, value: int) -> str:
        return f"{emoji} {texts.TICK}" if chosen == value else emoji

    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    label(texts.UP, 1), callback_data=sign_vote(secret, interaction_id, 1)
                ),
                InlineKeyboardButton(
                    label(texts.DOWN, -1), callback_data=sign_vote(secret, interaction_id, -1)
                ),
            ]
        ]
    )


def user_tag(user_hash: str) -> str:
    return user_hash[:16]


def forget_keyboard(user_hash: str) -> InlineKeyboardMarkup:
    tag = user_tag(user_hash)
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(texts.FORGET_YES, callback_data=f"{FORGET_PREFIX}:y:{tag}"),
                InlineKeyboardButton(texts.FORGET_NO, callback_data=f"{FORGET_PREFIX}:n:{tag}"),
            ]
        ]
    )


def parse_callback(secret: str, data: str | None) -> VoteChoice | ForgetChoice | None:
    """A verified vote, a forget confirmation, or None for anything forged or malformed."""
    if not data:
        return None
    if data.startswith(f"{FORGET_PREFIX}:"):
        parts = data.split(":")
        if len(parts) == 3 and parts[1] in ("y", "n") and re.fullmatch(r"[0-9a-f]{16}", parts[2]):
            return ForgetChoice(confirm=parts[1] == "y", user_tag=parts[2])
        return None
    try:
        iid, value = verify_vote(secret, data)
    except InvalidVoteToken:
        return None
    return VoteChoice(iid, value)


def message_ref(conversation: str, message_id: int) -> str:
    """The platform reference stored with an interaction: hashed chat + message id."""
    return f"{conversation}:{message_id}"
