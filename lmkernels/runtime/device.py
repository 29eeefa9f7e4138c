"""What this process can run: the interpreter or a GPU, the Triton version, the access modes.

Nothing here launches a kernel; everything is cached after the first question.
"""
from __future__ import annotations

import functools
import os

import torch
import triton


def triton_version() -> tuple[int, int]:
    major, minor = triton.__version__.split(".")[:2]
    return int(major), int(minor)


@functools.lru_cache(maxsize=None)
def is_interpreter() -> bool:
    """True when Triton runs kernels on the CPU (TRITON_INTERPRET=1 when triton was imported)."""
    try:
        from triton import knobs
        return bool(knobs.runtime.interpret)
    except (ImportError, AttributeError):  # Triton < 3.4 has no knobs
        return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=None)
def num_sms(device_index: int) -> int:
    """Multiprocessor count; the interpreter gets a small fixed number so grids stay small."""
    if is_interpreter() or not torch.cuda.is_available():
        return 4
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def describe_device() -> str:
    if torch.cuda.is_available() and not is_interpreter():
        p = torch.cuda.get_device_properties(0)
        return f"{p.name} ({p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB)"
    return "CPU, Triton interpreter" if is_interpreter() else "CPU (no GPU; set TRITON_INTERPRET=1 to run kernels)"


@functools.lru_cache(maxsize=None)
def pdl_supported(device_index: int) -> bool:
    """Programmatic dependent launch: an NVIDIA GPU of compute capability >= 9.0 and a Triton with
    gdc_wait (3.4+). Never under the interpreter, which has no grid-dependency control to stand in for."""
    if is_interpreter() or not torch.cuda.is_available() or device_index < 0 or torch.version.hip:
        return False
    try:
        from triton.language.extra import cuda
    except ImportError:
        return False
    return hasattr(cuda, "gdc_wait") and hasattr(cuda, "gdc_launch_dependents") and torch.cuda.get_device_capability(device_index) >= (9, 0)


# The L2 prefetch before a PDL wait (kernels/access.py prefetch_l2) in the memory-bound ops that
# use it. On unless LMKERNELS_PDL_PREFETCH=0 (read at import; plans read this attribute when they are
# made, so benchmarks/probe_prefetch.py can time both in one process by clearing the plan caches).
PDL_PREFETCH = os.environ.get("LMKERNELS_PDL_PREFETCH", "1") != "0"


def pdl_prefetch(use_pdl: bool) -> bool:
    """Whether a PDL launch prefetches its first reads into L2 before its wait."""
    return use_pdl and PDL_PREFETCH


@functools.lru_cache(maxsize=None)
def fp8_cast_native(device_index: int) -> bool:
    """Whether kernels may cast fp32 -> float8_e4m3fn / e5m2 with Triton's cast and get PyTorch's
    bits: NVIDIA sm89+, where it is cvt.rn.satfinite (round to nearest even). Triton refuses e4m3fn
    below sm89; the interpreter's cast rounds wrongly (kernels/kv_cache.py); AMD's is not
    documented as one round-to-nearest-even step. Elsewhere kernels encode fp8 bits themselves."""
    if is_interpreter() or not torch.cuda.is_available() or device_index < 0 or torch.version.hip:
        return False
    return torch.cuda.get_device_capability(device_index) >= (8, 9)


def fp8_mma_problem(device_index: int) -> str | None:
    """Why float8_e4m3fn matmul operands cannot run on this device, or None: Triton has no fp8e4nv
    MMA on NVIDIA GPUs below sm89 (the interpreter, AMD and the CPU have no such limit here)."""
    if is_interpreter() or device_index < 0 or torch.version.hip or not torch.cuda.is_available():
        return None
    cc = torch.cuda.get_device_capability(device_index)
    if cc < (8, 9):
        return (f"float8_e4m3fn operands need an NVIDIA GPU of compute capability >= 8.9 (Triton has no "
                f"fp8e4nv MMA below sm89); this one is sm{cc[0]}{cc[1]}")
    return None
