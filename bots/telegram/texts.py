"""What the Telegram bot says and shows: command texts, apologies, replies cut to Telegram's
limit, and the inline keyboards (labels and callback data) under them, in one place. Pure."""

from __future__ import annotations

import uuid

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit

from bots.common.followup import FollowUp
from bots.common.signing import SigningKeys, sign_choice, sign_vote

UP, DOWN, TICK = "👍", "👎", "✓"
MAX_TEXT = int(MessageLimit.MAX_TEXT_LENGTH)  # 4096
ELLIPSIS = "…"
FORGET_PREFIX = "fg"  # the /forget buttons' callback data: fg:<y|n>:<user tag>

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "What this bot is"),
    ("help", "How to talk to the bot and rate its replies"),
    ("privacy", "What is stored and for how long"),
    ("forget", "Delete your stored messages and votes"),
)

START = (
    "Hi! I'm Thumbloop, a support bot that learns from your feedback.\n\n"
    "Ask me anything about your card, payments or account and I'll answer. "
    f"Every reply has {UP} / {DOWN} buttons: please rate it (reacting with {UP} or {DOWN} "
    "works too). Your votes teach me which answers help.\n\n"
    "/help how it works · /privacy what is stored · /forget delete your data"
)

HELP = (
    "Send me a text message and I'll reply. In groups, mention me or reply to one of my "
    "messages.\n\n"
    f"Rate a reply with its {UP} / {DOWN} buttons, or react to it with {UP} or {DOWN}. "
    "Pressing the other button changes your vote; removing your reaction withdraws it.\n\n"
    "Commands:\n"
    "/start what this bot is\n"
    "/privacy what is stored and for how long\n"
    "/forget delete your stored messages and votes"
)


def privacy_text(history_turns: int, history_ttl_s: int) -> str:
    return (
        "What I store:\n"
        f"• The last {history_turns} messages of this chat, so I can follow the conversation; "
        f"they expire {_duration(history_ttl_s)} after the last message.\n"
        "• Each message you send me, my reply, what I understood (topic and tone), the model "
        f"version, and your {UP}/{DOWN} votes. These are kept to improve the bot until you "
        "delete them with /forget.\n\n"
        "Your Telegram user and chat ids are never stored: I keep only a keyed hash (HMAC) of "
        "them. Nothing is shared with other users or services."
    )


def _duration(seconds: int) -> str:
    if seconds % 86_400 == 0:
        days = seconds // 86_400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


FORGET_ASK = (
    "Delete everything I stored about you (your messages, my replies to them and your votes)? "
    "This cannot be undone."
)
FORGET_YES, FORGET_NO = "Yes, delete my data", "Cancel"
FORGET_DONE = "Done: your stored messages and votes are being deleted."
FORGET_CANCELLED = "Nothing was deleted."
FORGET_NOT_YOURS = "Only the person who asked can confirm this."

APOLOGY_UNAVAILABLE = "Sorry, I can't answer right now. Please try again in a minute."
APOLOGY_REJECTED = "Sorry, I couldn't read that message. Could you rephrase it?"
APOLOGY_TOO_LONG = "Sorry, that message is too long for me. Could you make it shorter?"
MENTION_EMPTY = "Yes? Ask me anything about your card, payments or account."
TEXT_ONLY = "Sorry, I can only read text messages. Please type your question."

VOTE_THANKS = {1: f"Thanks for the {UP}!", -1: f"Thanks, noted {DOWN}. I'll try to do better."}
ASK_WHAT_WENT_WRONG = f"Thanks, noted {DOWN}. What went wrong? Tap an answer below."
BUTTON_INVALID = "This button is not valid."


def fit_text(text: str, limit: int = MAX_TEXT) -> str:
    """Telegram refuses messages over 4,096 characters: cut at a word with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


# -- inline keyboards -------------------------------------------------------------------------


def vote_keyboard(
    keys: SigningKeys, interaction_id: uuid.UUID, chosen: int | None = None
) -> InlineKeyboardMarkup:
    """👍 / 👎 with signed callback data; the chosen one carries a tick."""

    def label(emoji: str, value: int) -> str:
        return f"{emoji} {TICK}" if chosen == value else emoji

    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    label(UP, 1), callback_data=sign_vote(keys, interaction_id, 1)
                ),
                InlineKeyboardButton(
                    label(DOWN, -1), callback_data=sign_vote(keys, interaction_id, -1)
                ),
            ]
        ]
    )


def reply_keyboard(
    keys: SigningKeys,
    interaction_id: uuid.UUID,
    vote: int | None = None,
    followup: FollowUp | None = None,
    picked: str | None = None,
) -> InlineKeyboardMarkup:
    """The keyboard under a reply: the 👍 / 👎 row (``vote`` ticked), then, when ``followup`` is
    given, one row per follow-up choice (signed; ``picked`` ticked). The 👍 / 👎 row stays, so
    the vote can still change."""
    rows = [list(vote_keyboard(keys, interaction_id, vote).inline_keyboard[0])]
    if followup is not None:
        for choice in followup.choices:
            label = followup.label(choice)
            rows.append(
                [
                    InlineKeyboardButton(
                        f"{TICK} {label}" if choice == picked else label,
                        callback_data=sign_choice(keys, interaction_id, choice),
                    )
                ]
            )
    return InlineKeyboardMarkup(rows)


def user_tag(user_hash: str) -> str:
    return user_hash[:16]


def forget_keyboard(user_hash: str) -> InlineKeyboardMarkup:
    tag = user_tag(user_hash)
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(FORGET_YES, callback_data=f"{FORGET_PREFIX}:y:{tag}"),
                InlineKeyboardButton(FORGET_NO, callback_data=f"{FORGET_PREFIX}:n:{tag}"),
            ]
        ]
    )
