"""The inbox's web safety: the key that signs session cookies, CSRF tokens, form bodies read
with a size limit, and the headers every answer carries (no inline script, no framing)."""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from thumbloop.settings import Settings

MAX_FORM_BYTES = 64 * 1024
CSRF_FIELD = "csrf"

HEADERS = {
    # every script and style is a file of the package (learning/review/static): nothing inline,
    # nothing from elsewhere, so an injected <script> in a message could not run even unescaped
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def session_secret(settings: Settings) -> str:
    """``review_session_secret``, or a random key made once and kept under ``home`` (mode
    600), so logins survive a restart without anyone choosing a key."""
    given = settings.review.review_session_secret
    if given is not None and given.get_secret_value():
        return given.get_secret_value()
    path = settings.ensure_home() / "review-session.key"
    if not path.is_file():
        _write_private(path, secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, made on first use; every form carries it back."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], form: dict[str, str]) -> bool:
    expected = session.get(CSRF_FIELD)
    given = form.get(CSRF_FIELD, "")
    return isinstance(expected, str) and bool(expected) and hmac.compare_digest(expected, given)


class FormError(ValueError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """A url-encoded form (the only kind these pages send) as name → last value."""
    if len(body) > MAX_FORM_BYTES:
        raise FormError(413, "form too large")
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise FormError(415, "expected a url-encoded form")
    try:
        fields = parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise FormError(400, "form is not UTF-8") from exc
    return dict(fields)
