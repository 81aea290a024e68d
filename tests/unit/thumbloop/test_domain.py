import json
from pathlib import Path

import pytest

from thumbloop.domain import DomainError, load_domain, read_examples

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_banking_domain_is_complete() -> None:
    d = load_domain(ROOT / "data" / "banking")
    assert len(d.intents) == 77 + 10 + 1
    assert d.out_of_scope in d.intents
    assert {"card_arrival", "greeting", "Refund_not_showing_up"} <= set(d.intents)
    for intent in d.intents:
        variants = d.responses[intent]
        assert len(variants) >= 2
        assert any(v.tone == "empathetic" for v in variants)
    train_texts = {e.text for e in d.train}
    # the source sets hold a few exact duplicates; the carve itself must not leak
    overlap = train_texts & {e.text for e in d.validation}
    assert len(overlap) <= 5, sorted(overlap)[:10]
    assert {e.label for e in d.sentiment("validation")} == {"negative", "neutral", "positive"}


def test_shipped_clinc_domain_loads() -> None:
    d = load_domain(ROOT / "data" / "clinc150")
    assert len(d.intents) == 151
    assert "out_of_scope" in d.intents


def test_manifest_digest_lists_every_file() -> None:
    d = load_domain(ROOT / "data" / "banking")
    digest = d.manifest_digest()
    assert digest["domain"] == "banking"
    assert len(digest["files"]) == 6
    assert all(len(f["sha256"]) == 64 and f["lines"] > 0 for f in digest["files"])


def test_malformed_line_is_named(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_text('{"text": "a", "label": "b"}\n{oops\n')
    with pytest.raises(DomainError, match=r"x.jsonl:2: not valid JSON"):
        read_examples(f)
    f.write_text('{"text": "", "label": "b"}\n')
    with pytest.raises(DomainError, match=r":1: empty text"):
        read_examples(f)


def test_validation_label_unknown_to_train_is_an_error(tiny_domain: Path, tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "d"
    shutil.copytree(tiny_domain, d)
    with (d / "intents/validation.jsonl").open("a") as fh:
        fh.write(json.dumps({"text": "fly me to the moon", "label": "book_flight"}) + "\n")
    with pytest.raises(DomainError, match="unknown label 'book_flight'"):
        load_domain(d)


def test_missing_responses_for_an_intent(tiny_domain: Path, tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "d"
    shutil.copytree(tiny_domain, d)
    table = json.loads((d / "responses.json").read_text())
    del table["responses"]["greeting"]
    (d / "responses.json").write_text(json.dumps(table))
    with pytest.raises(DomainError, match="no responses for intents"):
        load_domain(d)


def test_not_a_domain(tmp_path: Path) -> None:
    with pytest.raises(DomainError, match=r"no domain\.json"):
        load_domain(tmp_path)
