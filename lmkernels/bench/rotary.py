"""`lmkernels bench rotary`: rotary_embedding and mrope against peers, bf16, 32 q + 8 kv heads of 128.

Bytes counted (the issue's definition): q and k each read once and written once, 2 x T x (Hq + Hkv)
x 128 x 2 bytes. Not counted: the positions (8 bytes a token, 24 for MRoPE) and the cos/sin cache
rows the kernel reads (128 x 2 bytes a token, 3 rows for MRoPE, mostly L2 hits): 1.3 % (3.8 %) of
the counted bytes. The ops are in place: a replayed call rotates its inputs again, which is fine for
timing: the cache is a real one (rope_cache), a rotation, so the values keep their size.
"""
from __future__ import annotations

import torch

import lmkernels
from lmkernels import reference as ref
from lmkernels.runtime.access import available_modes

from .peers import compiled

TOKENS = (1, 16, 256, 4096, 16384)
HQ, HKV, D = 32, 8, 128
MAX_POS = 32768
SECTIONS = [16, 24, 24]  # Qwen2-VL-7B: sums to D / 2


def rope_cache(max_pos: int, rot: int, dtype, device="cuda") -> torch.Tensor:
    """A real cos/sin cache [max_pos, rot] (base 10000): a true rotation, so that the in-place ops
    replayed thousands of times keep their values' size (a random cache would grow them to inf)."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, rot, 2, dtype=torch.float64, device=device) / rot))
    ang = torch.arange(max_pos, dtype=torch.float64, device=device)[:, None] * inv[None, :]
    return torch.cat([ang.cos(), ang.sin()], dim=1).to(dtype)


def _liger():
    """(liger rope module, liger mrope module) when importable, else (None, None)."""
    try:
        import liger_kernel.ops.qwen2vl_mrope as mr
        import liger_kernel.ops.rope as rp
        return rp, mr
    except Exception:
        return None, None


def _cases_for(T: int, dtype, lg_rope, lg_mrope):
    e = torch.finfo(dtype).bits // 8
    dt = str(dtype).split(".")[-1]
    nbytes = 2 * T * (HQ + HKV) * D * e  # q and k, each read once and written once

    def inputs(i, mrope=False):
        g = torch.Generator(device="cuda").manual_seed(2000 + i)
        qkv = torch.randn(T, (HQ + 2 * HKV) * D, device="cuda", dtype=dtype, generator=g)
        q, k = qkv[:, :HQ * D], qkv[:, HQ * D:(HQ + HKV) * D]  # slices of one qkv tensor, as engines pass them
        cache = rope_cache(MAX_POS, D, dtype)
        pos = torch.randint(0, MAX_POS, (3, T) if mrope else (T,), device="cuda", generator=g)
        return pos, q, k, cache

    def rope(fn):
        def make(i):
            pos, q, k, cache = inputs(i)
            return lambda: fn(pos, q, k, cache)
        return make

    def mrope(fn):
        def make(i):
            pos, q, k, cache = inputs(i, mrope=True)
            return lambda: fn(pos, q, k, cache)
        return make

    p = {f"lmkernels-{m}": rope(lambda pos, q, k, c, m=m: lmkernels.rotary_embedding(pos, q, k, D, c, True, access=m))
         for m in available_modes()}
    # the default launch is PDL on sm90+; "pdl off" isolates what PDL buys (the peers have none)
    p["lmkernels-pointer, pdl off"] = rope(lambda pos, q, k, c: lmkernels.rotary_embedding(pos, q, k, D, c, True,
                                                                                           pdl=False))
    p["torch-eager"] = rope(lambda pos, q, k, c: ref.rotary_embedding(pos, q, k, D, c, True))
    p["torch-compile"] = rope(lambda pos, q, k, c: compiled(ref.rotary_embedding)(pos, q, k, D, c, True))
    pm = {f"lmkernels-{m}": mrope(lambda pos, q, k, c, m=m: lmkernels.mrope(pos, q, k, c, SECTIONS, D, access=m))
          for m in available_modes()}
    pm["lmkernels-pointer, pdl off"] = mrope(lambda pos, q, k, c: lmkernels.mrope(pos, q, k, c, SECTIONS, D, pdl=False))
    pm["torch-eager"] = mrope(lambda pos, q, k, c: ref.mrope(pos, q, k, c, SECTIONS, D))
    pm["torch-compile"] = mrope(lambda pos, q, k, c: compiled(ref.mrope)(pos, q, k, c, SECTIONS, D))
    if lg_rope is not None:
        # Liger's layout: q [B, H, T, D] that is physically [B, T, H, D] (rotated in place there), and
        # per-token cos, sin [1, T, D] (the cos/sin rows already gathered by position; Liger reads
        # their first halves: 2 x T x D/2 x 2 bytes, the same as our cache-row reads). Its q and k
        # bytes are ours; it needs q and k as two separate contiguous tensors, not qkv slices. On that
        # layout ours ran ahead of it (mrope T = 16384: 120.63 µs against 120.88); on the qkv slices
        # below, 121.82 (results/h100/probe_mrope_layout.md)
        def liger_inputs(i, n_rows):
            g = torch.Generator(device="cuda").manual_seed(3000 + i)
            q = torch.randn(1, T, HQ, D, device="cuda", dtype=dtype, generator=g).transpose(1, 2)
            k = torch.randn(1, T, HKV, D, device="cuda", dtype=dtype, generator=g).transpose(1, 2)
            ang = torch.rand(n_rows, 1, T, D, device="cuda", generator=g) * 6.2832
            return q, k, ang.cos().to(dtype), ang.sin().to(dtype)

        def liger_rope(i):
            q, k, cos, sin = liger_inputs(i, 1)
            return lambda: lg_rope.LigerRopeFunction.apply(q, k, cos[0], sin[0])

        def liger_mrope(i):  # cos, sin [3, 1, T, D]: one row for each of t, h, w
            q, k, cos, sin = liger_inputs(i, 3)
            return lambda: lg_mrope.LigerQwen2VLMRopeFunction.apply(q, k, cos, sin, SECTIONS)
        p["liger"] = liger_rope
        pm["liger"] = liger_mrope
    shape = f"T={T} Hq={HQ} Hkv={HKV} D={D}"
    return [("rotary_embedding", shape, dt, nbytes, p), ("mrope", shape + " sections=16,24,24", dt, nbytes, pm)]


def cases(dtype=torch.bfloat16, tokens=TOKENS):
    lg_rope, lg_mrope = _liger()
    return [c for T in tokens for c in _cases_for(T, dtype, lg_rope, lg_mrope)]
