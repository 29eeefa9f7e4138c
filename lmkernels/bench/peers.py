"""Peers measured beside lmkernels: the torch reference (eager), torch.compile of it, Liger-Kernel, cuBLAS."""
from __future__ import annotations

import functools

import torch
import torch._dynamo


@functools.lru_cache(maxsize=None)
def compiled(fn):
    """torch.compile of a reference, one graph per shape (static), recompiles allowed per case."""
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
    return torch.compile(fn, dynamic=False, fullgraph=True)


def liger():
    """The liger_kernel.ops module tree when importable, else None."""
    try:
        import liger_kernel.ops.fused_add_rms_norm
        import liger_kernel.ops.rms_norm
        import liger_kernel.ops.swiglu
        return liger_kernel.ops
    except Exception:
        return None


CUBLAS_16BIT = ("cuBLAS F.linear (bf16 out)", "cuBLAS torch.mm out_dtype=fp32")
CUBLAS_FP8 = ("torch._scaled_mm (cuBLASLt)",)


def cublas_small_gemm(x, w, x_scale=None, w_scale=None) -> dict:
    """{provider name: zero-argument call}: what an engine calls instead of ll_gemm(x, w), for the bench
    and `lmkernels tune ll-gemm`. 16-bit: F.linear (bf16 out, nn.Linear's) and torch.mm with fp32
    accumulation and out (the like-for-like call for router logits); fp8 e4m3: torch._scaled_mm with
    the per-tensor scales, fp32 out (cuBLASLt: N and K multiples of 16, else it raises)."""
    import torch.nn.functional as F
    wt = w.t()
    if x.dtype == torch.float8_e4m3fn:
        return {CUBLAS_FP8[0]: lambda: torch._scaled_mm(x, wt, scale_a=x_scale, scale_b=w_scale, out_dtype=torch.float32)}
    return {CUBLAS_16BIT[0]: lambda: F.linear(x, w),
            CUBLAS_16BIT[1]: lambda: torch.mm(x, wt, out_dtype=torch.float32)}
