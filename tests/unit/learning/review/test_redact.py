"""What a reviewer sees of a message, and which messages are one group."""

from __future__ import annotations

from learning.review.redact import group_key, normalise, redact


def test_digits_emails_and_ibans_are_redacted_words_are_not() -> None:
    assert redact("card 4111 1111 1111 1111 expires 09/27") == (
        "card #### #### #### #### expires ##/##"
    )
    assert redact("write to jane.doe+bank@example.co.uk please") == "write to [email] please"
    assert redact("send it to GB82 WEST 1234 5698 7654 32 today") == "send it to [iban] today"
    assert redact("IBAN DE89370400440532013000.") == "IBAN [iban]."
    # looks like the start of an IBAN but holds no account number: only the digits go
    assert redact("hi12 what is the time") == "hi## what is the time"
    assert redact("where is my card?") == "where is my card?"


def test_redaction_leaves_nothing_of_the_number_behind() -> None:
    shown = redact("my account is FR14 2004 1010 0505 0001 3M02 606, phone +44 7700 900123")
    assert not any(c.isdigit() for c in shown)
    assert "3M02" not in shown


def test_copies_of_one_message_share_a_group_and_other_messages_do_not() -> None:
    a = group_key("My card 4001 was charged twice!")
    assert a == group_key("my card 9999 was charged   twice")
    assert a == group_key("MY CARD 12 WAS CHARGED TWICE?!")
    assert a != group_key("My card was charged twice")  # no number at all: another message
    assert a != group_key("My card 4001 was declined")
    assert group_key("mail a@b.com now") == group_key("Mail someone@else.org now")


def test_normalising_folds_case_width_and_punctuation() -> None:
    assert normalise("  Ｃａｒｄ   ARRIVAL?? ") == "card arrival"
    assert normalise("top_up") == "top up"


def test_messages_with_no_words_are_not_all_one_group() -> None:
    assert group_key("👍") != group_key("😡")
    assert group_key("👍") == group_key(" 👍 ")
