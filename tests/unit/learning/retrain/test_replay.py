from datetime import UTC, datetime

from learning.retrain.replay import replay_set
from learning.retrain.thumbs import ThumbExample
from thumbloop.domain import Example

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _train(n_per_intent: int, n_oos: int) -> list[Example]:
    rows = [Example(text=f"a{i}", label="card") for i in range(n_per_intent)]
    rows += [Example(text=f"b{i}", label="pin") for i in range(n_per_intent)]
    return rows + [Example(text=f"o{i}", label="out_of_scope") for i in range(n_oos)]


def _votes(n: int, sign: int = 1) -> list[ThumbExample]:
    return [ThumbExample(f"v{i}", f"vote {i}", "card", sign, 1.0, T0) for i in range(n)]


def _oos_share(rows: list[Example], weights: list[float], votes: list[ThumbExample]) -> float:
    oos = sum(w for e, w in zip(rows, weights, strict=True) if e.label == "out_of_scope")
    oos += sum(v.sign > 0 and v.label == "out_of_scope" for v in votes)
    labelled = sum(v.sign > 0 and v.label != "out_of_scope" for v in votes) + sum(
        w for e, w in zip(rows, weights, strict=True) if e.label != "out_of_scope"
    )
    return oos / (oos + labelled)


def test_out_of_scope_keeps_its_seed_share_however_many_votes() -> None:
    train = _train(10, 5)  # out of scope: 5 of 25 rows = 20 %
    for n_votes in (0, 100, 3000):
        votes = _votes(n_votes)
        rows, weights = replay_set(train, votes, [1.0] * n_votes, "out_of_scope", seed=0)
        assert len(rows) == len(train)  # the whole (small) seed set is replayed
        assert abs(_oos_share(rows, weights, votes) - 0.2) < 1e-9
        assert all(
            w == 1.0 for e, w in zip(rows, weights, strict=True) if e.label != "out_of_scope"
        )


def test_out_of_scope_votes_count_towards_its_share() -> None:
    train = _train(10, 5)  # 20 % out of scope
    votes = _votes(300) + [
        ThumbExample(f"o{i}", f"off topic {i}", "out_of_scope", 1, 1.0, T0) for i in range(50)
    ]
    rows, weights = replay_set(train, votes, [1.0] * len(votes), "out_of_scope", seed=0)
    assert abs(_oos_share(rows, weights, votes) - 0.2) < 1e-9
    alone, alone_w = replay_set(train, votes[:300], [1.0] * 300, "out_of_scope", seed=0)
    oos_weight = sum(w for e, w in zip(rows, weights, strict=True) if e.label == "out_of_scope")
    alone_oos = sum(w for e, w in zip(alone, alone_w, strict=True) if e.label == "out_of_scope")
    assert abs(alone_oos - oos_weight - 50) < 1e-9  # the 50 votes replace replay weight
    many = votes[:300] + [
        ThumbExample(f"o{i}", f"off topic {i}", "out_of_scope", 1, 1.0, T0) for i in range(500)
    ]
    _, many_w = replay_set(train, many, [1.0] * len(many), "out_of_scope", seed=0)
    assert many_w == [1.0] * len(many_w)  # never weighted below 1


def test_complementary_votes_add_no_class_weight_and_nothing_is_weighted_down() -> None:
    train = _train(10, 5)
    down = _votes(500, sign=-1)
    rows, weights = replay_set(train, down, [1.0] * 500, "out_of_scope", seed=0)
    assert weights == [1.0] * len(rows)  # 👎 rows label no class: the seed balance holds
    few_oos = _train(10, 1)
    rows, weights = replay_set(few_oos, [], [], None, seed=0)
    assert weights == [1.0] * len(rows)  # a domain without out-of-scope: plain replay


def test_replay_grows_with_the_votes_up_to_the_seed_set() -> None:
    train = _train(800, 100)
    rows, _ = replay_set(train, _votes(1200), [1.0] * 1200, "out_of_scope", seed=1)
    assert len(rows) == 1200 and len({e.text for e in rows}) == 1200
    rows, _ = replay_set(train, _votes(10), [1.0] * 10, "out_of_scope", seed=1)
    assert len(rows) == 1000
