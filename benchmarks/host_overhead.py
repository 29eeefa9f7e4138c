"""Host µs per eager call (GPU): our ops vs a plain torch op, and where the time goes.

python benchmarks/host_overhead.py
"""
import torch

import lmkernels
from lmkernels.bench.harness import host_us
from lmkernels.ops import norm as norm_ops
from lmkernels.ops._common import check_float, check_like, use_dispatcher
from lmkernels.runtime import launch

x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
y = torch.empty_like(x)
g = torch.randn(1, 2 * 14336, device="cuda", dtype=torch.bfloat16)
args = (x, x, w, y, 1, 4096, 4096, 4096, 4096, 1e-6)
consts = (False, True, 4096, False, 1, 0)
lmkernels.rms_norm(x, w, out=y)
key, largs = norm_ops._launch.prep(0, (consts, 8, 1), *args)
c_launch, runner, function, packed, coop, pdl = norm_ops._launch.cache[key]
stream = torch._C._cuda_getCurrentRawStream(0)
print(f"fast launch: {launch.FAST_LAUNCH}")
rows = {
    "torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
    "torch.empty_like(x)": lambda: torch.empty_like(x),
    "lmkernels.rms_norm(x, w)": lambda: lmkernels.rms_norm(x, w),
    "lmkernels.rms_norm(x, w, out=y)": lambda: lmkernels.rms_norm(x, w, out=y),
    "lmkernels.fused_add_rms_norm(x, y, w)": lambda: lmkernels.fused_add_rms_norm(x, y, w),
    "lmkernels.silu_and_mul(g)": lambda: lmkernels.silu_and_mul(g),
    "torch.ops.lmkernels.rms_norm(x, w, 1e-6, None)": lambda: torch.ops.lmkernels.rms_norm(x, w, 1e-6, None),
    "kernel[grid] (Triton's launch)": lambda: norm_ops._rms_norm_kernel[(1,)](*args, *consts, num_warps=8),
    "Launcher only (cached)": lambda: norm_ops._launch(0, (1,), args, consts, num_warps=8),
    "  C launch alone": lambda: c_launch(1, 1, 1, stream, function, coop, pdl, None, None, packed, None, None, None,
                                         *largs, *consts),
    "  prep (key + args)": lambda: norm_ops._launch.prep(0, (consts, 8, 1), *args),
    "  current device + stream": lambda: (torch._C._cuda_getDevice(), launch._get_stream(0)),
    "  use_dispatcher(x)": lambda: use_dispatcher(x),
    "  check_float + check_like(w)": lambda: (check_float(x, "x"), check_like(w, "weight", x, "x", shape=(4096,))),
    "  norm_config(4096, 2)": lambda: norm_ops.norm_config(4096, 2),
}
for name, fn in rows.items():
    print(f"{name:50s} {host_us(fn, 3000):6.2f} µs")
