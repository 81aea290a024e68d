"""What makes a generated reply good: it states the reference answer's key facts, and it is short.

Pure text functions (no model), shared by the retrain gate's golden quality check and by the
simulator's raters, so that "what a simulated user likes" and "what the gate measures" are one rule.

Key facts are the reference's numbers and content words, lowercased and lightly stemmed so that
inflections match ("cards"/"card", "delivered"/"delivery", "activate"/"activation"); stopwords and
generic support phrasing ("you can", "please", "help", "bank") are not facts. It is a bag-of-words
check, deliberately loose: a paraphrase that keeps the nouns and numbers passes, a polite reply
that never says where or how does not.
"""

from __future__ import annotations

import re

# A liked reply states most of the reference's key facts. Set so that the untuned default
# generator is liked on some of its replies but not most (it either restates the reference or
# apologises that it cannot help): that leaves the votes something to teach. MAX_WORDS is about
# as long as the shipped reference answers run, so a reply much longer than the answer it
# paraphrases is rambling.
MIN_COVERAGE = 0.6
MAX_WORDS = 40


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _words(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor
    not now of off on once only or other our ours out over own same she so some such than that the
    their theirs them then there these they this those through to too under until up very was we
    were what when where which while who whom why with you your yours yourself
    able also always another anything case either else etc even ever every get got go going let
    like make many much need needs sure thing things via want way whether within without would
    yet still see look show shown
    isnt arent wasnt werent dont doesnt didnt hasnt havent hadnt wont cant couldnt shouldnt
    wouldnt im ive youre youve youll weve were theyre thats theres whats lets yes
    """
)
# support-speak that carries no fact: the persona, politeness, modal verbs and generic verbs
GENERIC = _words(
    """
    please can could will may might shall should must help helps helping helpful assist
    assistance assistant bank banking banks customer customers thanks thank sorry hi hello dear
    glad happy kindly question questions answer know understand hope feel free us
    simply easily quickly usually generally also just really certainly absolutely great
    """
)
NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}
TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+")
# longest first; each needs at least a 3-letter stem left
SUFFIXES = (
    "ications",
    "ication",
    "ations",
    "ation",
    "ating",
    "ated",
    "ates",
    "ments",
    "ment",
    "ings",
    "ing",
    "ies",
    "ied",
    "ate",
    "ed",
    "es",
    "s",
    "y",
)
DOUBLE_OK = frozenset("lsz")  # "call", "access", "buzz" keep their double letter


def stem(word: str) -> str:
    """A crude, consistent suffix stripper: only equality of stems matters, not their spelling."""
    for _ in range(2):  # twice: "applying" -> "apply" -> "appl"
        before = word
        for suffix in SUFFIXES:
            if not word.endswith(suffix) or len(word) - len(suffix) < 3:
                continue
            head = word[: -len(suffix)]
            if suffix == "s" and head[-1] in "su":  # "process", "status"
                continue
            if suffix == "es" and not head.endswith(("s", "x", "ch", "sh", "z")):
                continue  # "fees", "charges": the plain "s" rule and the "e" rule below apply
            if suffix in ("y", "ies", "ied") and head[-1] in "aeiou":  # "pay", "days"
                continue
            word = head
            break
        if len(word) > 3 and word[-1] == word[-2] and word[-1] not in DOUBLE_OK | set("aeiou"):
            word = word[:-1]  # "transferred" -> "transferr" -> "transfer"
        if len(word) > 3 and word.endswith("e"):
            word = word[:-1]  # "exchange" and "exchanged" meet at "exchang"
        if word == before:
            break
    return word


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("’", "'").replace("'", "")  # "isn't" -> "isnt", "app's" -> "apps"
    return TOKEN.findall(text)


def _facts(text: str) -> set[str]:
    facts = set()
    for tok in _tokens(text):
        if tok[0].isdigit():
            facts.add(tok.replace(",", ""))  # "1,000" and "1000" are one amount
        elif tok in NUMBER_WORDS:
            facts.add(NUMBER_WORDS[tok])  # "three days" states the "3 days" of the reference
        elif len(tok) > 1 and tok not in STOPWORDS and tok not in GENERIC:
            facts.add(stem(tok))
    return facts


def key_facts(reference: str) -> frozenset[str]:
    """The reference answer's numbers and stemmed content words."""
    return frozenset(_facts(reference))


def fact_coverage(reply: str, reference: str) -> float:
    """Share of the reference's key facts that the reply states (1.0 when it has none)."""
    facts = key_facts(reference)
    if not facts:
        return 1.0
    return len(facts & _facts(reply)) / len(facts)


def word_count(text: str) -> int:
    return len(text.split())


def likes_reply(
    reply: str, reference: str, *, min_coverage: float = MIN_COVERAGE, max_words: int = MAX_WORDS
) -> bool:
    """A simulated rater's 👍: the reply states the reference's key facts and stays short."""
    return word_count(reply) <= max_words and fact_coverage(reply, reference) >= min_coverage
