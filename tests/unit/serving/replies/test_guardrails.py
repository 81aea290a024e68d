"""Guard rails on generated replies: pure checks on text."""

import pytest

from serving.replies.guardrails import check_reply, cut_to_sentences
from serving.replies.posteriors import base_response_id

GROUNDING = (
    "Call us on 020 7946 0958 or write to help@thumbloop.bank; the fee is 2.5 % and details "
    "are at www.thumbloop.bank/fees."
)


@pytest.mark.parametrize(
    "reply",
    [
        "You can call us on 020 7946 0958.",
        "Call (020) 7946-0958 any time.",  # the same number, formatted differently
        "Write to help@thumbloop.bank and we will reply.",
        "See www.thumbloop.bank/fees for details.",
        "The fee is 2.5 % of the amount.",
        "You sent 40 pounds, so that is expected.",  # the customer's own figure
        "Never share your PIN or password with anyone.",
    ],
)
def test_grounded_contacts_and_figures_pass(reply: str) -> None:
    v = check_reply(reply, GROUNDING, user_text="I sent 40 pounds")
    assert v.ok, v.detail
    assert v.text == reply


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        ("Call our hotline on +44 20 7000 1234 for help.", "phone"),
        ("Call 0800 123 4567 now.", "phone"),
        ("Log in at https://secure-login.example/verify to fix it.", "url"),
        ("Visit www.thumbloop-help.com to fix it.", "url"),
        ("Visit thumbloop-support.net to fix it.", "url"),
        ("Email fraud@thumbloop-help.com today.", "email"),
        ("The current rate is 1.25 dollars per euro.", "figure"),
        ("Please tell me your card number so I can check.", "asks for credentials"),
        ("What is your PIN?", "asks for credentials"),
        ("Reference answer: call us.", "echoes the prompt"),
        ("Customer: where is my card?", "echoes the prompt"),
        ("I'm sorry about that. I'm sorry about that. I'm sorry about that.", "repetition"),
        ("   ", "empty"),
    ],
)
def test_invented_contacts_figures_and_junk_are_refused(reply: str, detail: str) -> None:
    v = check_reply(reply, GROUNDING, user_text="where is my card")
    assert v.reason == "guardrail"
    assert v.detail.startswith(detail)


def test_a_contact_the_customer_typed_is_still_refused() -> None:
    # echoing a number or link from the user's message could confirm a phishing contact
    v = check_reply("Yes, call +44 20 7000 1234.", GROUNDING, user_text="is +44 20 7000 1234 you?")
    assert v.reason == "guardrail" and v.detail == "phone"


def test_length_cap_cuts_at_a_sentence_end_or_refuses() -> None:
    long = "Check the app. Then freeze the card. Then order a new one. " + "And wait. " * 30
    v = check_reply(long, GROUNDING, max_chars=60)
    assert v.ok and v.text == "Check the app. Then freeze the card. Then order a new one."
    cut = check_reply(
        "Check the card status in the app. Then if it looks lo", GROUNDING, complete=False
    )
    assert cut.ok and cut.text == "Check the card status in the app."
    v = check_reply("Check the card status in the app and then", GROUNDING, complete=False)
    assert v.reason == "length"
    assert cut_to_sentences("One. Two! Three? Four", 100) == "One. Two! Three?"
    assert cut_to_sentences("no end here", 100) == ""


def test_generated_replies_do_not_feed_the_template_posteriors() -> None:
    assert base_response_id("gen+card_arrival/2") is None
    assert base_response_id("card_arrival/2") == "card_arrival/2"
    assert base_response_id("clarify+clarify:a|b") is None
