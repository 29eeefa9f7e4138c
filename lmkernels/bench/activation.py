"""`lmkernels bench activation`: silu_and_mul and swiglustep_and_mul against peers, bf16."""
from __future__ import annotations

import torch

import lmkernels
from lmkernels import reference as ref
from lmkernels.runtime.access import available_modes

from .peers import compiled, liger

SHAPES = [(1, 14336), (16, 14336), (256, 14336), (4096, 14336), (16384, 14336), (1, 4096), (4096, 4096)]
LIMIT = 7.0


def cases(dtype=torch.bfloat16, shapes=SHAPES):
    lg = liger()
    out = []
    for T, d in shapes:
        e = torch.finfo(dtype).bits // 8
        nbytes = 3 * T * d * e  # read x [T, 2d], write y [T, d]

        def inputs(i, T=T, d=d):
            g = torch.Generator(device="cuda").manual_seed(2000 + i)
            return torch.randn(T, 2 * d, device="cuda", dtype=dtype, generator=g) * 3

        def ours(fn, mode, *extra):
            def make(i):
                x = inputs(i)
                return lambda: fn(x, *extra, access=mode)
            return make

        def eager(fn, *extra):
            def make(i):
                x = inputs(i)
                return lambda: fn(x, *extra)
            return make

        def comp(fn, *extra):
            def make(i):
                x = inputs(i)
                f = compiled(fn)
                return lambda: f(x, *extra)
            return make

        p = {f"lmkernels-{m}": ours(lmkernels.silu_and_mul, m) for m in available_modes()}
        p.update({"torch-eager": eager(ref.silu_and_mul), "torch-compile": comp(ref.silu_and_mul)})
        if lg is not None:
            def liger_silu(i):
                x = inputs(i)
                a, b = x[:, :d].contiguous(), x[:, d:].contiguous()  # Liger takes gate and up apart
                return lambda: lg.swiglu.LigerSiLUMulFunction.apply(a, b)
            p["liger (gate, up apart)"] = liger_silu
        s = {f"lmkernels-{m}": ours(lmkernels.swiglustep_and_mul, m, LIMIT) for m in available_modes()}
        s.update({"torch-eager": eager(ref.swiglustep_and_mul, LIMIT),
                  "torch-compile": comp(ref.swiglustep_and_mul, LIMIT)})
        dt = str(dtype).split(".")[-1]
        out.append(("silu_and_mul", f"T={T} d={d}", dt, nbytes, p))
        out.append(("swiglustep_and_mul", f"T={T} d={d}", dt, nbytes, s))
    return out
