"""`thumbloop config` documents every setting; `thumbloop backfill` validates before sending."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from thumbloop.cli.main import cli
from thumbloop.cli.ops import CONFIG_BEGIN, CONFIG_END, config_table
from thumbloop.identity import hash_id
from thumbloop.settings import Settings

ROOT = Path(__file__).resolve().parents[4]


def test_the_documented_config_table_is_the_generated_one() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = doc.split(CONFIG_BEGIN, 1)[1].split(CONFIG_END, 1)[0].strip()
    assert documented == config_table(), "run `thumbloop config --markdown` into the docs"


def test_every_setting_has_a_row_with_a_meaning() -> None:
    rows = config_table().splitlines()[2:]
    assert len(rows) == len(Settings.fields())
    for row in rows:
        assert row.rstrip(" |").split("|")[-1].strip(), f"no meaning: {row}"


def test_config_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THUMBLOOP_TELEGRAM_TOKEN", "123:very-secret")
    out = CliRunner().invoke(cli, ["config"])
    assert out.exit_code == 0
    assert "very-secret" not in out.output
    assert "THUMBLOOP_TELEGRAM_TOKEN=***" in out.output


def _interaction() -> dict[str, object]:
    return {
        "interaction_id": str(uuid.uuid4()),
        "platform": "telegram",
        "user": hash_id("k", "telegram", 1),
        "conversation": hash_id("k", "telegram", 2),
        "text": "where is my card",
        "intent": "card_arrival",
        "intent_confidence": 0.9,
        "sentiment": "neutral",
        "response_id": "card_arrival/1",
        "reply_text": "It is on its way.",
        "model_version": "thumbloop/1",
    }


def test_backfill_dry_run_counts_valid_records(tmp_path: Path) -> None:
    item = _interaction()
    vote = {
        "interaction_id": item["interaction_id"],
        "rater": hash_id("k", "telegram", 1),
        "value": 1,
        "platform": "telegram",
    }
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps({"interaction": item}) + "\n\n" + json.dumps({"vote": vote}) + "\n")
    out = CliRunner().invoke(cli, ["backfill", str(path), "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "1 interactions, 1 votes, all valid" in out.output


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ('{"vote": {"interaction_id": "x", "rater": "r", "value": 2}}', "b.jsonl:2:"),
        ('{"thumb": {}}', "b.jsonl:2: unknown record 'thumb'"),
        ("not json", "b.jsonl:2:"),
        ('{"interaction": {}, "vote": {}}', "b.jsonl:2: expected"),
    ],
)
def test_backfill_names_the_bad_line_and_sends_nothing(
    tmp_path: Path, second_line: str, message: str
) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps({"interaction": _interaction()}) + "\n" + second_line + "\n")
    out = CliRunner().invoke(cli, ["backfill", str(path)])
    assert out.exit_code != 0
    assert message in out.output


def test_backfill_of_an_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text("\n")
    out = CliRunner().invoke(cli, ["backfill", str(path)])
    assert out.exit_code != 0 and "no records" in out.output
