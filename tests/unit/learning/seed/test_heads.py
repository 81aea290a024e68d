"""The few-shot recipe's pieces: the data-size rule, normalised pooling, the logistic heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression
from torch import nn
from transformers import BertConfig, BertModel

from learning.seed.config import TrainConfig
from learning.seed.heads import Features, fit_logistic
from thumbloop.model.network import HeadsConfig, ThumbloopModel


def test_encoder_is_tuned_only_with_enough_examples_per_intent() -> None:
    cfg = TrainConfig(layers_to_tune=2)
    assert cfg.tuned_layers(880, 88) == 0  # banking, 10-shot
    assert cfg.tuned_layers(6_885, 88) == 0  # banking, 80-shot
    assert cfg.tuned_layers(11_465, 88) == 2  # banking
    assert cfg.tuned_layers(15_100, 151) == 2  # CLINC150
    assert TrainConfig(min_tune_per_intent=0).tuned_layers(1, 88) == 2  # fp32: top two
    assert TrainConfig(min_tune_per_intent=0).tuned_layers(1, 88, bf16=True) == 6
    assert TrainConfig().tuned_layers(11_465, 88, bf16=True) == 6  # banking seed
    assert TrainConfig().tuned_layers(880, 88, bf16=True) == 0
    with pytest.raises(ValidationError):
        TrainConfig(head_c=0)
    with pytest.raises(ValidationError):
        TrainConfig(min_tune_per_intent=-1)


def _tiny_model(normalize: bool) -> ThumbloopModel:
    torch.manual_seed(0)
    enc = BertModel(
        BertConfig(
            vocab_size=30,
            hidden_size=8,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=16,
        ),
        add_pooling_layer=False,
    )
    return ThumbloopModel(enc, HeadsConfig(n_intents=3, hidden_size=8, normalize=normalize)).eval()


def test_pooling_is_normalised_only_when_the_bundle_says_so() -> None:
    hidden = torch.randn(2, 5, 8) * 4
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    raw = _tiny_model(False).pool(hidden, mask)
    unit = _tiny_model(True).pool(hidden, mask)
    assert torch.allclose(raw[0], hidden[0, :3].mean(0))
    assert torch.allclose(unit.norm(dim=-1), torch.ones(2))
    assert torch.allclose(unit, nn.functional.normalize(raw, dim=-1))
    assert HeadsConfig(n_intents=3).normalize is False  # bundles saved before the flag


def _blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8))
    y = np.arange(n) % 3
    x = centres[y] + rng.normal(scale=1.5, size=(n, 8))
    return x.astype(np.float32), y


def test_fit_logistic_matches_scikit_learn() -> None:
    x, y = _blobs()
    ref = LogisticRegression(C=10.0, max_iter=5000, tol=1e-8).fit(x, y).predict_proba(x)
    head = nn.Linear(8, 3)
    f = Features(torch.tensor(x), torch.tensor(y), torch.ones(len(y)), torch.ones(len(y)))
    fit_logistic(head, f, c=10.0)
    with torch.no_grad():
        probs = torch.softmax(head(torch.tensor(x)), -1).numpy()
    assert np.abs(probs - ref).max() < 1e-3
    assert not any(p.requires_grad for p in head.parameters())


def test_fit_logistic_learns_from_complementary_labels() -> None:
    x, y = _blobs()
    probe = torch.tensor(x[:1])
    base = Features(torch.tensor(x), torch.tensor(y), torch.ones(len(y)), torch.ones(len(y)))
    with_no = Features(
        torch.cat([base.x, probe.repeat(5, 1)]),
        torch.cat([base.labels, torch.full((5,), int(y[0]))]),
        torch.ones(len(y) + 5),
        torch.cat([base.signs, -torch.ones(5)]),  # five 👎: "not this label"
    )
    heads = []
    for f in (base, with_no):
        torch.manual_seed(0)
        head = nn.Linear(8, 3)
        fit_logistic(head, f, c=10.0)
        heads.append(head)
    with torch.no_grad():
        p_before, p_after = (torch.softmax(h(probe), -1)[0, int(y[0])] for h in heads)
    assert p_after < p_before
