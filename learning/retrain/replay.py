"""The seed rows replayed in a retrain, and their weights.

Replay keeps old skills: a sample of the domain's training data is mixed into every retrain. Votes
label the out-of-scope class far less often than its share of the traffic (only a 👍 on a
clarifying reply does, and only where those count: ``learning.clarifying_votes``), so without
care every round of in-scope votes shrinks that class's share of the training weight; the head's
out-of-scope prior falls with it and out-of-scope recall drops round after round, golden accuracy
with it (the simulator shows it). The replayed out-of-scope rows are therefore weighted up so the
class, votes included, keeps its seed share.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from learning.retrain.thumbs import ThumbExample
from thumbloop.domain import Example

MIN_REPLAY = 1000


def replay_set(
    train: Sequence[Example],
    votes: Sequence[ThumbExample],
    vote_weights: Sequence[float],
    out_of_scope: str | None,
    seed: int,
) -> tuple[list[Example], list[float]]:
    """A sample of ``train`` as large as the votes (at least ``MIN_REPLAY`` rows) and a weight
    per row: 1, or more for out-of-scope rows (see the module doc). ``vote_weights`` are the
    votes' weights as the retrain uses them."""
    rng = random.Random(seed)
    rows = rng.sample(list(train), min(len(train), max(MIN_REPLAY, len(votes))))
    weights = [1.0] * len(rows)
    oos_rows = [i for i, e in enumerate(rows) if e.label == out_of_scope]
    share = sum(e.label == out_of_scope for e in train) / len(train) if train else 0.0
    if not oos_rows or not 0 < share < 1:
        return rows, weights
    positive = [(v, w) for v, w in zip(votes, vote_weights, strict=True) if v.sign > 0]
    oos_votes = sum(w for v, w in positive if v.label == out_of_scope)
    in_scope = sum(w for v, w in positive if v.label != out_of_scope) + len(rows) - len(oos_rows)
    wanted = share * in_scope / (1 - share)  # the oos weight that keeps its seed share
    factor = max(1.0, (wanted - oos_votes) / len(oos_rows))
    for i in oos_rows:
        weights[i] = factor
    return rows, weights
