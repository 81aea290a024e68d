"""The simulated raters' rule: a reply is liked when it states the reference's facts, briefly."""

from __future__ import annotations

import pytest

from learning.generator.reply_facts import (
    MAX_WORDS,
    fact_coverage,
    key_facts,
    likes_reply,
    stem,
    word_count,
)

ACTIVATE = (
    "To activate your card, open the app, go to Cards, select the new card and follow the "
    "activation steps shown there."
)
ARRIVAL = "Your new card should arrive within 3 to 5 working days. You can track it in the app."


def test_key_facts_drop_stopwords_and_support_speak() -> None:
    facts = key_facts("Please contact us and we can help you with your bank account.")
    assert facts == {"contact", "account"}


def test_key_facts_stem_inflections_together() -> None:
    assert stem("cards") == stem("card")
    assert stem("delivered") == stem("delivery") == stem("deliveries")
    assert stem("activation") == stem("activate") == stem("activating")
    assert stem("transferred") == stem("transfers")
    assert stem("process") == "process" and stem("status") == "status"  # no plural "s" to strip
    assert stem("app") != stem("apply")


def test_numbers_are_facts() -> None:
    facts = key_facts(ARRIVAL)
    assert {"3", "5"} <= facts
    assert key_facts("A fee of 1,000 GBP") >= {"1000"}
    spelled = "Your new card arrives in three to five working days; track it in the app."
    assert fact_coverage(spelled, ARRIVAL) == 1
    wrong_days = "Your new card arrives in 7 to 10 working days; track it in the app."
    assert fact_coverage(wrong_days, ARRIVAL) < 1


def test_paraphrase_with_the_facts_is_liked() -> None:
    reply = "Open the app, pick your new card under Cards and follow the steps to activate it."
    assert fact_coverage(reply, ACTIVATE) >= 0.75
    assert likes_reply(reply, ACTIVATE)


def test_reply_missing_the_facts_is_not_liked() -> None:
    reply = "I'm sorry for any confusion, I'm here to help you with any banking questions you have."
    assert fact_coverage(reply, ACTIVATE) == 0
    assert not likes_reply(reply, ACTIVATE)


def test_long_reply_is_not_liked_even_with_every_fact() -> None:
    padding = " Thank you so much for reaching out to us today, we really appreciate it." * 4
    reply = ACTIVATE + padding
    assert fact_coverage(reply, ACTIVATE) == 1
    assert word_count(reply) > MAX_WORDS
    assert not likes_reply(reply, ACTIVATE)
    assert likes_reply(reply, ACTIVATE, max_words=200)


def test_reference_without_facts_is_fully_covered() -> None:
    assert key_facts("Can you please help me?") == frozenset()
    assert fact_coverage("anything", "Can you please help me?") == 1.0


@pytest.mark.parametrize(("text", "n"), [("", 0), ("one", 1), ("  Open  the app.\n Now ", 4)])
def test_word_count(text: str, n: int) -> None:
    assert word_count(text) == n
