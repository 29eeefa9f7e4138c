"""Peers measured beside lmkernels: the torch reference (eager), torch.compile of it, Liger-Kernel."""
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
