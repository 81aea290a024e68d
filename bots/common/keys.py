"""Where each bot keeps its state on Redis: one key prefix per platform, so that each bot's
Redis user (``docker/make_secrets.py``) reaches its own keys only. A Telegram bot never reads a
Slack conversation's history, nor the other way round."""

from __future__ import annotations

PREFIXES = {"telegram": "thumbloop:tg", "slack": "thumbloop:slack"}

# where the history and the follow-ups of both bots lived before they had a prefix each: keys
# there expire with their TTLs; ``thumbloop forget`` still erases a user's there
LEGACY_PREFIXES = {"history": "thumbloop:history", "followup": "thumbloop:followup"}


def state_prefix(platform: str) -> str:
    """The prefix of every Redis key the ``platform`` bot writes."""
    try:
        return PREFIXES[platform]
    except KeyError:
        raise ValueError(f"no bot state on Redis for platform {platform!r}") from None


__all__ = ["LEGACY_PREFIXES", "PREFIXES", "state_prefix"]
