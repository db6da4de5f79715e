"""Device choice and autocast settings shared by training, evaluation and the app."""

from __future__ import annotations

import contextlib

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU — or exactly what `preference` names."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bf16 in hardware (AVX-512 BF16 or AMX), where bf16 is faster than
    fp32; elsewhere (e.g. AVX2-only CPUs) bf16 is emulated and about 10x slower to train. Read from
    /proc/cpuinfo (Linux only)."""
    try:
        with open(cpuinfo_path, encoding="ascii", errors="ignore") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_name(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The CPU model, its widest vector extension (which decides how fast inference kernels run) and torch's
    thread count, e.g. 'AMD EPYC, AVX-512 BF16, 2 threads'; recorded beside every latency figure."""
    try:
        with open(cpuinfo_path, encoding="ascii", errors="ignore") as cpuinfo:
            lines = cpuinfo.read().splitlines()
    except OSError:
        lines = []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    flags = next((line for line in lines if line.startswith("flags")), "").split()
    isa = next((name for flag, name in (("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                if flag in flags), "no AVX2")
    return f"{model}, {isa}, {torch.get_num_threads()} threads"


def use_bf16(device: torch.device, precision: str = "auto") -> bool:
    """Whether inference on `device` runs under bf16 autocast for the given precision setting."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if device.type != "cpu" or precision == "fp32":
        return False
    return precision == "bf16" or cpu_has_native_bf16()


def training_precision(device: torch.device, amp: bool = True) -> str:
    """The precision mixed-precision training actually uses on `device`: fp16 on CUDA, bf16 on CPUs
    with native bf16, fp32 elsewhere (emulated bf16 would make a CPU epoch about 10x slower)."""
    if not amp:
        return "fp32"
    if device.type == "cuda":
        return "fp16"
    return "bf16" if use_bf16(device, "auto") else "fp32"  # the same rule as inference's "auto"


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision: fp16 on CUDA, bf16 on CPU (fast on AVX-512 BF16 CPUs); off elsewhere."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
