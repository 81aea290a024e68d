import json
from pathlib import Path

import pytest

from thumbloop.evaldata import (
    EvalDataError,
    check_intent_labels,
    read_eval_file,
    score_intent,
    score_sentiment,
)
from thumbloop.scoring import accuracy, macro_f1, oos_metrics


def test_accuracy_and_macro_f1() -> None:
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "b"]
    assert accuracy(gold, pred) == 0.5
    # F1: a = 2/3, b = 2/3 (tp1 fp2 fn0 -> 2/4=0.5? ) computed by hand below
    f1_a = 2 * 1 / (2 * 1 + 0 + 1)
    f1_b = 2 * 1 / (2 * 1 + 2 + 0)
    f1_c = 0.0
    assert macro_f1(gold, pred) == pytest.approx((f1_a + f1_b + f1_c) / 3)


def test_oos_metrics_follow_clinc_definitions() -> None:
    gold = ["x", "y", "oos", "oos", "oos"]
    pred = ["x", "oos", "oos", "y", "oos"]
    m = oos_metrics(gold, pred, "oos")
    assert m["in_scope_accuracy"] == 0.5
    assert m["oos_recall"] == pytest.approx(2 / 3)
    assert m["oos_precision"] == pytest.approx(2 / 3)


def _write(tmp_path: Path, rows: list[object]) -> Path:
    f = tmp_path / "e.jsonl"
    f.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return f


def test_sst2_ints_are_binary_sentiment(tmp_path: Path) -> None:
    f = _write(tmp_path, [{"text": "great", "label": 1}, {"text": "awful", "label": 0}])
    data = read_eval_file(f, "sentiment")
    assert data.labels == ["positive", "negative"]
    assert data.binary
    three = _write(
        tmp_path, [{"text": "ok", "label": "neutral"}, {"text": "bad", "label": "negative"}]
    )
    assert not read_eval_file(three, "sentiment").binary
    assert (
        score_sentiment(["positive", "negative"], ["positive", "positive"], True)["accuracy"] == 0.5
    )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "empty file"),
        (['{"text": "a", "label": "neutral"}', "{broken"], r"e.jsonl:2: not valid JSON"),
        ([{"text": "a"}], r":1: expected an object with 'text' and 'label'"),
        ([{"text": "  ", "label": "neutral"}], r":1: 'text' must be a non-empty string"),
        ([{"text": "a", "label": "angry"}], r":1: unknown sentiment label 'angry'"),
        ([{"text": "a", "label": 3}], r":1: unknown sentiment label 3"),
    ],
)
def test_bad_sentiment_files_name_the_line(
    tmp_path: Path, rows: list[object], message: str
) -> None:
    with pytest.raises(EvalDataError, match=message):
        read_eval_file(_write(tmp_path, rows), "sentiment")


def test_intent_labels_map_oos_and_reject_unknown(tmp_path: Path) -> None:
    f = _write(
        tmp_path,
        [
            {"text": "a", "label": "card_arrival"},
            {"text": "b", "label": "oos"},
            {"text": "c", "label": "out_of_scope"},
        ],
    )
    data = read_eval_file(f, "intent")
    gold = check_intent_labels(data, ["card_arrival", "out_of_scope"], "out_of_scope", f)
    assert gold == ["card_arrival", "out_of_scope", "out_of_scope"]
    with pytest.raises(EvalDataError, match=r"e.jsonl:1: unknown intent label 'card_arrival'"):
        check_intent_labels(data, ["greeting", "out_of_scope"], "out_of_scope", f)
    scores = score_intent(gold, ["card_arrival", "card_arrival", "out_of_scope"], "out_of_scope")
    assert scores["oos_recall"] == 0.5
    assert scores["in_scope_accuracy"] == 1.0
