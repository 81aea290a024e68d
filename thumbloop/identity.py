"""Pseudonymous ids: platform user/chat ids never leave an adapter unhashed."""

from __future__ import annotations

import hashlib
import hmac


def hash_id(secret: str, platform: str, raw_id: str | int) -> str:
    """HMAC-SHA256 of ``platform:raw_id``; the platform prefix keeps namespaces apart."""
    msg = f"{platform}:{raw_id}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()
