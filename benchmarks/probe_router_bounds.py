"""Probe: load-only kernels in the shape of ll_gemm without split-K, at M = 8 / 16 on the router
shapes (H100, CUDA-graph medians, PDL chain, weights rotating over 4x the L2 as in `lmkernels bench
small_gemm`).

Without split-K a program owns R weight rows over all of K and reads all M rows of x beside them:
x [16, 7168] bf16 is 229 KB, more than an SM's shared memory, so every program streams it from L2,
and the N / R programs together read N / R times x. With split-K the programs share x but pay the
cross-program finish, ~1.1-1.3 µs over the chain floor (probe_split_poll.md). These kernels only
load, per program, what such a GEMM must load (its R weight rows and all M rows of x, in BLOCK_K
steps, the weight's share prefetched into L2 before the PDL wait as ll_gemm does) and add it up.

Prediction (session 32, written before the run): meant as a lower bound for no-split GEMMs,
7168 x 256 at M = 16 at least 2.5 µs for every R, M = 8 at least 2.0.
Outcome: 4.4-8.7 µs (best per shape: 7168 x 256 6.74 / 8.23 at M = 8 / 16), but NOT a bound: the
time grew with the number of K steps, not with R or the grid (M = 8, 7168 x 256: 16 / 10 / 7 µs at
BLOCK_K 256 / 512 / 1024, ~0.55 µs a step), because Triton 3.6 does not pipeline loads that feed no
tl.dot (no cp.async in the PTX whatever num_stages says), and it leaves out M tiling, which the
shipped FMA rows use. So it measures these kernels, not the best no-split GEMM; the shipped split-K
tiles (4.2-5.7 µs) and M-tiled rows beat them all. (Loading the next step ahead in ll_gemm's FMA
tiles, the obvious cure, lost everywhere: probe_load_ahead.md.)

    python benchmarks/probe_router_bounds.py
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.kernels.access import prefetch_span_l2
from lmkernels.runtime.device import describe_device

SHAPES = ((7168, 256), (7168, 384), (6144, 256), (4096, 256), (5120, 128))  # (K, N)
MS = (8, 16)


@triton.jit
def _stream_kernel(x_ptr, w_ptr, out_ptr, M, N, K, BLOCK_M: tl.constexpr, R: tl.constexpr, BLOCK_K: tl.constexpr):
    """Program p loads weight rows [p R, p R + R) and x's M rows over all of K, BLOCK_K columns a
    step, and stores one sum (so the loads stay). The weight share is prefetched into L2 before
    gdc_wait, x read after it, as in ll_gemm."""
    pid = tl.program_id(0)
    rows = pid * R + tl.arange(0, R)
    ms = tl.arange(0, BLOCK_M)
    ks = tl.arange(0, BLOCK_K)
    w_rows = w_ptr + rows.to(tl.int64)[:, None] * K
    x_rows = x_ptr + ms[:, None] * K
    prefetch_span_l2(w_rows, rows < N, 0, K, BLOCK_K)
    gdc_wait()
    gdc_launch_dependents()
    acc_w = tl.zeros((R, BLOCK_K), dtype=tl.float32)
    acc_x = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for k0 in tl.range(0, K, BLOCK_K, num_stages=2):
        k = k0 + ks
        acc_w += tl.load(w_rows + k[None, :], mask=(rows < N)[:, None] & (k < K)[None, :], other=0.0).to(tl.float32)
        acc_x += tl.load(x_rows + k[None, :], mask=(ms < M)[:, None] & (k < K)[None, :], other=0.0).to(tl.float32)
    tl.store(out_ptr + pid, tl.sum(tl.sum(acc_w, axis=1), axis=0) + tl.sum(tl.sum(acc_x, axis=1), axis=0))


def main() -> int:
    print(f"### ll_gemm without split-K: load-only kernels (not a bound: the docstring) on {describe_device()}\n")
    print("| shape | M | R rows a program | programs | BLOCK_K | warps | µs |\n|---|---:|---:|---:|---:|---:|---:|")
    best = {}
    for K, N in SHAPES:
        sets = n_input_sets(N * K * 2)
        for M in MS:
            bufs = []
            for i in range(sets):
                g = torch.Generator(device="cuda").manual_seed(500 + i)
                bufs.append((torch.randn(M, K, device="cuda", generator=g).bfloat16(),
                             torch.randn(N, K, device="cuda", generator=g).bfloat16()))
            for R in (1, 2, 4, 8, 16):
                programs = triton.cdiv(N, R)
                outs = [torch.empty(programs, device="cuda") for _ in bufs]
                for bk in (256, 512, 1024):
                    for warps in (4, 8, 16):
                        if (M + R) * bk // (32 * warps) > 128:  # fp32 accumulators a thread
                            continue
                        us = graph_us([lambda x=x, w=w, o=o: _stream_kernel[(programs,)](
                            x, w, o, M, N, K, BLOCK_M=M, R=R, BLOCK_K=bk, num_warps=warps, launch_pdl=True)
                            for (x, w), o in zip(bufs, outs)])
                        print(f"| {N} x {K} | {M} | {R} | {programs} | {bk} | {warps} | {us:.2f} |", flush=True)
                        key = (N, K, M)
                        if key not in best or us < best[key][0]:
                            best[key] = (us, f"R {R}, {programs} programs, BLOCK_K {bk}, {warps} warps")
    print("\n| shape | M | best load-only µs | its kernel |\n|---|---:|---:|---|")
    for (N, K, M), (us, what) in best.items():
        print(f"| {N} x {K} | {M} | {us:.2f} | {what} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
