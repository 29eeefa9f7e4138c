"""Probe: ll_gemm's gdc_launch_dependents() at the program's start, before the L2 prefetch and
gdc_wait, instead of right after the wait (EARLY_LAUNCH), session 38.

Why: probe_ll_gemm_trace.md. A call's K loop runs 0.6-0.8 thousand clocks faster when its weights
are already in L2 (7168 x 256 M = 1: 2.46 -> 2.10 µs), so the prefetch each program issues before
its wait does not finish in time: it starts only when the previous kernel, right after ITS wait,
lets this one launch, ~1.3 µs before this wait returns. Launched at the previous kernel's start,
the prefetch gets about one period more. Sound for the same reason as EARLY_LAUNCH: a dependent
touches memory only after its own gdc_wait, which waits for this whole grid (and so, transitively,
for every kernel before it); nothing before the wait reads data (the prefetch only asks L2 for
lines). A dependent grid launches only once every CTA of this one has triggered, i.e. is resident,
so the grids cannot deadlock on SM slots.

Prediction (before the run): M = 1 rows -0.2 to -0.4 µs toward the one-set times (7168 x 256 2.34
-> ~2.05, 6144 x 256 2.23 -> ~1.95, 7168 x 384 2.89 -> ~2.5); the split-K dot points -0.1 to -0.3;
the small routers (4096 x 8, 2880 x 64: little to prefetch) within +-0.05.

Outcome (H100, results/h100/probe_launch_first.md): wrong. Triggering at the start ran 1.00-1.59x the
shipped time at 41 of the 45 points (7168 x 256 M = 1 2.48 -> 2.99 µs, 6144 x 256 M = 16 3.79 ->
6.02); only 4096 x 8 at M = 2-8 gained (0.88-0.91x, ~0.13 µs) and 2880 x 64 M = 1 (0.95). A
second run triggered the other way, after the K loop (EARLY_LAUNCH off): 1.07-1.55x everywhere.
The shipped trigger, right after the wait, is the best of the three. Not measured, only a guess:
launched at the start, the kernels after the next one are resident too, and their prefetches
compete for DRAM with this call's loads.

    python benchmarks/probe_launch_first.py LABEL [late]   (one JSON line {label, point: µs};
                                                            PYTHONPATH picks the package: HEAD's,
                                                            or a variant's; late: EARLY_LAUNCH off)
"""
from __future__ import annotations

import sys

from probe_wait_ab import print_points

from lmkernels.bench.small_gemm import MS, ROUTERS

FP8 = [(7168, 256), (7168, 384), (6144, 256), (4096, 256), (5120, 128)]  # K >= 4096 with a table


def main() -> int:
    # "late" (second run): the shipped package with EARLY_LAUNCH off, the trigger after the K loop
    config = {"EARLY_LAUNCH": False} if "late" in sys.argv[2:] else None
    points = [(K, N, M, "bf16") for K, N in ROUTERS for M in MS] + [(K, N, M, "fp8") for K, N in FP8 for M in (1, 16)]
    return print_points(points, config=config)


if __name__ == "__main__":
    raise SystemExit(main())
