"""Host µs per eager call (GPU): our ops vs a plain torch op, and where the time goes.

python benchmarks/host_overhead.py
"""
import time

import torch

import lmkernels
from lmkernels.bench.harness import host_us
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime import launch

x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
y = torch.empty_like(x)
g = torch.randn(1, 2 * 14336, device="cuda", dtype=torch.bfloat16)
print(f"fast launch: {launch.FAST_LAUNCH}")
rows = {
    "torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
    "torch.empty_like(x)": lambda: torch.empty_like(x),
    "lmkernels.rms_norm(x, w)": lambda: lmkernels.rms_norm(x, w),
    "lmkernels.rms_norm(x, w, out=y)": lambda: lmkernels.rms_norm(x, w, out=y),
    "lmkernels.fused_add_rms_norm(x, y, w)": lambda: lmkernels.fused_add_rms_norm(x, y, w),
    "lmkernels.silu_and_mul(g)": lambda: lmkernels.silu_and_mul(g),
    "torch.ops.lmkernels.rms_norm(x, w, 1e-6, None)": lambda: torch.ops.lmkernels.rms_norm(x, w, 1e-6, None),
    "kernel[grid] (Triton's launch)": lambda: norm_ops._rms_norm_kernel[(1,)](
        x, x, w, y, 1, 4096, 4096, 4096, 4096, 1e-6, False, True, 4096, 0, num_warps=8),
    "Launcher only (cached)": lambda: norm_ops._launch((1,), (x, x, w, y, 1, 4096, 4096, 4096, 4096, 1e-6),
                                                       (False, True, 4096, 0), num_warps=8),
}
for name, fn in rows.items():
    print(f"{name:50s} {host_us(fn, 3000):6.2f} µs")
