"""The reply generator's gate on measured numbers: a better reward ranking, and golden replies no
worse than the tolerances allow."""

from __future__ import annotations

import math

from learning.generator.gate import COVERAGE_TOLERANCE, LENGTH_GROWTH, decide

CHAMP = {"coverage": 0.6, "fallback_rate": 0.1, "mean_words": 20.0}


def test_a_better_ranking_with_replies_as_good_passes() -> None:
    ok, reasons = decide(CHAMP, CHAMP, 0.5, 0.7)
    assert ok
    assert reasons[0] == "reward ranking AUC 0.500 -> 0.700"
    assert all(r.endswith("(ok)") for r in reasons[1:]) and len(reasons) == 4


def test_a_ranking_no_better_than_the_champions_fails() -> None:
    ok, reasons = decide(CHAMP, CHAMP, 0.7, 0.7)
    assert not ok and "<= the champion's" in reasons[0]


def test_held_back_votes_of_one_kind_cannot_pass() -> None:
    ok, reasons = decide(CHAMP, CHAMP, math.nan, math.nan)
    assert not ok and "lack 👍 or 👎" in reasons[0]


def test_golden_replies_may_be_worse_only_within_the_tolerances() -> None:
    slightly = CHAMP | {"coverage": 0.6 - COVERAGE_TOLERANCE / 2}
    assert decide(CHAMP, slightly, 0.5, 0.7)[0]
    fewer_facts = CHAMP | {"coverage": 0.6 - 2 * COVERAGE_TOLERANCE}
    ok, reasons = decide(CHAMP, fewer_facts, 0.5, 0.7)
    assert not ok and "golden fact coverage" in reasons[1] and reasons[1].endswith("(worse)")
    longer = CHAMP | {"mean_words": 20.0 * LENGTH_GROWTH + 1}
    ok, reasons = decide(CHAMP, longer, 0.5, 0.7)
    assert not ok and reasons[3].endswith("(worse)")
    more_fallbacks = CHAMP | {"fallback_rate": 0.2}
    assert not decide(CHAMP, more_fallbacks, 0.5, 0.7)[0]
