"""KTO + LoRA on votes, on a tiny random Llama: training rounds that must save, resolve, load and
learn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from learning.generator.evaluate import implied_rewards, ranking_auc
from learning.generator.kto import train_adapter
from serving.generator.lm import Sampling, load_generator
from serving.generator.source import resolve_generator
from tests.unit.learning.generator.kto_votes import CPU, EXAMPLES, FAST, LABELS, Rounds


def test_training_moves_the_adapter_and_writes_a_manifest(rounds: Rounds) -> None:
    folder = rounds.first.folder
    weights = load_file(folder / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(t.abs().max() > 0 for t in lora_b)  # LoRA B starts at zero
    manifest = json.loads((folder / "generator.json").read_text())
    assert manifest["base"] == str(rounds.base.folder)
    assert manifest["version"].startswith("kto-")
    assert (manifest["examples"], manifest["desirable"], manifest["undesirable"]) == (16, 8, 8)
    assert manifest["config"]["lora_r"] == 4
    assert not list(folder.parent.glob(".round1.partial-*"))


def test_adapter_resolves_over_its_base_and_serves(rounds: Rounds) -> None:
    source = rounds.first
    assert source.is_adapter and source.base == rounds.base
    generator = load_generator(str(source.folder), rounds.home, CPU)
    assert generator.version == source.version and "kto-" in generator.version
    (reply,) = generator.generate([EXAMPLES[0].prompt], Sampling(max_new_tokens=4))
    assert reply.new_tokens <= 4


def test_training_ranks_liked_replies_above_disliked_ones(rounds: Rounds) -> None:
    assert not implied_rewards(rounds.base, EXAMPLES, 0.1, CPU).any()  # the base is its own ref
    rewards = implied_rewards(rounds.first, EXAMPLES, 0.1, CPU, batch_size=5)
    assert rewards.shape == (16,) and rewards.any()
    assert ranking_auc(rewards, LABELS) > 0.9
    assert rewards[::2].mean() > 0 > rewards[1::2].mean()


def test_a_second_round_continues_the_adapter(rounds: Rounds, tmp_path: Path) -> None:
    cfg = FAST.model_copy(update={"epochs": 1, "lora_r": 8})  # a continued adapter keeps its shape
    second = train_adapter(
        rounds.first,
        EXAMPLES,
        cfg,
        tmp_path / "round2",
        base_spec=str(rounds.base.folder),
        device=CPU,
    )
    assert second.steps == 2 and len(second.losses) == 2
    # a fresh adapter equals the base, so its first KTO loss is exactly 1 - sigmoid(0)
    assert second.losses[0] < 0.5 - 1e-3
    source = resolve_generator(str(second.folder), rounds.home)
    assert source.version != rounds.first.version and source.base == rounds.base
    manifest = json.loads((second.folder / "generator.json").read_text())
    assert manifest["start"] == rounds.first.version
    w1 = load_file(rounds.first.folder / "adapter_model.safetensors")
    w2 = load_file(second.folder / "adapter_model.safetensors")
    assert w1.keys() == w2.keys() and all(w1[k].shape == w2[k].shape for k in w1)  # r=4, not 8
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)
    before = implied_rewards(rounds.first, EXAMPLES, 0.1, CPU)
    after = implied_rewards(source, EXAMPLES, 0.1, CPU)
    assert ranking_auc(after, LABELS) > 0.9
    assert after[::2].mean() - after[1::2].mean() > before[::2].mean() - before[1::2].mean()


def test_a_fresh_round_starts_at_the_base(rounds: Rounds, tmp_path: Path) -> None:
    one_step = FAST.model_copy(update={"epochs": 1})
    result = train_adapter(
        rounds.base, EXAMPLES[:8], one_step, tmp_path / "fresh", base_spec="tiny", device=CPU
    )
    assert result.steps == 1 and result.losses[0] == pytest.approx(0.5)
    with pytest.raises(FileExistsError):
        train_adapter(
            rounds.base, EXAMPLES[:8], one_step, tmp_path / "fresh", base_spec="t", device=CPU
        )
