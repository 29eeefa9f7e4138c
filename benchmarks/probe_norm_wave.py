"""Probe (GPU): rms_norm's L2 prefetch before the PDL wait limited to the first wave of programs, and
the descriptor mode with the weight read through a pointer, against copies of the same bytes.

Session 8 prefetched in every program and lost 1.3-3.3x at T = 4096 (probe_prefetch_everywhere.md),
so the op prefetches only in grids of at most one program an SM. Here the kernel's PREFETCH is a
program count: the programs below it prefetch, the rest do not. A program of the first wave waits
in gdc_wait while the previous kernel drains; one of a later wave starts when the first wave is
done, where a prefetch can only add an instruction stream ahead of its own load. (The session-11
run, results/h100/probe_norm_wave.md, also timed two rows a program, a kernel variant since removed.)

Every variant of a case is timed in each of `--rounds` interleaved rounds (CUDA-graph medians, input
sets rotating over 4x the L2, outputs allocated per call as the op does); the median of the rounds
is printed. The copies (torch.add and a PDL copy kernel of 8192 elements x 8 warps) move the same
bytes: the ceiling at this size.
python benchmarks/probe_norm_wave.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

import lmkernels
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us_rounds, n_input_sets
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime.device import describe_device

sys.path.insert(0, "benchmarks")
from probe_limits import copy_makers  # noqa: E402

BF16 = torch.bfloat16


def rms_variant(x, w, prefetch=0, residual=None):
    """rms_norm (fused_add_rms_norm with a residual, in place) through its launcher with PREFETCH =
    `prefetch` programs (the op's config otherwise)."""
    T, H = x.shape
    block, warps, consts, _, use_pdl = norm_ops._plan(H, x.dtype, 0, residual is not None, True, None)[:5]
    consts = consts[:5] + (prefetch,)
    grid = (T,)

    def call():
        if residual is None:
            y = torch.empty_like(x)
            norm_ops._launch(0, grid, (x, x, w, y, T, H, H, H, H, 1e-6), consts, num_warps=warps, pdl=use_pdl)
        else:
            norm_ops._launch(0, grid, (x, residual, w, x, T, H, H, H, H, 1e-6), consts, num_warps=warps,
                             pdl=use_pdl)
    return call


def cases():
    for T, H in ((256, 4096), (1024, 4096), (2048, 4096), (4096, 4096), (4096, 8192), (32768, 4096)):
        for fused in (False, True):
            yield T, H, fused, ((4 if fused else 2) * T * H + H) * 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    copy = copy_bandwidth_gbs()
    print(f"### rms_norm: first-wave L2 prefetch, descriptor weight by pointer; {describe_device()}\n")
    print(f"copy bandwidth (1 GiB), measured in this run: {copy:.0f} GB/s; µs: CUDA-graph medians a call, the "
          f"median of {args.rounds} interleaved rounds; bytes = (2 or 4) T H 2 + 2 H\n")
    print("| op | T | H | variant | µs | GB/s | of copy |\n|---|---|---|---|---:|---:|---:|")
    for T, H, fused, nbytes in cases():
        k = n_input_sets(nbytes)
        xs = [torch.randn(T, H, device="cuda", dtype=BF16) for _ in range(k)]
        rs = [torch.randn(T, H, device="cuda", dtype=BF16) for _ in range(k)] if fused else [None] * k
        w = torch.randn(H, device="cuda", dtype=BF16)
        if fused:
            variants = {"op pointer": [lambda x=x, r=r: lmkernels.fused_add_rms_norm(x, r, w) for x, r in zip(xs, rs)],
                        "op descriptor": [lambda x=x, r=r: lmkernels.fused_add_rms_norm(x, r, w, access="descriptor")
                                          for x, r in zip(xs, rs)]}
        else:
            variants = {"op pointer": [lambda x=x: lmkernels.rms_norm(x, w) for x in xs],
                        "op descriptor": [lambda x=x: lmkernels.rms_norm(x, w, access="descriptor") for x in xs]}
        variants["PREFETCH 0"] = [rms_variant(x, w, residual=r) for x, r in zip(xs, rs)]
        if not fused:
            variants["PREFETCH 132"] = [rms_variant(x, w, prefetch=132) for x in xs]
        for name, make in copy_makers(nbytes).items():
            if name in ("copy torch.add", "copy triton PDL 8192x8"):
                variants[name] = [make(i) for i in range(k)]
        times = graph_us_rounds(variants, args.rounds)
        op = "fused_add_rms_norm" if fused else "rms_norm"
        for name, ts in times.items():
            us = statistics.median(ts)
            gbs = nbytes / us / 1e3
            print(f"| {op} | {T} | {H} | {name} | {us:.2f} | {gbs:.0f} | {gbs / copy:.3f} |", flush=True)
        del xs, rs, variants
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
