"""Probe: scaled_mm at decode and M = 128 with PDL off, and on with the dependents launched right
after the wait (early) or once each program's work is done (late), on the Llama-3 shapes;
CUDA-graph medians, weights rotating over 4x the L2 as in `lmkernels bench scaled_mm`. Prints
markdown. (Its first run, probe_scaled_mm_pdl_prefetch.md, compared a weight prefetch into L2
before the wait instead: slower wherever it ran, since removed.)

    python benchmarks/probe_scaled_mm_pdl.py
"""
from __future__ import annotations

import torch

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.ops import scaled_mm as mm_ops
from lmkernels.runtime.device import describe_device
from lmkernels.tuning.scaled_mm import operands

RULE = mm_ops.early_launch
SHAPES = [(4096, 4096), (6144, 4096), (28672, 4096), (4096, 14336), (8192, 8192)]


def _time(sets, pdl, early=None):
    mm_ops.early_launch = (lambda items, one_row, dev: early) if early is not None else RULE
    mm_ops._plans.clear()
    return graph_us([lambda a=a, b=b, sa=sa, sb=sb: lmkernels.scaled_mm(a, b, sa, sb, torch.bfloat16, pdl=pdl)
                     for a, b, sa, sb in sets])


def main() -> int:
    print(f"### scaled_mm PDL early / late launch probe on {describe_device()}\n")
    print("| shape | dtype | pdl off µs | pdl, early launch | pdl, late launch | the rule's choice |\n"
          "|---|---|---:|---:|---:|---|")
    for fp8 in (False, True):
        for N, K in SHAPES:
            for M in (1, 16, 128):
                sets = [operands(M, N, K, fp8, "cuda", 9000 + 97 * i + M) for i in range(n_input_sets(N * K))]
                off = _time(sets, False)
                early = _time(sets, True, True)
                late = _time(sets, True, False)
                _time(sets, True)
                rule = "early" if any(p[2][15] for p in mm_ops._plans.values()) else "late"  # consts[15]: EARLY_LAUNCH
                print(f"| M={M} N={N} K={K} | {'fp8' if fp8 else 'int8'} | {off:.2f} | {early:.2f} | {late:.2f} | "
                      f"{rule} |", flush=True)
                del sets
                torch.cuda.empty_cache()
    mm_ops.early_launch = RULE
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
