"""`lmkernels bench activation`: silu_and_mul and swiglustep_and_mul against peers, bf16."""
from __future__ import annotations

import torch

import lmkernels
from lmkernels import reference as ref
from lmkernels.runtime.access import available_modes

from .peers import compiled, liger

SHAPES = [(1, 14336), (16, 14336), (256, 14336), (4096, 14336), (16384, 14336), (1, 4096), (4096, 4096)]
LIMIT = 7.0


def _shape_cases(T: int, d: int, dtype, lg):
    e = torch.finfo(dtype).bits // 8
    dt = str(dtype).split(".")[-1]

    def provider(fn):
        def make(i):
            g = torch.Generator(device="cuda").manual_seed(2000 + i)
            x = torch.randn(T, 2 * d, device="cuda", dtype=dtype, generator=g) * 3
            return lambda: fn(x)
        return make

    p = {f"lmkernels-{m}": provider(lambda x, m=m: lmkernels.silu_and_mul(x, access=m)) for m in available_modes()}
    # the default launch is PDL on sm90+; "pdl off" isolates what PDL buys (the peers have none)
    p["lmkernels-pointer, pdl off"] = provider(lambda x: lmkernels.silu_and_mul(x, pdl=False))
    p["torch-eager"] = provider(ref.silu_and_mul)
    p["torch-compile"] = provider(lambda x: compiled(ref.silu_and_mul)(x))
    if lg is not None:
        def liger_make(i):
            g = torch.Generator(device="cuda").manual_seed(2000 + i)
            a = torch.randn(T, d, device="cuda", dtype=dtype, generator=g) * 3  # Liger takes gate and up apart
            b = torch.randn(T, d, device="cuda", dtype=dtype, generator=g) * 3
            return lambda: lg.LigerSiLUMulFunction.apply(a, b)
        p["liger (gate, up apart)"] = liger_make
    s = {f"lmkernels-{m}": provider(lambda x, m=m: lmkernels.swiglustep_and_mul(x, LIMIT, access=m))
         for m in available_modes()}
    s["torch-eager"] = provider(lambda x: ref.swiglustep_and_mul(x, LIMIT))
    s["torch-compile"] = provider(lambda x: compiled(ref.swiglustep_and_mul)(x, LIMIT))
    nbytes = 3 * T * d * e  # read x [T, 2d], write y [T, d]
    return [("silu_and_mul", f"T={T} d={d}", dt, nbytes, p),
            ("swiglustep_and_mul", f"T={T} d={d}", dt, nbytes, s)]


def cases(dtype=torch.bfloat16, shapes=SHAPES):
    lg = liger()
    return [c for T, d in shapes for c in _shape_cases(T, d, dtype, lg)]
