"""Pick the torch device and CPU threads once, at setup time."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str = "auto", cpu_threads: int | None = None) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for but CUDA is not available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads or max(1, len(os.sched_getaffinity(0))))
    return device


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
