"""Signed vote tokens for buttons: the interaction id and the vote, HMAC-protected.

Fits Telegram's 64-byte ``callback_data`` (44 ASCII chars) and serves as a Slack button value.
A forged, truncated or altered token raises :class:`InvalidVoteToken`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

PREFIX = "t1"


class InvalidVoteToken(ValueError):
    """The token was not made by us, or was altered."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, iid: uuid.UUID, value: int) -> str:
    msg = iid.bytes + (b"+" if value > 0 else b"-")
    return _b64(hmac.new(secret.encode(), msg, hashlib.sha256).digest()[:12])


def sign_vote(secret: str, interaction_id: uuid.UUID, value: int) -> str:
    if value not in (1, -1):
        raise ValueError("vote value must be +1 or -1")
    direction = "u" if value > 0 else "d"
    return (
        f"{PREFIX}.{_b64(interaction_id.bytes)}.{direction}.{_mac(secret, interaction_id, value)}"
    )


def verify_vote(secret: str, token: str) -> tuple[uuid.UUID, int]:
    """Returns (interaction id, +1/-1) or raises InvalidVoteToken."""
    try:
        prefix, raw_id, direction, mac = token.split(".")
        if prefix != PREFIX or direction not in ("u", "d"):
            raise ValueError("bad shape")
        iid = uuid.UUID(bytes=_unb64(raw_id))
    except (ValueError, TypeError) as exc:
        raise InvalidVoteToken("malformed vote token") from exc
    value = 1 if direction == "u" else -1
    if not hmac.compare_digest(mac, _mac(secret, iid, value)):
        raise InvalidVoteToken("vote token signature does not match")
    return iid, value
