"""Judging a generator: the ranking metric, and what it writes on golden prompts."""

from __future__ import annotations

import math

import pytest

from learning.generator.evaluate import GoldenPrompt, ranking_auc, reply_quality
from serving.generator.lm import Sampling, load_generator
from tests.unit.learning.generator.kto_votes import CPU, EXAMPLES, GOOD, Rounds


@pytest.mark.parametrize(
    ("rewards", "labels", "auc"),
    [
        ([3, 2, 1, 0], [True, True, False, False], 1.0),
        ([0, 1, 2, 3], [True, True, False, False], 0.0),
        ([1, 1, 1, 1], [True, False, True, False], 0.5),
        ([0.3, 0.1, 0.2, 0.0], [True, False, False, True], 0.5),
        ([2, 1, 1, 0], [True, True, False, False], 0.875),  # one tie between the classes
    ],
)
def test_ranking_auc(rewards: list[float], labels: list[bool], auc: float) -> None:
    assert ranking_auc(rewards, labels) == pytest.approx(auc)


def test_ranking_auc_needs_both_classes() -> None:
    assert math.isnan(ranking_auc([1.0, 2.0], [True, True]))
    assert math.isnan(ranking_auc([], []))


def test_reply_quality_on_the_tiny_model(rounds: Rounds) -> None:
    generator = load_generator(str(rounds.first.folder), rounds.home, CPU)
    items = [
        GoldenPrompt(ex.prompt, reference=GOOD, grounding=GOOD, user_text="activate my card")
        for ex in EXAMPLES[:5]
    ]
    quality = reply_quality(generator, items, Sampling(max_new_tokens=8), batch_size=2)
    assert set(quality) == {"coverage", "mean_words", "fallback_rate", "like_rate"}
    assert 0 <= quality["coverage"] <= 1 and 0 <= quality["fallback_rate"] <= 1
    assert 0 <= quality["like_rate"] <= 1 - quality["fallback_rate"]
    assert quality["mean_words"] >= 0
