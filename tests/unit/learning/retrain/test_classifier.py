"""Which votes the classifier learns its intents from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from learning.retrain.classifier import intent_examples
from learning.retrain.thumbs import VoteRecord
from thumbloop.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_thumbs_on_clarifying_replies_label_out_of_scope_unless_switched_off(
    tmp_path: Path,
) -> None:
    def on(iid: str, intent: str, value: int) -> VoteRecord:
        return VoteRecord(iid, f"text {iid}", intent, 0.2, f"r-{iid}", value, T0)

    votes = [
        on("a", "out_of_scope", 1),
        on("b", "out_of_scope", -1),
        on("c", "card_arrival", 1),
        on("d", "retired_intent", 1),  # not an intent of this model: never used
    ]
    intents = ["card_arrival", "out_of_scope"]
    got = intent_examples(votes, intents, "out_of_scope", Settings(home=tmp_path))
    assert {(e.interaction_id, e.label, e.sign) for e in got} == {
        ("a", "out_of_scope", 1),
        ("b", "out_of_scope", -1),
        ("c", "card_arrival", 1),
    }
    off = Settings(home=tmp_path, clarifying_votes=False)
    assert [e.interaction_id for e in intent_examples(votes, intents, "out_of_scope", off)] == ["c"]
