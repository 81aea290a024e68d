"""What a reviewer sees of a message, and which messages count as the same one.

Messages carry card numbers, account numbers, e-mail addresses and phone numbers. The inbox
shows them redacted by default: e-mails and IBAN-like strings replaced by a tag, every other
digit by ``#``. Grouping normalises the same things away, so "my card 1234 was charged twice"
and "My card 9876 was charged twice!" are one group.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# a country code, two check digits, then the account in blocks of four (with or without
# spaces), as IBANs are written; it must hold enough digits not to catch ordinary words
IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,3})?\b")
IBAN_MIN_DIGITS = 8
DIGIT = re.compile(r"\d")
DIGITS = re.compile(r"\d+")
NOT_WORD = re.compile(r"[^\w\s]|_")
SPACES = re.compile(r"\s+")


def _iban(match: re.Match[str], tag: str) -> str:
    found = match.group(0)
    return tag if sum(c.isdigit() for c in found) >= IBAN_MIN_DIGITS else found


def redact(text: str) -> str:
    """E-mails → ``[email]``, IBAN-like strings → ``[iban]``, every other digit → ``#``."""
    text = EMAIL.sub("[email]", text)
    text = IBAN.sub(lambda m: _iban(m, "[iban]"), text)
    return DIGIT.sub("#", text)


def normalise(text: str) -> str:
    """The text with what varies between copies of one message taken out: case, accents'
    composed forms, e-mails, IBANs, numbers, punctuation and spacing."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = EMAIL.sub(" email ", text)
    text = IBAN.sub(lambda m: _iban(m, " iban "), text)
    text = DIGITS.sub(" 0 ", text)
    text = NOT_WORD.sub(" ", text)
    return SPACES.sub(" ", text).strip()


def group_key(text: str) -> str:
    """The near-duplicate group of a message: a digest of its normalised text (of the stripped
    text where nothing is left, e.g. an emoji alone, so such messages are not all one group)."""
    basis = normalise(text) or "raw:" + text.strip()
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]
