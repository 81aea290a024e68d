"""What the Telegram bot says and shows: texts, replies cut to fit, and the inline keyboards
(checked by reading their callback data back with the converter)."""

from __future__ import annotations

import re
import uuid

from bots.common.signing import SigningKeys
from bots.telegram import texts
from bots.telegram.convert import ForgetChoice, VoteChoice, parse_callback
from bots.telegram.texts import MAX_TEXT, fit_text, forget_keyboard, vote_keyboard
from thumbloop.identity import hash_id

SECRET = "unit-secret"
KEYS = SigningKeys(SECRET)
UP, DOWN = texts.UP, texts.DOWN


def test_fit_text_respects_telegrams_limit() -> None:
    assert fit_text("short") == "short"
    exact = "x" * MAX_TEXT
    assert fit_text(exact) == exact
    long = "word " * 2000
    fitted = fit_text(long)
    assert len(fitted) <= MAX_TEXT and fitted.endswith("…") and not fitted.endswith(" …")
    assert len(fit_text("y" * 10_000)) == MAX_TEXT


def test_vote_keyboard_is_signed_fits_and_marks_the_choice() -> None:
    iid = uuid.uuid4()
    plain = vote_keyboard(KEYS, iid)
    ((up, down),) = plain.inline_keyboard
    assert (up.text, down.text) == (UP, DOWN)
    for button in (up, down):
        assert button.callback_data is not None
        assert len(str(button.callback_data).encode()) <= 64
    assert parse_callback(KEYS, str(up.callback_data)) == VoteChoice(iid, 1)
    assert parse_callback(KEYS, str(down.callback_data)) == VoteChoice(iid, -1)
    ((mup, mdown),) = vote_keyboard(KEYS, iid, -1).inline_keyboard
    assert (mup.text, mdown.text) == (UP, f"{DOWN} {texts.TICK}")
    assert vote_keyboard(KEYS, iid, 1) != plain and vote_keyboard(KEYS, iid) == plain


def test_forget_buttons_name_the_asking_user() -> None:
    user = hash_id(SECRET, "telegram", 1)
    ((yes, no),) = forget_keyboard(user).inline_keyboard
    assert parse_callback(KEYS, str(yes.callback_data)) == ForgetChoice(True, user[:16])
    assert parse_callback(KEYS, str(no.callback_data)) == ForgetChoice(False, user[:16])


def test_privacy_text_says_what_and_how_long() -> None:
    text = texts.privacy_text(6, 86_400)
    assert "last 6 messages" in text and "1 day" in text and "/forget" in text
    assert "2 hours" in texts.privacy_text(4, 7200)
    assert "90 minutes" in texts.privacy_text(4, 5400)


def test_command_names_are_valid_for_telegram() -> None:
    for name, description in texts.COMMANDS:
        assert re.fullmatch(r"[a-z0-9_]{1,32}", name) and 1 <= len(description) <= 256


def test_the_reply_keyboard_adds_signed_follow_up_rows_under_the_votes() -> None:
    from bots.common.followup import DIDNT_HELP, SOMETHING_ELSE, FollowUp
    from bots.telegram.convert import ChoiceTap, followup_shown, vote_shown

    iid = uuid.uuid4()
    plan = FollowUp(("card_arrival", "lost_or_stolen_card"), unhelpful=True)
    bare = texts.reply_keyboard(KEYS, iid)
    assert [[b.text for b in row] for row in bare.inline_keyboard] == [[UP, DOWN]]
    assert not followup_shown(bare) and vote_shown(bare) is None
    markup = texts.reply_keyboard(KEYS, iid, -1, plan, picked="1")
    rows = [[b.text for b in row] for row in markup.inline_keyboard]
    assert rows == [
        [UP, f"{DOWN} {texts.TICK}"],
        ["card arrival"],
        [f"{texts.TICK} lost or stolen card"],
        [SOMETHING_ELSE],
        [DIDNT_HELP],
    ]
    assert followup_shown(markup) and vote_shown(markup) == -1
    data = [row[0].callback_data for row in markup.inline_keyboard[1:]]
    assert all(isinstance(d, str) and len(d.encode()) <= 64 for d in data)
    read = [parse_callback(KEYS, str(d)) for d in data]
    assert read == [ChoiceTap(iid, c) for c in ("0", "1", "o", "h")]
    assert parse_callback(SigningKeys("other"), str(data[0])) is None
