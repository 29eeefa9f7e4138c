"""Benchmark cases for merge_attn_states and correct_attn_out (bf16 outputs, fp32 LSEs, 32 heads of 128),
against the torch reference eager and torch.compile of it. `cases()` is what `lmkernels bench
context_parallel` runs beside the pack/unpack cases (wired by the lead in cli.BENCH_FAMILIES).

Bytes counted, each tensor read once and written once:
  merge_attn_states (output_lse None): prefix and suffix outputs read, output written, both LSEs read:
      3 T H D e + 2 T H 4
  correct_attn_out (N ranks): out read and written, the N ranks' LSEs read, L written:
      2 B H D e + N B H 4 + B H 4
The issue's targets (H100, bf16): correct_attn_out B = 64, N = 2 within 2.5 µs in a CUDA graph and
>= 2.5 TB/s at B = 4096; merge_attn_states >= 2.7 TB/s at T = 4096.

correct_attn_out is in place: a replayed graph multiplies the same out again (by a factor <= 1, so
values shrink towards 0, which costs a GPU nothing more), as an in-place op in a graph must.
"""
from __future__ import annotations

import torch

import lmkernels
from lmkernels import reference as ref
from lmkernels.runtime.access import available_modes

from .peers import compiled

H, D = 32, 128
MERGE_TOKENS = (1, 16, 256, 4096, 16384)
CORRECT_ROWS = (1, 64, 1024, 4096)
CORRECT_RANKS = (2, 4)


def _lses(shape, g):
    return torch.randn(shape, device="cuda", generator=g) * 4 + 2  # LSEs spread like real ones


def _merge_cases(T: int, dtype):
    e = torch.finfo(dtype).bits // 8
    nbytes = 3 * T * H * D * e + 2 * T * H * 4  # see the module docstring

    def provider(fn):
        def make(i):
            g = torch.Generator(device="cuda").manual_seed(4000 + i)
            p = torch.randn(T, H, D, device="cuda", dtype=dtype, generator=g)
            s = torch.randn(T, H, D, device="cuda", dtype=dtype, generator=g)
            pl, sl = _lses((H, T), g), _lses((H, T), g)
            out = torch.empty(T, H, D, device="cuda", dtype=dtype)
            return lambda: fn(out, p, pl, s, sl)
        return make

    ps = {f"lmkernels-{m}": provider(lambda o, p, pl, s, sl, m=m: lmkernels.merge_attn_states(o, p, pl, s, sl, access=m))
          for m in available_modes()}
    ps["torch-eager"] = provider(ref.merge_attn_states)
    ps["torch-compile"] = provider(lambda o, p, pl, s, sl: compiled(ref.merge_attn_states)(o, p, pl, s, sl))
    return ("merge_attn_states", f"T={T} H={H} D={D}", str(dtype).split(".")[-1], nbytes, ps)


def _correct_cases(B: int, N: int, dtype):
    e = torch.finfo(dtype).bits // 8
    nbytes = 2 * B * H * D * e + N * B * H * 4 + B * H * 4  # see the module docstring
    rank = N - 1

    def provider(fn):
        def make(i):
            g = torch.Generator(device="cuda").manual_seed(5000 + i)
            out = torch.randn(B, H, D, device="cuda", dtype=dtype, generator=g)
            lses = _lses((N, B, H), g)
            return lambda: fn(out, lses, rank)
        return make

    ps = {f"lmkernels-{m}": provider(lambda o, l, r, m=m: lmkernels.correct_attn_out(o, l, r, access=m))
          for m in available_modes()}
    ps["torch-eager"] = provider(ref.correct_attn_out)
    ps["torch-compile"] = provider(lambda o, l, r: compiled(ref.correct_attn_out)(o, l, r))
    return ("correct_attn_out", f"B={B} H={H} D={D} N={N}", str(dtype).split(".")[-1], nbytes, ps)


def cases(dtype=torch.bfloat16, tokens=MERGE_TOKENS, rows=CORRECT_ROWS, ranks=CORRECT_RANKS):
    return ([_merge_cases(T, dtype) for T in tokens]
            + [_correct_cases(B, N, dtype) for N in ranks for B in rows])
