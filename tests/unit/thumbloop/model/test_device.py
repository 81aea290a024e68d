"""Device resolution and the inference autocast dtype: CUDA where it is present (and asked for),
the CPU otherwise, and a clear refusal when CUDA is asked for but absent."""

from __future__ import annotations

import pytest
import torch

from thumbloop.model.device import autocast_dtype, resolve_device


def test_cuda_asked_for_without_cuda_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")


def test_auto_is_the_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    threads = torch.get_num_threads()  # passed back in: resolving a CPU sets the thread count
    assert resolve_device("auto", threads) == torch.device("cpu")
    assert torch.get_num_threads() == threads


@pytest.mark.gpu
def test_auto_and_cuda_resolve_to_the_gpu() -> None:
    threads = torch.get_num_threads()
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda").type == "cuda"
    assert torch.get_num_threads() == threads  # only a CPU device sets torch's threads


@pytest.mark.gpu
def test_cuda_autocasts_to_bf16_where_supported_else_fp16() -> None:
    cuda = torch.device("cuda")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert autocast_dtype(cuda) == expected
    assert autocast_dtype(cuda, cpu_bf16=True) == expected  # the CPU setting does not apply
