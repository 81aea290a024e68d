"""The reply generator: a causal LM that writes one chat reply per prompt, in batches.

Loading is explicit (:func:`load_generator`), never at import. Prompts are chat messages rendered
with the tokenizer's chat template; a batch is left-padded and generated at once, stopping at the
end-of-turn token, at ``max_new_tokens`` or when its time budget runs out, and every row says which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from serving.generator.source import GeneratorSource, resolve_generator
from thumbloop.model.loading import LOAD_LOCK

log = logging.getLogger(__name__)

Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}
Finish = Literal["stop", "length", "budget"]
# end-of-turn markers of common chat templates (ChatML, Llama 3, Gemma), where the vocab has them
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 48
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    min_new_tokens: int = 0  # benchmarks force a reply length with it


@dataclass(frozen=True)
class Generation:
    text: str  # the reply up to (not including) the end-of-turn token
    finish: Finish  # stop: end of turn; length: max_new_tokens; budget: out of time
    new_tokens: int


def model_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (fp16 where bf16 is unsupported), float32 on CPU."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Generator:
    def __init__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        device: torch.device,
        version: str,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.version = version
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = _stop_ids(tokenizer, model)

    def render(self, messages: Sequence[Message]) -> str:
        text = self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], add_generation_prompt=True, tokenize=False
        )
        return str(text)

    def prompt_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    def generate(
        self,
        prompts: Sequence[Sequence[Message]],
        sampling: Sampling,
        budget_s: float | None = None,
        seed: int | None = None,
    ) -> list[Generation]:
        """One reply per prompt. ``budget_s`` bounds the whole batch: rows that have not reached
        the end of their turn when it runs out come back with ``finish="budget"``."""
        if not prompts:
            return []
        enc = self.tokenizer(
            [self.render(p) for p in prompts],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(self.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "eos_token_id": sorted(self.stop_ids),
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sampling.temperature > 0:
            kwargs |= {"do_sample": True, "temperature": sampling.temperature}
            kwargs["top_p"] = sampling.top_p
        else:
            kwargs |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if sampling.min_new_tokens:
            kwargs["min_new_tokens"] = sampling.min_new_tokens
        if budget_s is not None:
            kwargs["max_time"] = max(budget_s, 1e-3)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :].cpu()
        results = [self._row(row.tolist(), sampling.max_new_tokens) for row in new]
        if len(results) != len(prompts):
            raise RuntimeError(f"generated {len(results)} replies for {len(prompts)} prompts")
        return results

    def _row(self, ids: list[int], max_new_tokens: int) -> Generation:
        stop = next((i for i, t in enumerate(ids) if t in self.stop_ids), None)
        if stop is not None:
            finish: Finish = "stop"
            ids = ids[:stop]
        else:
            finish = "length" if len(ids) >= max_new_tokens else "budget"
        text = str(self.tokenizer.decode(ids, skip_special_tokens=True)).strip()
        return Generation(text, finish, len(ids))

    def warm_up(self) -> float:
        start = time.perf_counter()
        self.generate([[{"role": "user", "content": "hi"}]], Sampling(max_new_tokens=2))
        return time.perf_counter() - start


def _stop_ids(tokenizer: PreTrainedTokenizerBase, model: Any) -> set[int]:
    ids: set[int] = set()
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN if t in vocab)
    return ids


def _load_model(source: GeneratorSource, dtype: torch.dtype) -> Any:
    if source.base is None:
        return AutoModelForCausalLM.from_pretrained(
            source.folder, dtype=dtype, local_files_only=True
        )
    from peft import PeftModel  # slow to import, and only an adapter folder needs it

    base = _load_model(source.base, dtype)
    # merged once at load: generation then runs at the base model's speed
    return PeftModel.from_pretrained(base, source.folder, local_files_only=True).merge_and_unload()


def _tokenizer_folder(source: GeneratorSource) -> GeneratorSource:
    has_own = (source.folder / "tokenizer_config.json").is_file()
    return source if has_own or source.base is None else _tokenizer_folder(source.base)


def load_generator(spec: str, home: Path, device: torch.device) -> Generator:
    """Resolve ``spec`` (``smollm2`` or a folder), load it on ``device`` and warm it up."""
    start = time.perf_counter()
    source = resolve_generator(spec, home)
    resolved = time.perf_counter()
    with LOAD_LOCK:
        tokenizer = AutoTokenizer.from_pretrained(
            _tokenizer_folder(source).folder, local_files_only=True
        )
        model = _load_model(source, model_dtype(device))
    model = model.to(device).eval()
    generator = Generator(model, tokenizer, device, source.version)
    loaded = time.perf_counter()
    warm = generator.warm_up()
    log.info(
        "generator %s on %s: resolve %.1f s, load %.1f s, warm-up %.1f s",
        source.version,
        device,
        resolved - start,
        loaded - resolved,
        warm,
    )
    return generator
