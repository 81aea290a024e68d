"""The ``/thumbloop`` slash command: parsing and the texts it answers with. Pure."""

from __future__ import annotations

from typing import Literal

from bots.slack.convert import escape_mrkdwn

Subcommand = Literal["help", "privacy", "forget"]

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


def answer(sub: Subcommand | None, raw: str | None) -> str:
    """The reply text for ``help``/``privacy``/unknown (``forget`` is answered by its handler)."""
    if sub == "privacy":
        return PRIVACY
    if sub is None:
        word = escape_mrkdwn((raw or "").split()[0].replace("`", ""))[:40]
        return f"I don't know `{word}`.\n\n{HELP}"
    return HELP
