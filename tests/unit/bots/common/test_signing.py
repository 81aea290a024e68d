"""Signed vote tokens: they round-trip, fit Telegram's callback data, name their key, survive a
rotation while the previous key is kept, and forgeries (other keys, altered or unknown key ids)
are refused."""

import base64
import hashlib
import hmac
import uuid

import pytest

from bots.common.signing import InvalidVoteToken, SigningKeys, key_id, sign_vote, verify_vote

K = SigningKeys("k")
OLD, NEW = "old-" + "o" * 60, "new-" + "n" * 60


def test_vote_token_round_trip_and_fits_telegram() -> None:
    iid = uuid.UUID(int=(1 << 128) - 1)  # no id encodes longer
    for value in (1, -1):
        token = sign_vote(SigningKeys(NEW, OLD), iid, value)
        assert len(token.encode()) <= 64  # Telegram's callback_data limit
        assert token.split(".")[1] == key_id(NEW)  # signed with the current key, named
        assert verify_vote(SigningKeys(NEW, OLD), token) == (iid, value)
        assert verify_vote(SigningKeys(NEW), token) == (iid, value)


@pytest.mark.parametrize("mutate", ["other-key", "flip", "garbage", "truncate"])
def test_forged_tokens_are_refused(mutate: str) -> None:
    iid = uuid.uuid4()
    token = sign_vote(K, iid, 1)
    if mutate == "other-key":
        bad = sign_vote(SigningKeys("not-k"), iid, 1)
    elif mutate == "flip":
        bad = token.replace(".u.", ".d.")
    elif mutate == "garbage":
        bad = "hello"
    else:
        bad = token[:-3]
    with pytest.raises(InvalidVoteToken):
        verify_vote(K, bad)


def test_a_token_of_the_previous_key_counts_until_the_key_is_dropped() -> None:
    iid = uuid.uuid4()
    old_button = sign_vote(SigningKeys(OLD), iid, -1)
    assert verify_vote(SigningKeys(NEW, previous=OLD), old_button) == (iid, -1)
    with pytest.raises(InvalidVoteToken, match="unknown key"):
        verify_vote(SigningKeys(NEW), old_button)


def test_a_forged_or_unknown_key_id_is_refused() -> None:
    iid = uuid.uuid4()
    keys = SigningKeys(NEW, OLD)
    _, kid, raw_id, direction, mac = sign_vote(keys, iid, 1).split(".")
    # the current key's signature presented under the previous key's id: the id is signed too
    with pytest.raises(InvalidVoteToken, match="does not match"):
        verify_vote(keys, ".".join(["t2", key_id(OLD), raw_id, direction, mac]))
    for other in ("AAAAAA", key_id("a key we never had")):
        with pytest.raises(InvalidVoteToken, match="unknown key"):
            verify_vote(keys, ".".join(["t2", other, raw_id, direction, mac]))
    assert kid == key_id(NEW) != key_id(OLD)


def _t1(key: str, iid: uuid.UUID, value: int) -> str:
    """A token as bots made them before key ids (still under replies posted back then)."""
    mac = hmac.new(key.encode(), iid.bytes + (b"+" if value > 0 else b"-"), hashlib.sha256)

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"t1.{b64(iid.bytes)}.{'u' if value > 0 else 'd'}.{b64(mac.digest()[:12])}"


def test_tokens_from_before_key_ids_are_checked_against_the_keys_held() -> None:
    iid = uuid.uuid4()
    assert verify_vote(SigningKeys(OLD), _t1(OLD, iid, 1)) == (iid, 1)
    assert verify_vote(SigningKeys(NEW, OLD), _t1(OLD, iid, -1)) == (iid, -1)
    for token in (_t1(OLD, iid, 1), _t1(OLD, iid, 1).replace(".u.", ".d.")):
        with pytest.raises(InvalidVoteToken):
            verify_vote(SigningKeys(NEW), token)


def test_keys_stay_out_of_reprs_and_an_empty_key_is_refused() -> None:
    assert OLD not in repr(SigningKeys(NEW, OLD)) and NEW not in repr(SigningKeys(NEW))
    with pytest.raises(ValueError):
        SigningKeys("")


def test_choice_tokens_round_trip_fit_telegram_and_survive_a_rotation() -> None:
    from bots.common.signing import CHOICES, sign_choice, verify_choice

    iid = uuid.UUID(int=(1 << 128) - 1)
    for choice in CHOICES:
        token = sign_choice(SigningKeys(NEW, OLD), iid, choice)
        assert len(token.encode()) <= 64
        assert verify_choice(SigningKeys(NEW, OLD), token) == (iid, choice)
        assert verify_choice(SigningKeys(NEW), token) == (iid, choice)
        # signed before a rotation, checked after it while the old key is still kept
        assert verify_choice(SigningKeys(NEW, OLD), sign_choice(SigningKeys(OLD), iid, choice))
    with pytest.raises(ValueError):
        sign_choice(K, iid, "9")


@pytest.mark.parametrize("mutate", ["other-key", "other-choice", "vote-token", "truncate"])
def test_forged_choice_tokens_are_refused(mutate: str) -> None:
    from bots.common.signing import sign_choice, verify_choice

    iid = uuid.uuid4()
    token = sign_choice(K, iid, "1")
    if mutate == "other-key":
        bad = sign_choice(SigningKeys("not-k"), iid, "1")
    elif mutate == "other-choice":
        bad = token.replace(".1.", ".0.")  # a pick moved to another intent
    elif mutate == "vote-token":
        bad = sign_vote(K, iid, -1)  # a vote token is no choice token
    else:
        bad = token[:-2]
    with pytest.raises(InvalidVoteToken):
        verify_choice(K, bad)
    # nor is a choice token a vote token
    with pytest.raises(InvalidVoteToken):
        verify_vote(K, token)
