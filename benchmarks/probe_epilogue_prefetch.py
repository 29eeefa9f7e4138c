"""A/B probe: where ll_gemm and scaled_mm read their epilogue's scales and bias. (GPU)

Session 14 (results/h100/probe_epilogue_prefetch.md). The old epilogues loaded x_scale, w_scale
and the bias after the K loop. Prediction: the scales are fresh 4-byte tensors per input set that
the rotation pushes out of L2, so that load paid one DRAM round trip (~0.5-0.8 µs) after the last
MMA; loading them right after gdc_wait, and asking L2 for them before it, would take fp8
ll_gemm rows -0.3 to -0.6 µs, leave bf16 rows (no scale, no bias) alone, and take scaled_mm
decode rows -0.3 to -0.5 µs with an L2 prefetch at the tile's start.

Each run times this tree's kernels and prints one markdown column; run it once per variant of the
kernels (an old tree on PYTHONPATH, or the variants the md records), alternating, twice each.
python benchmarks/probe_epilogue_prefetch.py LABEL [--fp8-rows | --mm-rows | --big-rows]
"""
import sys

import torch

from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.bench.scaled_mm import _case
from lmkernels.bench.small_gemm import _router_case

ROUTERS = ((7168, 256), (4096, 256), (5120, 128), (4096, 8))
ROUTERS_FP8 = ((7168, 256), (7168, 384), (6144, 256), (4096, 256), (5120, 128), (4096, 8))
MM = ((4096, 4096), (6144, 4096))


MM_ROWS = ((4096, 4096), (6144, 4096), (4096, 14336), (28672, 4096))


BIG_ROWS = ((28672, 4096, 1024, "fp8"), (6144, 4096, 4096, "fp8"), (4096, 4096, 4096, "int8"),
            (4096, 4096, 4096, "fp8"), (8192, 8192, 1024, "fp8"), (4096, 14336, 1024, "fp8"))


def cases(fp8_rows: bool, mm_rows: bool, big_rows: bool = False):
    """fp8_rows: only the fp8 routers at M = 1, 2, 4 and 8 (the second round: where the FMA kernel's
    scale loads go); mm_rows: only scaled_mm's decode and M = 128 rows (the third round: its
    epilogue's operands before the K loop); else the first round's rows."""
    if big_rows:  # the large-tile (persistent) kernels, whose epilogue placement must not move
        for N, K, M, tag in BIG_ROWS:
            yield _case(M, N, K, tag)
        return
    if mm_rows:
        for N, K in MM_ROWS:
            for M in (1, 16, 128):
                for tag in ("int8", "fp8"):
                    if M < 128 or K == 4096 and N < 28672:
                        yield _case(M, N, K, tag)
        return
    if fp8_rows:
        for K, N in ROUTERS_FP8:
            for M in (1, 2, 4, 8):
                yield _router_case(K, N, M, True)
        return
    for K, N in ROUTERS:
        for M in (1, 4, 16):
            for fp8 in (True, False):
                yield _router_case(K, N, M, fp8)
    for N, K in MM:
        for M in (1, 16, 128):
            for tag in ("int8", "fp8"):
                yield _case(M, N, K, tag)


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else "run"
    fp8_rows = "--fp8-rows" in sys.argv
    mm_rows = "--mm-rows" in sys.argv
    big_rows = "--big-rows" in sys.argv
    print(f"## {label}: {torch.cuda.get_device_name()}\n")
    print("| op | shape | dtype | µs (rotated, graph median) |")
    print("|---|---|---|---:|", flush=True)
    for op, shape, dt, nbytes, providers, _ in cases(fp8_rows, mm_rows, big_rows):
        n = n_input_sets(nbytes)
        calls = [providers["lmkernels"](i) for i in range(n)]
        us = graph_us(calls, reps=50 if not big_rows else 20, min_calls=max(n, 32 if not big_rows else 8))
        print(f"| {op} | {shape} | {dt} | {us:.2f} |", flush=True)
        del calls
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
