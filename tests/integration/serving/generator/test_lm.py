"""The reply generator for real: SmolLM2 loaded from its converted folder, generating in batches,
under a time budget, with a LoRA adapter merged over it; on CUDA, in half precision."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from serving.generator.lm import Generator, Sampling, load_generator, model_dtype
from serving.generator.source import MANIFEST, GeneratorSource
from serving.replies.prompt import PromptInput, build_messages
from tests.tiny_lm import make_tiny_lm

CPU = torch.device("cpu")
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def generator(generator_source: GeneratorSource) -> Generator:
    return load_generator(str(generator_source.folder), Path("/nonexistent-home"), CPU)


def test_converted_folder_loads_offline_and_fast(generator_source: GeneratorSource) -> None:
    start = time.perf_counter()
    g = load_generator(str(generator_source.folder), Path("/nonexistent-home"), CPU)
    assert time.perf_counter() - start < 15.0  # ~0.5 s on an idle machine, warm-up included
    assert g.version == generator_source.version
    assert next(g.model.parameters()).dtype == torch.float32
    assert g.tokenizer.padding_side == "left"
    assert g.tokenizer.convert_tokens_to_ids("<|im_end|>") in g.stop_ids


def test_batched_generation_left_pads_and_reports_why_it_stopped(generator: Generator) -> None:
    prompts = [
        HELLO,
        build_messages(
            PromptInput(
                "where is my card? it has been a while and I am getting worried about it",
                "card_arrival",
                "negative",
                "Check the card status under Cards in the app.",
            )
        ),
    ]
    out = generator.generate(prompts, Sampling(max_new_tokens=6))
    assert len(out) == 2
    assert all(g.finish in ("stop", "length") and 0 < g.new_tokens <= 6 for g in out)
    assert all("<|im_end|>" not in g.text for g in out)
    # greedy decoding is deterministic, and a row's reply does not depend on its batch-mates
    alone = generator.generate(prompts[1:], Sampling(max_new_tokens=6))
    assert alone[0].text == out[1].text


def test_an_exhausted_time_budget_marks_unfinished_rows(generator: Generator) -> None:
    out = generator.generate([HELLO, HELLO], Sampling(max_new_tokens=48), budget_s=0.001)
    assert [g.finish for g in out] == ["budget", "budget"]


def test_a_lora_adapter_folder_is_merged_over_its_base(
    generator_source: GeneratorSource, generator: Generator, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(generator_source.folder, local_files_only=True)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(str(tmp_path / "adapter"))
    manifest = {"version": "kto-1", "base": str(generator_source.folder)}
    (tmp_path / "adapter" / MANIFEST).write_text(json.dumps(manifest))
    tuned = load_generator(str(tmp_path / "adapter"), tmp_path, CPU)
    assert tuned.version == f"{generator_source.version}+kto-1"
    ids = torch.tensor([[1, 504, 3, 42, 7]])
    with torch.inference_mode():
        assert not torch.allclose(tuned.model(ids).logits, generator.model(ids).logits)


@pytest.mark.gpu
def test_on_cuda_the_generator_runs_in_half_precision(tmp_path: Path) -> None:
    cuda = torch.device("cuda")
    assert model_dtype(cuda) == (
        torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    )
    g = load_generator(str(make_tiny_lm(tmp_path / "lm")), tmp_path, cuda)
    weights = next(g.model.parameters())
    assert weights.device.type == "cuda" and weights.dtype == model_dtype(cuda)
    out = g.generate([HELLO, HELLO], Sampling(max_new_tokens=4))
    assert all(r.finish in ("stop", "length") and r.new_tokens <= 4 for r in out)
    assert out[0].text == out[1].text  # greedy: the same prompt gives the same reply
