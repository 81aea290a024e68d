"""The training time budget: a loop plans fewer steps when its step rate would overrun."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from transformers import BertConfig, BertModel

from learning.seed.batches import INTENT, SENTIMENT, Batch
from learning.seed.budget import StepBudget
from learning.seed.config import TrainConfig
from learning.seed.train import fine_tune
from thumbloop.model.network import HeadsConfig, ThumbloopModel


class FakeClock:
    def __init__(self, step_s: float | Callable[[int], float]) -> None:
        """``step_s``: seconds each step takes, or a function of the step's (0-based) index."""
        self.now = 0.0
        self.step_s = step_s if callable(step_s) else lambda _: step_s

    def __call__(self) -> float:
        return self.now


def run(budget: StepBudget, clock: FakeClock, steps: int) -> int:
    """Drive the budget like a training loop; returns the steps taken."""
    total = budget.plan(steps)
    step = 0
    while step < total:
        clock.now += clock.step_s(step)
        step += 1
        total = budget.step_done(step)
    return step


def test_no_deadline_keeps_the_plan() -> None:
    clock = FakeClock(1.0)
    budget = StepBudget(deadline=None, clock=clock)
    assert run(budget, clock, 500) == 500
    assert not budget.cut


def test_a_plan_that_fits_is_not_cut() -> None:
    clock = FakeClock(1.0)
    budget = StepBudget(deadline=1000.0, clock=clock)
    assert run(budget, clock, 900) == 900
    assert budget.total == budget.planned == 900


def test_a_plan_that_overruns_ends_at_the_deadline() -> None:
    clock = FakeClock(1.0)
    budget = StepBudget(deadline=300.0, clock=clock)
    taken = run(budget, clock, 1000)
    assert budget.cut and budget.planned == 1000
    assert taken == budget.total
    assert 295 <= taken <= 300
    assert clock.now <= 300.0


def test_a_slowdown_midway_shortens_the_plan_again() -> None:
    clock = FakeClock(lambda step: 1.0 if step < 100 else 3.0)  # the machine gets busy
    budget = StepBudget(deadline=400.0, every=10, clock=clock)
    step = run(budget, clock, 1000)
    assert clock.now <= 400.0 + 3.0 * 10  # at most one re-measure interval late
    assert step < 250


def test_a_plan_cut_on_a_slow_start_grows_back_and_still_meets_the_deadline() -> None:
    # warming up, or a busy moment at the start
    clock = FakeClock(lambda step: 3.0 if step < 30 else 0.3)
    budget = StepBudget(deadline=400.0, every=10, clock=clock)
    step = run(budget, clock, 1000)
    # the probe's 3 s a step planned ~130 steps; the measured rate then lets nearly all run
    assert step > 900
    assert clock.now <= 400.0


def test_a_deadline_already_past_stops_after_the_probe() -> None:
    clock = FakeClock(1.0)
    budget = StepBudget(deadline=0.0, clock=clock)
    assert run(budget, clock, 1000) == budget.skip + budget.probe


def _tiny_model() -> ThumbloopModel:
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    return ThumbloopModel(BertModel(cfg, add_pooling_layer=False), HeadsConfig(4, hidden_size=16))


def _batches(n: int) -> list[Batch]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        task = INTENT if i % 2 else SENTIMENT
        out.append(
            Batch(
                task=task,
                hidden=torch.randn(4, 6, 16, generator=gen),
                mask=torch.ones(4, 6, dtype=torch.long),
                labels=torch.randint(0, 3, (4,), generator=gen),
                weights=torch.ones(4),
                signs=torch.ones(4),
            )
        )
    return out


def test_fine_tune_stops_where_its_budget_cuts_it() -> None:
    clock = FakeClock(0.0)
    model = _tiny_model()
    budget = StepBudget(deadline=40.0, clock=clock)

    def tick(*_: object) -> None:
        clock.now += 1.0  # each optimiser step "takes" a second

    hook = register_optimizer_step_post_hook(tick)
    try:
        cfg = TrainConfig(epochs=3, intent_repeats=1, device="cpu")
        fine_tune(model, _batches(40), cfg, 1, torch.device("cpu"), False, budget)
    finally:
        hook.remove()
    assert budget.planned == 120
    assert budget.cut and budget.total <= 40
    assert clock.now == budget.total  # no step ran past the cut


def test_fine_tune_runs_the_steps_a_plan_grown_back_allows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A slow start cuts the plan; once steps get fast the plan grows back and fine-tuning runs
    all of it, still within the deadline."""
    clock = FakeClock(0.0)
    model = _tiny_model()
    budget = StepBudget(deadline=100.0, every=5, clock=clock)
    steps = 0

    def tick(*_: object) -> None:
        nonlocal steps
        clock.now += 3.0 if steps < 10 else 0.3
        steps += 1

    hook = register_optimizer_step_post_hook(tick)
    try:
        cfg = TrainConfig(epochs=3, intent_repeats=1, device="cpu")
        with caplog.at_level(logging.INFO, logger="learning.seed.budget"):
            fine_tune(model, _batches(40), cfg, 1, torch.device("cpu"), False, budget)
    finally:
        hook.remove()
    assert "steps fit (" in caplog.text and "fit again" in caplog.text  # cut, then grown
    assert steps == budget.total == budget.planned == 120
    assert clock.now <= 100.0
