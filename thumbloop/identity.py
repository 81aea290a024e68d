"""Pseudonymous ids, and the keys behind them and behind the vote buttons.

Platform user/chat ids never leave an adapter unhashed: :func:`hash_id` keys them with the id
key. Two keys are in play, kept apart so that the one that must never change (the id key: a new
one makes every known user a stranger) is not the one that is rotated (the signing key of the
vote buttons). :func:`resolve_keys` says which values are in effect: each key's own setting,
else ``THUMBLOOP_HMAC_SECRET`` (deployments from before the split keep their hashes), else the
keys ``thumbloop up`` generated for its home (:func:`ensure_home_keys`), else the public
development key, which :func:`check_keys` refuses outside development mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from thumbloop.settings import DEV_KEY, Settings

log = logging.getLogger(__name__)

KEYS_FILE = "keys.json"
# Values anyone can read: the built-in default, and the placeholder of docker/.env.example.
PUBLIC_KEYS = frozenset({DEV_KEY, "CHANGE_ME"})
HOW_TO_SET = (
    "set THUMBLOOP_ID_KEY and THUMBLOOP_SIGNING_KEY to secrets of your own, each from "
    "`openssl rand -hex 32` (keep the id key once chosen: it is what users' hashed ids are made "
    "of), or set THUMBLOOP_DEV=true on a development machine"
)


def hash_id(secret: str, platform: str, raw_id: str | int) -> str:
    """HMAC-SHA256 of ``platform:raw_id``; the platform prefix keeps namespaces apart."""
    msg = f"{platform}:{raw_id}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


class KeyConfigError(ValueError):
    """A key in effect is public (the development default or a placeholder), or the home's keys
    file is damaged."""


@dataclass(frozen=True, repr=False)  # repr=False: keys must never reach a log line
class Keys:
    """The keys in effect, and where each came from (a variable, the home's keys file, or
    nothing set), for messages that must name a key without showing it."""

    id_key: str
    signing_key: str
    signing_key_previous: str | None = None
    id_key_from: str = "THUMBLOOP_ID_KEY"
    signing_key_from: str = "THUMBLOOP_SIGNING_KEY"

    def public(self) -> list[str]:
        """Where each key in effect that anyone could know came from."""
        found: list[str] = []
        if self.id_key in PUBLIC_KEYS:
            found.append(f"the id key ({self.id_key_from})")
        if self.signing_key in PUBLIC_KEYS:
            found.append(f"the signing key ({self.signing_key_from})")
        if self.signing_key_previous in PUBLIC_KEYS:
            found.append("the previous signing key (THUMBLOOP_SIGNING_KEY_PREVIOUS)")
        return found


def _value(secret: SecretStr | None) -> str | None:
    return (secret.get_secret_value() or None) if secret is not None else None


def read_home_keys(home: Path) -> dict[str, str]:
    """The keys ``thumbloop up`` generated for ``home`` (empty when it generated none)."""
    path = home / KEYS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise KeyConfigError(
            f"{path} is unreadable ({type(exc).__name__}): remove it or fix it"
        ) from exc
    keys = {k: data.get(k) for k in ("id_key", "signing_key")} if isinstance(data, dict) else {}
    if not all(isinstance(v, str) and v for v in keys.values()):
        raise KeyConfigError(
            f"{path} needs an id_key and a signing_key: remove it to make new ones"
        )
    return {k: str(v) for k, v in keys.items()}


def resolve_keys(settings: Settings) -> Keys:
    """The keys in effect for ``settings`` (module docstring: the order they are looked in)."""
    legacy = _value(settings.hmac_secret)
    legacy = legacy if legacy and legacy != DEV_KEY else None
    id_key, signing_key = _value(settings.id_key), _value(settings.signing_key)
    home: dict[str, str] = {}
    if not (id_key or legacy) or not (signing_key or legacy):
        home = read_home_keys(settings.home)  # read only when an unset key falls back to it

    def pick(own: str | None, variable: str, name: str) -> tuple[str, str]:
        if own:
            return own, variable
        if legacy:
            return legacy, "THUMBLOOP_HMAC_SECRET"
        if name in home:
            return home[name], str(settings.home / KEYS_FILE)
        return DEV_KEY, "unset, so the built-in development key"

    id_value, id_from = pick(id_key, "THUMBLOOP_ID_KEY", "id_key")
    signing_value, signing_from = pick(signing_key, "THUMBLOOP_SIGNING_KEY", "signing_key")
    return Keys(
        id_key=id_value,
        signing_key=signing_value,
        signing_key_previous=_value(settings.signing_key_previous),
        id_key_from=id_from,
        signing_key_from=signing_from,
    )


def check_keys(settings: Settings) -> Keys:
    """The keys in effect, refused (:class:`KeyConfigError`) where one is public, unless
    development mode (``THUMBLOOP_DEV``) is on."""
    keys = resolve_keys(settings)
    public = keys.public()
    if public and not settings.bots.dev:
        raise KeyConfigError(
            f"refusing to start: {' and '.join(public)} "
            f"{'is a published value' if len(public) == 1 else 'are published values'} that "
            f"anyone could use to forge votes or recognise users; {HOW_TO_SET}."
        )
    return keys


def ensure_home_keys(settings: Settings) -> Path | None:
    """For the local stack (``thumbloop up``): where no id or signing key is set, random ones
    kept in ``<home>/keys.json`` (mode 600), made on the first call and read by every process on
    that home. Returns the file when a key in effect comes from it, else None."""
    unset = {
        name
        for name, own in (("id_key", settings.id_key), ("signing_key", settings.signing_key))
        if not _value(own)
    }
    legacy = _value(settings.hmac_secret)
    if not unset or (legacy and legacy != DEV_KEY):
        return None
    path = settings.ensure_home() / KEYS_FILE
    if not path.exists():
        _create(path, {"id_key": secrets.token_hex(32), "signing_key": secrets.token_hex(32)})
    elif path.stat().st_mode & 0o077:
        # copied or restored with a looser mode: keys are for this user only
        log.warning("%s was readable by others: made it mode 600", path)
        path.chmod(0o600)
    read_home_keys(settings.home)  # a damaged file is reported here, not in each process
    return path


def _create(path: Path, keys: dict[str, str]) -> None:
    # Written whole under another name, then linked into place: another process starting at the
    # same moment sees no file or a complete one, and the first link wins.
    fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=path.parent)  # mode 600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"version": 1, **keys}, out)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
