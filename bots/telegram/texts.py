"""What the Telegram bot says: command texts, apologies and button labels, in one place."""

from __future__ import annotations

UP, DOWN, TICK = "👍", "👎", "✓"

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
BUTTON_INVALID = "This button is not valid."
