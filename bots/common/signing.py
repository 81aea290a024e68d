"""Signed tokens for buttons: the interaction id and the vote (or the follow-up choice after a
👎), HMAC-protected, with a key id.

A token is ``t2.<key id>.<interaction id>.<u|d>.<mac>`` (51 ASCII characters): it fits
Telegram's 64-byte ``callback_data`` and serves as a Slack button value. The key id names the
signing key (a keyed fingerprint of it, so it reveals nothing the MAC does not), so that during a
rotation tokens made with the previous key are still accepted while new ones use the current
key; a token naming any other key is refused. Tokens of the first format, ``t1.…`` (no key id),
are still on buttons posted before key ids existed: they are checked against the same keys.
A forged, truncated or altered token, or one whose key is unknown, raises
:class:`InvalidVoteToken`.

Follow-up buttons (what went wrong after a 👎, or the choices of a reply that asked to clarify)
carry ``c1.<key id>.<interaction id>.<choice>.<mac>``: ``choice`` is ``0``-``3`` (the offered
intent at that place; the bot keeps the list it offered), ``o`` (something else) or ``h`` (the
answer didn't help). Their MAC covers the ``c1`` header, so a vote token cannot pass for a
choice token or the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass

PREFIX = "t2"
LEGACY_PREFIX = "t1"
CHOICE_PREFIX = "c1"
OTHER, UNHELPFUL = "o", "h"  # the choices that name no intent
CHOICES = ("0", "1", "2", "3", OTHER, UNHELPFUL)


class InvalidVoteToken(ValueError):
    """The token was not made by us, was altered, or names a key we no longer hold."""


@dataclass(frozen=True, repr=False)  # repr=False: a key must never reach a log line
class SigningKeys:
    """The key that signs new buttons, and during a rotation the one it replaced."""

    current: str
    previous: str | None = None

    def __post_init__(self) -> None:
        if not self.current:
            raise ValueError("the signing key is empty")

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.current,) if not self.previous else (self.current, self.previous)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(key: str) -> str:
    """Six characters naming ``key``: an HMAC under the key itself, so only its holder can make
    it; 32 bits keep two keys in use at once apart."""
    return _b64(hmac.new(key.encode(), b"thumbloop vote key id", hashlib.sha256).digest()[:4])


def _mac(key: str, header: str, iid: uuid.UUID, value: int) -> str:
    # the header (format and key id) is signed too, so a token cannot be moved to another key
    msg = header.encode() + iid.bytes + (b"+" if value > 0 else b"-")
    return _b64(hmac.new(key.encode(), msg, hashlib.sha256).digest()[:12])


def _legacy_mac(key: str, iid: uuid.UUID, value: int) -> str:
    msg = iid.bytes + (b"+" if value > 0 else b"-")
    return _b64(hmac.new(key.encode(), msg, hashlib.sha256).digest()[:12])


def sign_vote(keys: SigningKeys, interaction_id: uuid.UUID, value: int) -> str:
    """The token of the 👍 (+1) or 👎 (-1) button of ``interaction_id``, by the current key."""
    if value not in (1, -1):
        raise ValueError("vote value must be +1 or -1")
    header = f"{PREFIX}.{key_id(keys.current)}"
    direction = "u" if value > 0 else "d"
    mac = _mac(keys.current, header, interaction_id, value)
    return f"{header}.{_b64(interaction_id.bytes)}.{direction}.{mac}"


def _parse(raw_id: str, direction: str) -> tuple[uuid.UUID, int]:
    if direction not in ("u", "d"):
        raise ValueError("bad direction")
    return uuid.UUID(bytes=_unb64(raw_id)), 1 if direction == "u" else -1


def verify_vote(keys: SigningKeys, token: str) -> tuple[uuid.UUID, int]:
    """Returns (interaction id, +1/-1) or raises InvalidVoteToken."""
    parts = token.split(".")
    try:
        if len(parts) == 5 and parts[0] == PREFIX:
            _, kid, raw_id, direction, mac = parts
            iid, value = _parse(raw_id, direction)
        elif len(parts) == 4 and parts[0] == LEGACY_PREFIX:
            _, raw_id, direction, mac = parts
            iid, value = _parse(raw_id, direction)
            kid = None
        else:
            raise ValueError("bad shape")
    except (ValueError, TypeError) as exc:
        raise InvalidVoteToken("malformed vote token") from exc
    if kid is None:
        expected = [_legacy_mac(key, iid, value) for key in keys.accepted]
    else:
        named = [key for key in keys.accepted if hmac.compare_digest(key_id(key), kid)]
        if not named:
            raise InvalidVoteToken("vote token signed with an unknown key")
        expected = [_mac(key, f"{PREFIX}.{kid}", iid, value) for key in named]
    # every candidate is compared (at most two), so timing does not say which key matched
    matches = [hmac.compare_digest(mac, want) for want in expected]
    if not any(matches):
        raise InvalidVoteToken("vote token signature does not match")
    return iid, value


def _choice_mac(key: str, header: str, iid: uuid.UUID, choice: str) -> str:
    msg = header.encode() + iid.bytes + b"/" + choice.encode()
    return _b64(hmac.new(key.encode(), msg, hashlib.sha256).digest()[:12])


def sign_choice(keys: SigningKeys, interaction_id: uuid.UUID, choice: str) -> str:
    """The token of a follow-up button: ``choice`` is one of :data:`CHOICES` (51 characters)."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {', '.join(CHOICES)}")
    header = f"{CHOICE_PREFIX}.{key_id(keys.current)}"
    mac = _choice_mac(keys.current, header, interaction_id, choice)
    return f"{header}.{_b64(interaction_id.bytes)}.{choice}.{mac}"


def is_choice_token(token: str) -> bool:
    """Whether ``token`` has the shape of a follow-up token (it may still be forged)."""
    return token.startswith(CHOICE_PREFIX + ".")


def verify_choice(keys: SigningKeys, token: str) -> tuple[uuid.UUID, str]:
    """Returns (interaction id, choice) or raises InvalidVoteToken."""
    parts = token.split(".")
    try:
        if len(parts) != 5 or parts[0] != CHOICE_PREFIX or parts[3] not in CHOICES:
            raise ValueError("bad shape")
        _, kid, raw_id, choice, mac = parts
        iid = uuid.UUID(bytes=_unb64(raw_id))
    except (ValueError, TypeError) as exc:
        raise InvalidVoteToken("malformed choice token") from exc
    named = [key for key in keys.accepted if hmac.compare_digest(key_id(key), kid)]
    if not named:
        raise InvalidVoteToken("choice token signed with an unknown key")
    header = f"{CHOICE_PREFIX}.{kid}"
    matches = [hmac.compare_digest(mac, _choice_mac(k, header, iid, choice)) for k in named]
    if not any(matches):
        raise InvalidVoteToken("choice token signature does not match")
    return iid, choice
