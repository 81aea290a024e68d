import numpy as np

from learning.seed.calibrate import choose_oos_threshold


def test_threshold_catches_unsure_oos_without_costing_in_scope() -> None:
    # class 2 is OOS; in-scope rows are confident, OOS rows are spread thin
    probs = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.05, 0.9, 0.05],
            [0.8, 0.1, 0.1],
            [0.4, 0.35, 0.25],
            [0.34, 0.33, 0.33],
        ]
    )
    gold = np.array([0, 1, 0, 2, 2])
    t, stats = choose_oos_threshold(probs, gold, oos_index=2, max_inscope_drop=0.0)
    assert 0.4 < t <= 0.8
    assert stats["oos_recall"] == 1.0
    assert stats["in_scope_accuracy"] == 1.0


def test_threshold_respects_in_scope_budget() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.45, 0.35, 0.2]])
    gold = np.array([0, 2])  # lifting the threshold above 0.45 would also drop the in-scope row
    t, stats = choose_oos_threshold(probs, gold, oos_index=2, max_inscope_drop=0.0)
    assert stats["in_scope_accuracy"] == 1.0
    assert t <= 0.5
