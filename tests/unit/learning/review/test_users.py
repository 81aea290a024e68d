"""Who may review: the users file, the setting, and the running store."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from learning.review.passwords import hash_password
from learning.review.users import (
    UsersFileError,
    UserStore,
    parse_users,
    read_users_file,
    remove_user,
    set_user,
    users_file,
)
from thumbloop.settings import Settings


def test_the_users_file_is_private_and_holds_hashes_only(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "review-users"
    assert set_user(path, "alice", "correct horse battery")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "correct horse battery" not in path.read_text()
    assert not set_user(path, "alice", "a new password!")  # a change, not a new user
    set_user(path, "bob", "another password")
    assert set(read_users_file(path)) == {"alice", "bob"}
    assert remove_user(path, "alice")
    assert not remove_user(path, "alice")
    assert set(read_users_file(path)) == {"bob"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        set_user(tmp_path / "u", "alice smith", "correct horse battery")
    with pytest.raises(UsersFileError):
        parse_users("alice\n", "test")
    with pytest.raises(UsersFileError):
        parse_users("al ice:scrypt$1", "test")
    assert parse_users("# comment\n\nalice:h1, bob:h2", "test") == {"alice": "h1", "bob": "h2"}


def test_the_store_checks_passwords_and_rereads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "review-users"
    store = UserStore(path)
    assert store.names() == set()  # no file: nobody, and no default user
    assert not store.check("admin", "admin")
    set_user(path, "alice", "correct horse battery")
    assert store.check("alice", "correct horse battery")
    assert not store.check("alice", "wrong password")
    assert not store.check("mallory", "correct horse battery")
    remove_user(path, "alice")
    assert not store.exists("alice")


def test_users_from_the_setting_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "review-users"
    set_user(path, "alice", "file password!")
    store = UserStore(path, f"alice:{hash_password('setting password')}")
    assert store.check("alice", "setting password")
    assert not store.check("alice", "file password!")


def test_the_users_file_defaults_to_home(tmp_path: Path) -> None:
    assert users_file(Settings(home=tmp_path)) == tmp_path.resolve() / "review-users"
    own = tmp_path / "elsewhere"
    assert users_file(Settings(home=tmp_path, review_users_file=own)) == own
