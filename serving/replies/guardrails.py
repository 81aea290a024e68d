"""Checks a generated reply must pass before a user sees it (pure: text in, verdict out).

A reply is refused (and the template reply sent instead) when it
- contains a URL, email address or phone number that the grounding text does not contain;
- states a figure (an amount, a rate, a count) found neither in the grounding nor in the
  customer's own words;
- asks for a card number, password, CVV or full PIN;
- echoes the prompt's scaffolding, or loops on the same words;
- is empty, or cannot be cut to a whole sentence within the length cap.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

Reason = Literal["guardrail", "length"]

_TLD = r"(?:com|net|org|io|co|uk|de|fr|eu|us|info|biz|app|bank|me|ly|gl|gov|edu)"
URL = re.compile(
    r"(?i)\b(?:https?://|www\.)[^\s<>\"')]+"  # scheme or www.
    rf"|\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.{_TLD}\b(?:/[^\s<>\"')]*)?"  # bare domain
)
EMAIL = re.compile(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+\b")
PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().-]{5,}\d(?![\w])")
FIGURE = re.compile(r"\d+(?:[.,]\d+)*")
SECRETS = re.compile(
    r"(?i)\byour (?:full )?(?:card number|card details|password|passcode|cvv|cvc|"
    r"security code|pin(?: number| code)?|one[- ]time code|login details)\b"
)
ASKING = re.compile(r"(?i)\b(?:send|give|tell|share|provide|type|enter|confirm|what(?:'s| is))\b")
NEGATION = re.compile(r"(?i)\b(?:never|not|don't|do not|won't|will not|no one|nobody)\b")
SCAFFOLD = re.compile(
    r"(?im)reference answer|customer question|<\|[a-z_]+\|>|^\s*(?:assistant|user|customer)\s*:"
)
SENTENCE_END = re.compile(r"[.!?…](?=\s|$)")


@dataclass(frozen=True)
class Verdict:
    text: str  # the reply to send (cut to the cap) when accepted
    reason: Reason | None = None  # why it was refused; None: accepted
    detail: str = ""  # which check refused it (for logs and metrics)

    @property
    def ok(self) -> bool:
        return self.reason is None


def _phones(text: str) -> set[str]:
    out = set()
    for m in PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if len(digits) >= 7:
            out.add(digits)
    return out


def _figures(text: str) -> set[str]:
    return {re.sub(r"[.,]", "", m.group()) for m in FIGURE.finditer(text)}


def _urls(text: str) -> set[str]:
    return {m.group().lower().rstrip(".,;:!?").removeprefix("www.") for m in URL.finditer(text)}


def _emails(text: str) -> set[str]:
    return {m.group().lower() for m in EMAIL.finditer(text)}


def _loops(text: str, n: int = 4, most: int = 2) -> bool:
    words = re.findall(r"\w+", text.lower())
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return bool(grams) and max(grams.values()) > most


def _asks_for_secret(sentence: str) -> bool:
    """ "What is your card number?" yes; "never share your PIN" no."""
    return bool(
        SECRETS.search(sentence) and ASKING.search(sentence) and not NEGATION.search(sentence)
    )


def cut_to_sentences(text: str, max_chars: int) -> str:
    """The longest prefix of whole sentences within ``max_chars`` ("" when there is none)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text) if m.end() <= max_chars]
    return text[: ends[-1]].strip() if ends else ""


def check_reply(
    text: str, grounding: str, user_text: str = "", max_chars: int = 400, complete: bool = True
) -> Verdict:
    """``complete`` is False when generation stopped at ``max_new_tokens``: the reply is then cut
    back to its last whole sentence."""
    text = text.strip()
    if not complete or len(text) > max_chars:
        text = cut_to_sentences(text, max_chars)
        if not text:
            return Verdict("", "length", "no whole sentence within the cap")
    if not text:
        return Verdict("", "guardrail", "empty")
    if _emails(text) - _emails(grounding):
        return Verdict(text, "guardrail", "email")
    invented_urls = _urls(EMAIL.sub(" ", text)) - _urls(grounding)
    if invented_urls:
        return Verdict(text, "guardrail", f"url {sorted(invented_urls)[0]}")
    if _phones(text) - _phones(grounding):
        return Verdict(text, "guardrail", "phone")
    invented = _figures(text) - _figures(grounding) - _figures(user_text)
    if invented:
        return Verdict(text, "guardrail", f"figure {sorted(invented)[0]}")
    if any(_asks_for_secret(s) for s in re.split(r"(?<=[.!?])\s+", text)):
        return Verdict(text, "guardrail", "asks for credentials")
    if SCAFFOLD.search(text):
        return Verdict(text, "guardrail", "echoes the prompt")
    if _loops(text):
        return Verdict(text, "guardrail", "repetition")
    return Verdict(text)
