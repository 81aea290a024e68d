"""CSRF tokens, form bodies and the session key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from learning.review.security import (
    MAX_FORM_BYTES,
    FormError,
    csrf_ok,
    csrf_token,
    parse_form,
    session_secret,
)
from thumbloop.settings import Settings

FORM = "application/x-www-form-urlencoded"


def test_a_session_gets_one_token_and_forms_must_carry_it() -> None:
    session: dict[str, object] = {}
    token = csrf_token(session)
    assert len(token) >= 40
    assert csrf_token(session) == token  # stable for the session
    assert csrf_ok(session, {"csrf": token})
    assert not csrf_ok(session, {"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")})
    assert not csrf_ok(session, {})
    assert not csrf_ok({}, {"csrf": ""})  # no token in the session: nothing matches
    assert csrf_token({}) != token  # each session its own


def test_forms_are_url_encoded_and_small() -> None:
    assert parse_form(FORM + "; charset=UTF-8", b"a=1&b=x+y&a=2&c=") == {
        "a": "2",
        "b": "x y",
        "c": "",
    }
    with pytest.raises(FormError) as err:
        parse_form("multipart/form-data; boundary=x", b"--x--")
    assert err.value.status == 415
    with pytest.raises(FormError) as err:
        parse_form(FORM, b"a=" + b"x" * MAX_FORM_BYTES)
    assert err.value.status == 413
    with pytest.raises(FormError) as err:
        parse_form(FORM, b"a=%ff")
    assert err.value.status == 400


def test_the_session_key_is_the_setting_or_a_private_random_file(tmp_path: Path) -> None:
    given = Settings(home=tmp_path, review_session_secret=SecretStr("k" * 40))
    assert session_secret(given) == "k" * 40
    settings = Settings(home=tmp_path / "home")
    key = session_secret(settings)
    assert len(key) == 64
    path = tmp_path / "home" / "review-session.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session_secret(settings) == key  # kept: logins survive a restart
    assert session_secret(Settings(home=tmp_path / "other")) != key
