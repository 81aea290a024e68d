"""KTO + LoRA on votes, on a tiny random Llama (seconds on a CPU): the split, the class weights,
the ranking metric, and two training rounds that must save, resolve, load and learn."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from learning.generator.kto import (
    GoldenPrompt,
    KtoConfig,
    KtoExample,
    class_weights,
    implied_rewards,
    ranking_auc,
    reply_quality,
    split_heldout,
    train_adapter,
)
from serving.generator.lm import Sampling, load_generator
from serving.generator.source import GeneratorSource, resolve_generator
from tests.tiny_lm import make_tiny_lm

CPU = torch.device("cpu")
GOOD = "Open the app and go to Cards to activate the new card."
BAD = "No, sorry. I cannot help with that."
# a tiny model learns fast: a high rate and few steps keep the file at seconds
FAST = KtoConfig(learning_rate=1e-2, epochs=4, batch_size=8, lora_r=4, lora_alpha=8)


def _example(i: int) -> KtoExample:
    liked = i % 2 == 0
    prompt = [
        {"role": "system", "content": "You are the customer support assistant of a bank."},
        {"role": "user", "content": f"How do I activate my card? ({i})"},
    ]
    return KtoExample(f"ix-{i}", prompt, GOOD if liked else BAD, liked)


EXAMPLES = [_example(i) for i in range(16)]
LABELS = [ex.label for ex in EXAMPLES]


@dataclass
class Rounds:
    home: Path
    base: GeneratorSource
    first: GeneratorSource


@pytest.fixture(scope="module")
def rounds(tmp_path_factory: pytest.TempPathFactory) -> Rounds:
    root = tmp_path_factory.mktemp("kto")
    home = root / "home"
    base = resolve_generator(str(make_tiny_lm(root / "base")), home)
    result = train_adapter(
        base, EXAMPLES, FAST, root / "round1", base_spec=str(base.folder), device=CPU
    )
    return Rounds(home, base, resolve_generator(str(result.folder), home))


# --- pure helpers --------------------------------------------------------------------------------


def test_split_heldout_is_deterministic_disjoint_and_stable() -> None:
    examples = [_example(i) for i in range(400)]
    train, heldout = split_heldout(examples, 0.25, seed=3)
    again = split_heldout(examples, 0.25, seed=3)
    assert (train, heldout) == again
    keys_train, keys_held = {e.key for e in train}, {e.key for e in heldout}
    assert not keys_train & keys_held
    assert len(train) + len(heldout) == len(examples)
    assert 0.15 < len(heldout) / len(examples) < 0.35
    # a vote keeps its side as more votes arrive; another seed draws another split
    _, held_later = split_heldout([*examples, *(_example(i) for i in range(400, 500))], 0.25, 3)
    assert keys_held <= {e.key for e in held_later}
    assert {e.key for e in split_heldout(examples, 0.25, seed=4)[1]} != keys_held
    assert split_heldout(examples, 0.0) == (examples, [])


@pytest.mark.parametrize(("nd", "nu"), [(10, 10), (90, 10), (10, 90), (1, 50), (300, 7), (3, 4)])
def test_class_weights_keep_ktos_recommended_ratio(nd: int, nu: int) -> None:
    dw, uw = class_weights(nd, nu)
    assert 1.0 <= (dw * nd) / (uw * nu) <= 4 / 3
    assert (dw * nd + uw * nu) / (nd + nu) == pytest.approx(1.0)  # the loss keeps its scale


def test_class_weights_without_one_class_are_neutral() -> None:
    assert class_weights(5, 0) == class_weights(0, 5) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("rewards", "labels", "auc"),
    [
        ([3, 2, 1, 0], [True, True, False, False], 1.0),
        ([0, 1, 2, 3], [True, True, False, False], 0.0),
        ([1, 1, 1, 1], [True, False, True, False], 0.5),
        ([0.3, 0.1, 0.2, 0.0], [True, False, False, True], 0.5),
        ([2, 1, 1, 0], [True, True, False, False], 0.875),  # one tie between the classes
    ],
)
def test_ranking_auc(rewards: list[float], labels: list[bool], auc: float) -> None:
    assert ranking_auc(rewards, labels) == pytest.approx(auc)


def test_ranking_auc_needs_both_classes() -> None:
    assert math.isnan(ranking_auc([1.0, 2.0], [True, True]))
    assert math.isnan(ranking_auc([], []))


def test_config_rejects_a_batch_without_a_kl_partner() -> None:
    with pytest.raises(ValueError):
        KtoConfig(batch_size=1)
    with pytest.raises(ValueError):
        KtoConfig(lr=1e-4)  # type: ignore[call-arg]


# --- training ------------------------------------------------------------------------------------


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


def test_reply_quality_on_the_tiny_model(rounds: Rounds) -> None:
    generator = load_generator(str(rounds.first.folder), rounds.home, CPU)
    items = [
        GoldenPrompt(ex.prompt, reference=GOOD, grounding=GOOD, user_text="activate my card")
        for ex in EXAMPLES[:5]
    ]
    quality = reply_quality(generator, items, Sampling(max_new_tokens=8), batch_size=2)
    assert set(quality) == {"coverage", "mean_words", "fallback_rate", "like_rate"}
    assert 0 <= quality["coverage"] <= 1 and 0 <= quality["fallback_rate"] <= 1
    assert 0 <= quality["like_rate"] <= 1 - quality["fallback_rate"]
    assert quality["mean_words"] >= 0
