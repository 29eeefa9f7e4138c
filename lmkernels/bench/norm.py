"""`lmkernels bench norm`: rms_norm and fused_add_rms_norm against peers, bf16."""
from __future__ import annotations

import torch

import lmkernels
from lmkernels import reference as ref
from lmkernels.runtime.access import available_modes

from .peers import compiled, liger

SHAPES = [(1, 4096), (16, 4096), (256, 4096), (4096, 4096), (32768, 4096),
          (1, 8192), (16, 8192), (4096, 8192), (32768, 8192)]
EPS = 1e-6


def _shape_cases(T: int, H: int, dtype, lg):
    e = torch.finfo(dtype).bits // 8
    dt = str(dtype).split(".")[-1]

    def inputs(i):
        g = torch.Generator(device="cuda").manual_seed(1000 + i)
        x = torch.randn(T, H, device="cuda", dtype=dtype, generator=g)
        r = torch.randn(T, H, device="cuda", dtype=dtype, generator=g)
        w = torch.randn(H, device="cuda", dtype=dtype, generator=g)
        return x, r, w

    def norm(fn):
        def make(i):
            x, _, w = inputs(i)
            return lambda: fn(x, w)
        return make

    def fused(fn):
        def make(i):
            x, r, w = inputs(i)
            return lambda: fn(x, r, w)
        return make

    # lmkernels-<mode>: the default launch (PDL on sm90+: each call overlaps its launch with the
    # previous call's tail); "pdl off" isolates what PDL buys, and is what the peers are (no PDL)
    p = {f"lmkernels-{m}": norm(lambda x, w, m=m: lmkernels.rms_norm(x, w, EPS, access=m)) for m in available_modes()}
    p["lmkernels-pointer, pdl off"] = norm(lambda x, w: lmkernels.rms_norm(x, w, EPS, pdl=False))
    p["torch-eager"] = norm(lambda x, w: ref.rms_norm(x, w, EPS))
    p["torch-compile"] = norm(lambda x, w: compiled(ref.rms_norm)(x, w, EPS))
    pf = {f"lmkernels-{m}": fused(lambda x, r, w, m=m: lmkernels.fused_add_rms_norm(x, r, w, EPS, access=m))
          for m in available_modes()}
    pf["lmkernels-pointer, pdl off"] = fused(lambda x, r, w: lmkernels.fused_add_rms_norm(x, r, w, EPS, pdl=False))
    pf["torch-eager"] = fused(lambda x, r, w: ref.fused_add_rms_norm(x, r, w, EPS))
    pf["torch-compile"] = fused(lambda x, r, w: compiled(ref.fused_add_rms_norm)(x, r, w, EPS))
    if lg is not None:
        p["liger"] = norm(lambda x, w: lg.LigerRMSNormFunction.apply(x, w, EPS, 0.0, "llama", False))
        pf["liger (out of place)"] = fused(
            lambda x, r, w: lg.LigerFusedAddRMSNormFunction.apply(x, r, w, EPS, 0.0, "llama", False))
    # rms_norm: read x [T, H] and w [H], write y [T, H]
    # fused_add_rms_norm: read x, residual and w, write x and residual
    # from T = 4096 on, also one input set replayed (ANCHORS.md's method, behind its Liger 3.02 TB/s
    # at T = 4096): x and y are 64 MB there against a 50 MB L2, and which kernel keeps part of x
    # warm moved between runs with the same code (results/h100/probe_norm_l2.md)
    extra = {"warm": T >= 4096}
    return [("rms_norm", f"T={T} H={H}", dt, (2 * T * H + H) * e, p, extra),
            ("fused_add_rms_norm", f"T={T} H={H}", dt, (4 * T * H + H) * e, pf, extra)]


def cases(dtype=torch.bfloat16, shapes=SHAPES):
    lg = liger()
    return [c for T, H in shapes for c in _shape_cases(T, H, dtype, lg)]
