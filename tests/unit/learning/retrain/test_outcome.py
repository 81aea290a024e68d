"""What a retrain reports: ``RetrainOutcome.to_dict`` is the JSON ``thumbloop retrain --json``
prints and the Celery task returns, in the shape it had when a retrain returned a plain dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from learning.retrain import run
from learning.retrain.outcome import RetrainOutcome
from thumbloop.cli.main import cli

REGISTERED = RetrainOutcome(
    version="7",
    gate="failed",
    classifier_gate="passed",
    generator_gate="failed",
    reasons=("all checks passed", "generator failed: reward ranking AUC 0.500 <= 0.600"),
    aliases=(),
    metrics={"candidate_golden_intent_accuracy": 0.9, "seconds": 12.5},
    run_id="abc123",
)
REGISTERED_JSON: dict[str, Any] = {
    "version": "7",
    "gate": "failed",
    "classifier_gate": "passed",
    "generator_gate": "failed",
    "reasons": ["all checks passed", "generator failed: reward ranking AUC 0.500 <= 0.600"],
    "aliases": [],
    "metrics": {"candidate_golden_intent_accuracy": 0.9, "seconds": 12.5},
    "run_id": "abc123",
}
SKIPPED = RetrainOutcome(skipped="no usable votes yet", votes=3)


def test_a_registered_candidate_reports_every_field_in_order() -> None:
    d = REGISTERED.to_dict()
    assert list(d.items()) == list(REGISTERED_JSON.items())
    assert json.loads(json.dumps(d)) == d
    assert not REGISTERED.passed


def test_a_skipped_retrain_says_only_why() -> None:
    assert RetrainOutcome(skipped="no champion to start from").to_dict() == {
        "skipped": "no champion to start from"
    }
    assert list(SKIPPED.to_dict().items()) == [("skipped", "no usable votes yet"), ("votes", 3)]
    assert not SKIPPED.passed and SKIPPED.gate is None and SKIPPED.metrics == {}


def test_passed_is_the_gate_of_both_parts() -> None:
    both = RetrainOutcome(version="8", gate="passed", classifier_gate="passed")
    assert both.passed and both.to_dict()["aliases"] == []


@pytest.mark.parametrize(
    ("outcome", "printed"),
    [
        (REGISTERED, REGISTERED_JSON),
        (SKIPPED, {"skipped": "no usable votes yet", "votes": 3}),
    ],
)
def test_the_cli_prints_the_outcome_with_the_new_votes(
    outcome: RetrainOutcome,
    printed: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run, "run_retrain", lambda settings, engine, progress=False: outcome)
    result = CliRunner().invoke(
        cli, ["retrain", "--force", "--json"], env={"THUMBLOOP_HOME": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    assert result.output == json.dumps(printed | {"new_votes": 0}, indent=2) + "\n"
