"""The votes as KTO sees them: the held-out split, the class weights, the round's config."""

from __future__ import annotations

import pytest

from learning.generator.kto_data import KtoConfig, class_weights, split_heldout
from tests.unit.learning.generator.kto_votes import example


def test_split_heldout_is_deterministic_disjoint_and_stable() -> None:
    examples = [example(i) for i in range(400)]
    train, heldout = split_heldout(examples, 0.25, seed=3)
    again = split_heldout(examples, 0.25, seed=3)
    assert (train, heldout) == again
    keys_train, keys_held = {e.key for e in train}, {e.key for e in heldout}
    assert not keys_train & keys_held
    assert len(train) + len(heldout) == len(examples)
    assert 0.15 < len(heldout) / len(examples) < 0.35
    # a vote keeps its side as more votes arrive; another seed draws another split
    _, held_later = split_heldout([*examples, *(example(i) for i in range(400, 500))], 0.25, 3)
    assert keys_held <= {e.key for e in held_later}
    assert {e.key for e in split_heldout(examples, 0.25, seed=4)[1]} != keys_held
    assert split_heldout(examples, 0.0) == (examples, [])


@pytest.mark.parametrize(("nd", "nu"), [(10, 10), (90, 10), (10, 90), (1, 50), (300, 7), (3, 4)])
def test_class_weights_keep_ktos_recommended_ratio(nd: int, nu: int) -> None:
    dw, uw = class_weights(nd, nu)
    assert 1.0 <= (dw * nd) / (uw * nu) <= 4 / 3
    assert (dw * nd + uw * nu) / (nd + nu) == pytest.approx(1.0)  # the loss keeps its scale


def test_class_weights_without_one_class_are_neutral() -> None:
    assert class_weights(5, 0) == class_weights(0, 5) == (1.0, 1.0)


def test_config_rejects_a_batch_without_a_kl_partner() -> None:
    with pytest.raises(ValueError):
        KtoConfig(batch_size=1)
    with pytest.raises(ValueError):
        KtoConfig(lr=1e-4)  # type: ignore[call-arg]
