"""The reply generator's gate: may a candidate adapter replace the champion's generator? Pure
decisions on measured numbers (``learning.generator.evaluate`` measures them)."""

from __future__ import annotations

from typing import Literal

# how much worse than the champion a candidate's golden replies may be
COVERAGE_TOLERANCE = 0.02
FALLBACK_TOLERANCE = 0.02
LENGTH_GROWTH = 1.2

GeneratorStatus = Literal["skipped", "passed", "failed"]


def decide(
    champ: dict[str, float], cand: dict[str, float], auc_champ: float, auc_cand: float
) -> tuple[bool, list[str]]:
    """The candidate must rank held-back 👍 above 👎 better than the champion (implied-reward
    ROC AUC), and its golden replies must not cover fewer facts, fall back to templates more
    often, or grow longer, beyond the tolerances above."""
    reasons: list[str] = []
    ok = True
    if auc_cand != auc_cand or auc_champ != auc_champ:  # nan: a class is missing
        ok = False
        reasons.append("held-back votes lack 👍 or 👎: the reward ranking cannot be checked")
    elif auc_cand <= auc_champ:
        ok = False
        reasons.append(f"reward ranking AUC {auc_cand:.3f} <= the champion's {auc_champ:.3f}")
    else:
        reasons.append(f"reward ranking AUC {auc_champ:.3f} -> {auc_cand:.3f}")
    checks = (
        (
            "fact coverage",
            cand["coverage"] >= champ["coverage"] - COVERAGE_TOLERANCE,
            "coverage",
        ),
        (
            "template fallbacks",
            cand["fallback_rate"] <= champ["fallback_rate"] + FALLBACK_TOLERANCE,
            "fallback_rate",
        ),
        (
            "reply length (words)",
            cand["mean_words"] <= champ["mean_words"] * LENGTH_GROWTH,
            "mean_words",
        ),
    )
    for name, passed, key in checks:
        ok &= passed
        verdict = "ok" if passed else "worse"
        reasons.append(f"golden {name} {champ[key]:.3g} -> {cand[key]:.3g} ({verdict})")
    return ok, reasons
