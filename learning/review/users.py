"""Who may review: names and password hashes from a users file (``thumbloop review add-user``
writes it, mode 600) and from the ``review_users`` setting. There is no default user and no
default password: with neither, nobody can log in.

The file is read again when it changes, so a user added or removed while the inbox runs counts
at the next request."""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import threading
from pathlib import Path

from learning.review.passwords import hash_password, verify_password
from thumbloop.settings import Settings

NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class UsersFileError(ValueError):
    """A users file or setting line is not ``name:hash``."""


def users_file(settings: Settings) -> Path:
    return settings.review.review_users_file or settings.home / "review-users"


def parse_users(text: str, where: str) -> dict[str, str]:
    """``name:hash`` entries, one a line (or comma-separated); ``#`` starts a comment line."""
    users: dict[str, str] = {}
    for lineno, raw in enumerate(re.split(r"[\n,]", text), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not NAME.match(name) or not stored:
            raise UsersFileError(f"{where}: entry {lineno} is not name:hash")
        users[name] = stored
    return users


def read_users_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return parse_users(path.read_text(encoding="utf-8"), str(path))


def write_users_file(path: Path, users: dict[str, str]) -> None:
    """Replace the file whole (a reader never sees half of it), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{name}:{stored}\n" for name, stored in sorted(users.items()))
    fd, tmp = tempfile.mkstemp(prefix=".review-users-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("# thumbloop review users: name:scrypt hash (thumbloop review add-user)\n")
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_user(path: Path, name: str, password: str) -> bool:
    """Add ``name`` or change its password; True when the user is new."""
    if not NAME.match(name):
        raise ValueError("a name is 1-64 letters, digits or _ . @ -")
    users = read_users_file(path)
    new = name not in users
    users[name] = hash_password(password)
    write_users_file(path, users)
    return new


def remove_user(path: Path, name: str) -> bool:
    users = read_users_file(path)
    if users.pop(name, None) is None:
        return False
    write_users_file(path, users)
    return True


class UserStore:
    """The reviewers of a running inbox: the file (re-read when it changes) and the setting."""

    def __init__(self, path: Path, extra: str | None = None) -> None:
        self.path = path
        self._extra = parse_users(extra, "THUMBLOOP_REVIEW_USERS") if extra else {}
        self._file: dict[str, str] = {}
        self._stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()
        # a login for an unknown name checks this hash, so it takes as long as a wrong password
        # and a timing cannot tell which names exist
        self._decoy = hash_password(secrets.token_urlsafe(16))

    def _current(self) -> dict[str, str]:
        try:
            st = self.path.stat()
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._file = read_users_file(self.path) if stamp else {}
                self._stamp = stamp
            return self._file | self._extra

    def names(self) -> set[str]:
        return set(self._current())

    def exists(self, name: str) -> bool:
        return name in self._current()

    def check(self, name: str, password: str) -> bool:
        stored = self._current().get(name)
        ok = verify_password(password, stored or self._decoy)
        return ok and stored is not None
