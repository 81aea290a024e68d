"""An evaluation reads under the names the gate, the bundle and the MLflow run use."""

from __future__ import annotations

import math
from dataclasses import replace

from learning.retrain.candidate import Evaluation
from learning.retrain.gate import decide

CHAMPION = Evaluation(
    golden_intent_accuracy=0.9,
    golden_sentiment_accuracy=0.8,
    golden_intent_macro_f1=0.85,
    heldout_vote_agreement=0.7,
    golden_labels=["card_arrival", "out_of_scope"],
    golden_predicted=["card_arrival", "card_arrival"],
    heldout_predicted=["card_arrival"],
)


def test_metrics_are_named_as_the_run_logs_them() -> None:
    assert CHAMPION.metrics() == {
        "golden_intent_accuracy": 0.9,
        "golden_sentiment_accuracy": 0.8,
        "golden_intent_macro_f1": 0.85,
        "heldout_vote_agreement": 0.7,
    }


def test_the_gate_decides_on_an_evaluations_metrics() -> None:
    assert decide(CHAMPION.metrics(), CHAMPION.metrics(), 0.005).passed
    worse = replace(CHAMPION, golden_sentiment_accuracy=0.7)
    verdict = decide(CHAMPION.metrics(), worse.metrics(), 0.005)
    assert not verdict.passed and "golden_sentiment_accuracy" in verdict.reasons[0]
    no_votes = replace(CHAMPION, heldout_vote_agreement=math.nan, heldout_predicted=[])
    assert decide(no_votes.metrics(), no_votes.metrics(), 0.005).passed
