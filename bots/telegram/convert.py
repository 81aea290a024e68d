"""Pure checks and converters for the Telegram adapter: no I/O, no bot calls.

Everything here takes plain values or python-telegram-bot data objects and returns a decision
(is this message for us, what does this reaction mean, which button was pressed), so the
handlers in :mod:`bots.telegram.handlers` stay thin and these stay unit-testable. What the bot
sends back (texts, the buttons' labels and data) is built in :mod:`bots.telegram.texts`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from telegram import (
    Chat,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReactionType,
    ReactionTypeEmoji,
)

from bots.common.signing import (
    InvalidVoteToken,
    SigningKeys,
    is_choice_token,
    verify_choice,
    verify_vote,
)
from bots.telegram import texts

# uuid5 namespace of the interactions answered on Telegram (any fixed UUID: it only has to differ
# from other platforms' and never change)
_INTERACTIONS = uuid.UUID("5d0f6a0e-3b1c-4a57-9a57-7e1e6c0a7f21")


def message_interaction_id(conversation: str, message_id: int) -> uuid.UUID:
    """The interaction a reply to this message records: the same each time the message is
    handled (a bot killed after replying handles it again on restart, see
    :mod:`bots.telegram.inbox`), so a second handling stores no second interaction.
    ``conversation`` is the chat's HMAC, never its raw id."""
    return uuid.uuid5(_INTERACTIONS, f"{conversation}:{message_id}")


@dataclass(frozen=True)
class VoteChoice:
    interaction_id: uuid.UUID
    value: int  # +1 / -1


@dataclass(frozen=True)
class ChoiceTap:
    """A tap on a follow-up choice (after a 👎, or under a reply that asked to clarify)."""

    interaction_id: uuid.UUID
    choice: str  # one of bots.common.signing.CHOICES


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


def parse_callback(
    keys: SigningKeys, data: str | None
) -> VoteChoice | ChoiceTap | ForgetChoice | None:
    """A verified vote or follow-up choice, a forget confirmation, or None for anything forged
    or malformed."""
    if not data:
        return None
    if is_choice_token(data):
        try:
            return ChoiceTap(*verify_choice(keys, data))
        except InvalidVoteToken:
            return None
    if data.startswith(f"{texts.FORGET_PREFIX}:"):
        parts = data.split(":")
        if len(parts) == 3 and parts[1] in ("y", "n") and re.fullmatch(r"[0-9a-f]{16}", parts[2]):
            return ForgetChoice(confirm=parts[1] == "y", user_tag=parts[2])
        return None
    try:
        iid, value = verify_vote(keys, data)
    except InvalidVoteToken:
        return None
    return VoteChoice(iid, value)


def vote_shown(markup: InlineKeyboardMarkup | None) -> int | None:
    """The vote a reply's keyboard shows ticked (+1 / -1), or None."""
    if markup is None or not markup.inline_keyboard:
        return None
    for button in markup.inline_keyboard[0]:
        if button.text == f"{texts.UP} {texts.TICK}":
            return 1
        if button.text == f"{texts.DOWN} {texts.TICK}":
            return -1
    return None


def followup_shown(markup: InlineKeyboardMarkup | None) -> bool:
    """Whether a reply's keyboard shows follow-up choices under the 👍 / 👎 row."""
    return markup is not None and len(markup.inline_keyboard) > 1


def message_ref(conversation: str, message_id: int) -> str:
    """The platform reference stored with an interaction: hashed chat + message id."""
    return f"{conversation}:{message_id}"
