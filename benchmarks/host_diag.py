"""Temporary: where the eager rms_norm host time goes (prefixes of the path, and cProfile)."""
import cProfile
import pstats

import torch

import lmkernels
from lmkernels.bench.harness import host_us
from lmkernels.ops import norm as norm_ops
from lmkernels.ops._common import use_dispatcher

x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
y = torch.empty_like(x)
lmkernels.rms_norm(x, w, out=y)
FD = norm_ops.FLOAT_DTYPES


def checks(x=x, y=y, weight=w, residual=None, eps=1e-6):
    shape = x.shape
    dt = x.dtype
    dev = x.get_device()
    fast = (len(shape) == 2 and dev >= 0
            and dt in FD and type(eps) is float
            and y.dtype is dt and y.shape == shape and y.get_device() == dev
            and (weight is None or (weight.dtype is dt and weight.shape == shape[1:]
                                    and weight.get_device() == dev and weight.is_contiguous()))
            and (residual is None))
    xs, ys = x.stride(), y.stride()
    return fast, xs, ys


_, block, consts, meta = norm_ops._plan(4096, x.dtype, 0, False, True)
rows = {
    "torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
    "rms_norm(x, w, out=y)": lambda: lmkernels.rms_norm(x, w, out=y),
    "norm_into direct": lambda: norm_ops.norm_into(x, None, w, y, 1e-6, None),
    "use_dispatcher": lambda: use_dispatcher(x),
    "checks": checks,
    "plan": lambda: norm_ops._plan(4096, x.dtype, 0, False, True),
    "fast": lambda: norm_ops._launch.fast(0, meta, 1, 1, x, x, w, y, 1, 4096, 4096, 4096, 4096, 1e-6),
    "torch.mul again": lambda: torch.mul(x, 2, out=y),
    "rms_norm again": lambda: lmkernels.rms_norm(x, w, out=y),
    "fast again": lambda: norm_ops._launch.fast(0, meta, 1, 1, x, x, w, y, 1, 4096, 4096, 4096, 4096, 1e-6),
    "y.shape == x.shape": lambda: y.shape == x.shape,
    "w.shape == x.shape[1:]": lambda: w.shape == x.shape[1:],
    "w.is_contiguous()": lambda: w.is_contiguous(),
}
for name, fn in rows.items():
    print(f"{name:40s} {host_us(fn, 2000):6.2f} µs", flush=True)
pr = cProfile.Profile()
pr.enable()
for _ in range(20000):
    lmkernels.rms_norm(x, w, out=y)
pr.disable()
torch.cuda.synchronize()
pstats.Stats(pr).sort_stats("tottime").print_stats(15)
