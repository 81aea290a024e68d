"""Signed vote tokens: they round-trip, fit Telegram's callback data, and forgeries are refused."""

import uuid

import pytest

from bots.common.signing import InvalidVoteToken, sign_vote, verify_vote


def test_vote_token_round_trip_and_fits_telegram() -> None:
    iid = uuid.uuid4()
    for value in (1, -1):
        token = sign_vote("k", iid, value)
        assert len(token.encode()) <= 64
        assert verify_vote("k", token) == (iid, value)


@pytest.mark.parametrize("mutate", ["other-key", "flip", "garbage", "truncate"])
def test_forged_tokens_are_refused(mutate: str) -> None:
    iid = uuid.uuid4()
    token = sign_vote("k", iid, 1)
    if mutate == "other-key":
        bad = sign_vote("not-k", iid, 1)
    elif mutate == "flip":
        bad = token.replace(".u.", ".d.")
    elif mutate == "garbage":
        bad = "hello"
    else:
        bad = token[:-3]
    with pytest.raises(InvalidVoteToken):
        verify_vote("k", bad)
