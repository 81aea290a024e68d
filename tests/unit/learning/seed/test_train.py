"""The training loss: complementary labels (a 👎 says "not this class") and distillation onto
the teacher's soft labels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learning.seed.batches import INTENT, Batch
from learning.seed.train import batch_loss


def _batch(labels: list[int], signs: list[int]) -> Batch:
    n = len(labels)
    return Batch(
        INTENT,
        torch.zeros(n, 1, 4),
        torch.ones(n, 1),
        torch.tensor(labels),
        torch.ones(n),
        torch.tensor(signs, dtype=torch.float32),
    )


def test_complementary_loss_pushes_the_voted_down_class_down() -> None:
    logits = torch.zeros(1, 3, requires_grad=True)
    loss = batch_loss(logits, _batch([0], [-1]), nn.CrossEntropyLoss(reduction="none"))
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[0, 0] > 0  # gradient descent lowers class 0
    assert logits.grad[0, 1] < 0 and logits.grad[0, 2] < 0
    pos = torch.zeros(1, 3, requires_grad=True)
    batch_loss(pos, _batch([0], [1]), nn.CrossEntropyLoss(reduction="none")).backward()
    assert pos.grad is not None and pos.grad[0, 0] < 0


@pytest.mark.parametrize("p", [0.2, 0.9])
def test_complementary_loss_value(p: float) -> None:
    logit = torch.log(torch.tensor([[p, (1 - p) / 2, (1 - p) / 2]]))
    loss = batch_loss(logit, _batch([0], [-1]), nn.CrossEntropyLoss(reduction="none"))
    assert float(loss) == pytest.approx(-torch.log(torch.tensor(1 - p)).item(), rel=1e-4)


def test_distillation_loss_matches_the_teacher() -> None:
    b = _batch([0], [1])
    b.soft = torch.tensor([[0.7, 0.2, 0.1]])
    at_teacher = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    elsewhere = torch.log(torch.tensor([[0.1, 0.2, 0.7]]))
    ce = nn.CrossEntropyLoss(reduction="none")
    assert float(batch_loss(at_teacher, b, ce)) < float(batch_loss(elsewhere, b, ce))
