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


def _bytes(op: str, T: int, H: int, e: int) -> int:
    # rms_norm: read x [T, H] and w [H], write y [T, H]
    # fused_add_rms_norm: read x, residual and w, write x and residual
    return (2 * T * H + H) * e if op == "rms_norm" else (4 * T * H + H) * e


def cases(dtype=torch.bfloat16, shapes=SHAPES):
    lg = liger()
    out = []
    for T, H in shapes:
        e = torch.finfo(dtype).bits // 8

        def inputs(i, T=T, H=H):
            g = torch.Generator(device="cuda").manual_seed(1000 + i)
            x = torch.randn(T, H, device="cuda", dtype=dtype, generator=g)
            r = torch.randn(T, H, device="cuda", dtype=dtype, generator=g)
            w = torch.randn(H, device="cuda", dtype=dtype, generator=g)
            return x, r, w

        def ours(mode):
            def make(i):
                x, _, w = inputs(i)
                return lambda: lmkernels.rms_norm(x, w, EPS, access=mode)
            return make

        def ours_fused(mode):
            def make(i):
                x, r, w = inputs(i)
                return lambda: lmkernels.fused_add_rms_norm(x, r, w, EPS, access=mode)
            return make

        def eager(i):
            x, _, w = inputs(i)
            return lambda: ref.rms_norm(x, w, EPS)

        def comp(i):
            x, _, w = inputs(i)
            f = compiled(ref.rms_norm)
            return lambda: f(x, w, EPS)

        def eager_fused(i):
            x, r, w = inputs(i)
            return lambda: ref.fused_add_rms_norm(x, r, w, EPS)

        def comp_fused(i):
            x, r, w = inputs(i)
            f = compiled(ref.fused_add_rms_norm)
            return lambda: f(x, r, w, EPS)

        p = {f"lmkernels-{m}": ours(m) for m in available_modes()}
        p.update({"torch-eager": eager, "torch-compile": comp})
        pf = {f"lmkernels-{m}": ours_fused(m) for m in available_modes()}
        pf.update({"torch-eager": eager_fused, "torch-compile": comp_fused})
        if lg is not None:
            def liger_norm(i):
                x, _, w = inputs(i)
                return lambda: lg.rms_norm.LigerRMSNormFunction.apply(x, w, EPS, 0.0, "llama", False)

            def liger_fused(i):
                x, r, w = inputs(i)
                return lambda: lg.fused_add_rms_norm.LigerFusedAddRMSNormFunction.apply(x, r, w, EPS, 0.0, "llama", False)
            p["liger"] = liger_norm
            pf["liger (out of place)"] = liger_fused
        out.append(("rms_norm", f"T={T} H={H}", str(dtype).split(".")[-1], _bytes("rms_norm", T, H, e), p))
        out.append(("fused_add_rms_norm", f"T={T} H={H}", str(dtype).split(".")[-1], _bytes("fused", T, H, e), pf))
    return out
