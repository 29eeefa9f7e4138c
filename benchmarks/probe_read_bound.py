"""Probe: how much of an M = 1 router call is reading the weight after the PDL wait, and how much
is ll_gemm's own work (x, the FMAs, the cross-warp row sum). Session 38's stall sampling put about a
quarter of the M = 1 samples on the row sum (SHFL, BAR.SYNC over 16 warps); this separates it.

Kernels shaped like ll_gemm's M = 1 path (one program a ROWS-row block of the weight, all of K in
one BLOCK_K tile, the program's share prefetched into L2 before gdc_wait, dependents launched right
after it), chained as `bench small_gemm` chains calls (CUDA graph, PDL, weights rotated past 4x L2):
  floor     wait, launch dependents, store one value a row: the chain's period with no weight read
  prefetch  + the L2 prefetch of the program's weight share before the wait, nothing read after it
  read      + the weight tile loaded after the wait, and nothing else: each value goes to an asm
            the compiler must keep, nothing is stored, no value crosses a thread
  read+x    + x's row loaded and multiplied in, still inside each thread
  read+x+Σ  + the row sum across the program's warps and one store a row: ll_gemm's M = 1 work
  ll_gemm   lmkernels.ll_gemm with its shipped (table) config
and ll_gemm with every call on one x (the weights rotating: x stays in L2, as the output of the
kernel before it in a model would), and `read` and `ll_gemm` on one input set replayed (all in L2).

Prediction (written before the run): 7168 x 256 (64 programs of 4 rows, 16 warps): floor ~1.25 µs,
read ~2.0, read+x ~2.05, read+x+Σ ~2.3, ll_gemm 2.36-2.41; so the row sum ~0.25 µs, the read
~0.75 over the floor (3.67 MB from L2 into 64 SMs at ~90 B/clk an SM). 4096 x 256 / 5120 x 128:
read ~1.8, row sum ~0.2. If the row sum is that large, a cheaper cross-warp sum would take 4096 x 256
and 5120 x 128 under 2.0 µs; if read+x is already at ll_gemm's time, the read itself is the bound
and the 2 µs bar at these shapes needs the weight read faster than this layout reads it.

Outcome (H100, results/h100/probe_read_bound.md): half right. The floor is 0.82-0.88 µs (not 1.25:
these programs read one value of x). The weight's HBM stream sets the rest: the prefetch alone
runs 1.50-1.91 µs a call at 7168 x 256 (2 / 4 rows a program), 1.50 at 4096 x 256, 1.25 at 5120 x
128, 2.42 at 7168 x 384, and loading the weight (and x, and multiplying) after the wait adds
nothing to it (read 1.77-1.89, read+x 1.79-1.88 at 7168 x 256; 4096 x 256's read+x ran at the floor,
0.85, an outlier not chased). ll_gemm runs 2.35 / 2.06 / 1.98 /
2.91: 0.5-0.75 µs above a kernel that does its loads and products but keeps every value in its
thread; with everything in L2 (one set) 0.8-1.4 µs above (read 0.90-1.02, ll_gemm 1.72-2.40).
The probe's own row sum is not ll_gemm's: read+x+Σ ran 2.2-4.4 µs, slower than ll_gemm, and was not
taken apart further, so the sum's share is bounded (<= 0.5-0.75 µs) but not measured. One x for
every call (weights still rotating) changed M = 1 by 0-3 % and M = 4-16 by 2-6 %: x's own HBM read
after the wait is a small part. Two side findings: a sink built from a store compared against a
constant no widened bf16 equals was folded away with the loads it fed (the first run's `read`);
and 64 never-true masked scalar stores a thread cost 1.4-2.1 µs (the first run's read+x). What
came of the lead: probe_fma_epilogue.py.

    python benchmarks/probe_read_bound.py   (markdown to stdout)
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.kernels.access import prefetch_span_l2
from lmkernels.runtime.device import describe_device
from lmkernels.tuning.ll_gemm import operands

VARIANTS = {"floor": (False, False, False, False), "prefetch": (True, False, False, False),
            "read": (True, True, False, False), "read+x": (True, True, True, False),
            "read+x+Σ": (True, True, True, True)}  # (PREFETCH, READ_W, USE_X, ROW_SUM)
# (K, N, rows a program, warps): the shipped M = 1 configs, and 7168 x 256 in 2-row programs too
SHAPES = [(7168, 256, 4, 16), (7168, 256, 2, 8), (4096, 256, 2, 4), (5120, 128, 2, 8), (7168, 384, 4, 16)]


@triton.jit
def _read_kernel(x_ptr, w_ptr, out_ptr, N, K, stride_wn, ROWS: tl.constexpr, BLOCK_K: tl.constexpr,
                 PREFETCH: tl.constexpr, READ_W: tl.constexpr, USE_X: tl.constexpr, ROW_SUM: tl.constexpr):
    pid = tl.program_id(0)
    offs_n = pid * ROWS + tl.arange(0, ROWS)
    ks = tl.arange(0, BLOCK_K)
    mask_n = offs_n < N
    w_rows = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn
    if PREFETCH:
        prefetch_span_l2(w_rows, mask_n, 0, K, BLOCK_K)
    gdc_wait()
    gdc_launch_dependents()
    if READ_W:
        w = tl.load(w_rows + ks[None, :], mask=mask_n[:, None] & (ks < K)[None, :], other=0.0).to(tl.float32)
        if USE_X:
            w = w * tl.load(x_ptr + ks, mask=ks < K, other=0.0).to(tl.float32)[None, :]
        if ROW_SUM:
            tl.store(out_ptr + offs_n, tl.sum(w, axis=1), mask=mask_n)
        else:  # every value consumed where it lies by an asm the compiler must keep (not pure): the
            # loads stay, nothing is stored and no value crosses a thread (sinks built from stores
            # either got folded away or went through shared memory and barriers)
            tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [w], dtype=tl.float32, is_pure=False, pack=1)
    else:
        tl.store(out_ptr + offs_n, tl.load(x_ptr + offs_n).to(tl.float32), mask=mask_n)


def _calls(K, N, rows, warps, variant, rotated):
    prefetch, read_w, use_x, row_sum = VARIANTS[variant]
    block_k = triton.next_power_of_2(K)
    sets = []
    for i in range(n_input_sets(N * K * 2) if rotated else 1):
        x, w, _, _ = operands(1, N, K, "bf16", "cuda", 900 + i)
        sets.append((x, w, torch.empty(N, device="cuda")))
    grid = (triton.cdiv(N, rows),)
    return [lambda s=s: _read_kernel[grid](s[0], s[1], s[2], N, K, s[1].stride(0), ROWS=rows, BLOCK_K=block_k,
                                           PREFETCH=prefetch, READ_W=read_w, USE_X=use_x, ROW_SUM=row_sum, num_warps=warps,
                                           launch_pdl=True) for s in sets]


def _ll_gemm_calls(K, N, rotated, one_x=False, M=1, tag="bf16"):
    """ll_gemm on the probe's input sets; one_x: every call on the first set's x (it stays in L2, as
    an x that the previous kernel of a model has just written), the weights still rotating."""
    n_sets = n_input_sets(N * K * (1 if tag == "fp8" else 2)) if rotated else 1
    sets = [operands(M, N, K, tag, "cuda", 900 + i) for i in range(n_sets)]
    return [lambda s=s: lmkernels.ll_gemm(sets[0][0] if one_x else s[0], s[1], x_scale=s[2], w_scale=s[3])
            for s in sets]


def _us(calls) -> float:
    us = min(graph_us(calls) for _ in range(3))
    del calls
    torch.cuda.empty_cache()
    return us


def main() -> int:
    print(f"### M = 1 router calls taken apart ({describe_device()}; CUDA-graph medians, PDL chains, best of 3)\n")
    cols = list(VARIANTS) + ["ll_gemm", "ll_gemm, one x", "read, one set", "ll_gemm, one set"]
    print("| K x N, rows a program, warps | " + " | ".join(f"{c} µs" for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for K, N, rows, warps in SHAPES:
        got = [_us(_calls(K, N, rows, warps, v, True)) for v in VARIANTS]
        got.append(_us(_ll_gemm_calls(K, N, True)))
        got.append(_us(_ll_gemm_calls(K, N, True, one_x=True)))
        got.append(_us(_calls(K, N, rows, warps, "read", False)))
        got.append(_us(_ll_gemm_calls(K, N, False)))
        print(f"| {K} x {N}, {rows}, {warps} | " + " | ".join(f"{u:.2f}" for u in got) + " |", flush=True)
    print("\n### ll_gemm with x rotating with the weights (bench small_gemm) and with one x (weights rotating)\n")
    print("| point | rotated x µs | one x µs | one x / rotated |\n|---|---:|---:|---:|")
    for tag in ("bf16", "fp8"):
        for K, N in ((7168, 256), (7168, 384), (6144, 256), (4096, 256), (5120, 128)):
            for M in (1, 4, 8, 16):
                a = _us(_ll_gemm_calls(K, N, True, M=M, tag=tag))
                b = _us(_ll_gemm_calls(K, N, True, one_x=True, M=M, tag=tag))
                print(f"| {tag} {K} x {N} M={M} | {a:.2f} | {b:.2f} | {b / a:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
