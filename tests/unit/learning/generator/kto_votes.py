"""Votes and a first KTO round on a tiny random Llama (quick on a CPU), shared by the trainer's
and the evaluation's tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from learning.generator.kto import train_adapter
from learning.generator.kto_data import KtoConfig, KtoExample
from serving.generator.source import GeneratorSource, resolve_generator
from tests.tiny_lm import make_tiny_lm

CPU = torch.device("cpu")
GOOD = "Open the app and go to Cards to activate the new card."
BAD = "No, sorry. I cannot help with that."
# a tiny model learns fast: a high rate and few steps keep the file at seconds
FAST = KtoConfig(learning_rate=1e-2, epochs=4, batch_size=8, lora_r=4, lora_alpha=8)


def example(i: int) -> KtoExample:
    liked = i % 2 == 0
    prompt = [
        {"role": "system", "content": "You are the customer support assistant of a bank."},
        {"role": "user", "content": f"How do I activate my card? ({i})"},
    ]
    return KtoExample(f"ix-{i}", prompt, GOOD if liked else BAD, liked)


EXAMPLES = [example(i) for i in range(16)]
LABELS = [ex.label for ex in EXAMPLES]


@dataclass
class Rounds:
    home: Path
    base: GeneratorSource
    first: GeneratorSource


def first_round(root: Path) -> Rounds:
    home = root / "home"
    base = resolve_generator(str(make_tiny_lm(root / "base")), home)
    result = train_adapter(
        base, EXAMPLES, FAST, root / "round1", base_spec=str(base.folder), device=CPU
    )
    return Rounds(home, base, resolve_generator(str(result.folder), home))
