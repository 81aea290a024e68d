"""Reviewers' password hashes."""

from __future__ import annotations

import pytest

from learning.review.passwords import hash_password, verify_password


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("", stored)


def test_hashes_are_salted() -> None:
    assert hash_password("same password") != hash_password("same password")


def test_the_cost_is_read_from_the_stored_hash() -> None:
    cheap = hash_password("pw-of-old-cost", n=2**10)
    assert cheap.startswith("scrypt$1024$")
    assert verify_password("pw-of-old-cost", cheap)


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "bcrypt$1$2$3$4$5", "scrypt$x$8$1$c2FsdA$a2V5", "scrypt$1024$8$1$!!$!!"],
)
def test_a_malformed_hash_never_verifies_and_never_raises(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_an_empty_password_is_refused() -> None:
    with pytest.raises(ValueError):
        hash_password("")
