"""Pick the torch device and CPU threads once, at setup time."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

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


@functools.cache
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix products in hardware (elsewhere they are emulated)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def cpu_model() -> str:
    """The CPU's model name (for benchmark records: hosts with the same core count differ in
    speed, so a figure means little without it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def use_cpu_bf16(mode: str) -> bool:
    """``THUMBLOOP_CPU_BF16``: on, off, or auto (on where the CPU has native bf16)."""
    return mode == "on" or (mode == "auto" and cpu_has_native_bf16())


def autocast_dtype(device: torch.device, cpu_bf16: bool = False) -> torch.dtype | None:
    """The inference autocast dtype: bf16 (fp16 where unsupported) on CUDA; bf16 on a CPU only
    when asked (where the CPU multiplies bf16 in hardware it is faster, with the same
    validation accuracy; elsewhere it is emulated and slower), else fp32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_bf16 else None
