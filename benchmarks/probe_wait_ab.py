"""Probe: the cluster finish's bounded wait (session 36: a PTX loop on %globaltimer that traps
after 10 s) against the unbounded one it replaced (a Triton loop over one try_wait a trip), on the
shipped table entries that finish split-K in a cluster. One process a variant, the variants
alternating (the runner below), so both run the same kernels but for the wait; PYTHONPATH picks the
package (the old one: `git archive 4dd0d3d lmkernels` unpacked elsewhere).

Prediction (before the run): equal within +-0.05 µs a call (+-2 %): the clock is read only after a
failed try_wait, and a waiting rank spins anyway; session 36's bench had 5120 x 128 M = 16 at 3.61
against 3.19 µs in session 35 (the other cluster entries 0.92-1.03x), which this separates from
machine noise.
Outcome (probe_wait_ab.md): wrong for the PTX loop. Three rounds: 5120 x 128 M = 16 +0.45-0.5 µs
(1.13-1.16x) in every round and with any timer or none (so the loop's form, not the clock), 7168 x
384 M = 16 -0.15-0.25 µs with a timer in it (0.95x; 0.99x without), the rest within 2 %. The bound
moved into the old Triton loop (the clock read after each failed try_wait) ran as the old loop:
0.99-1.02x at the four points; shipped, with %globaltimer (a clock in ns whatever the SM clock).

Session 37 ran it again on variant packages of the finish without the self-copy (two fp8 points
added): probe_cluster_send_order.md.

    python benchmarks/probe_wait_ab.py LABEL [POINT ...]   (one JSON line: {label, point: µs}; POINTs
                                                            pick points by name, e.g. "bf16 5120x128 M=16")
"""
from __future__ import annotations

import json
import sys

import torch

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.tuning.ll_gemm import operands

# (K, N, M, dtype): the table entries in clusters that bench small_gemm shows
POINTS = [(5120, 128, 8, "bf16"), (5120, 128, 16, "bf16"), (7168, 384, 8, "bf16"), (7168, 384, 16, "bf16"),
          (7168, 256, 8, "bf16"), (6144, 256, 8, "bf16"), (6144, 256, 16, "bf16"), (4096, 256, 16, "bf16"),
          (7168, 256, 8, "fp8"), (7168, 384, 16, "fp8"), (5120, 128, 8, "fp8"), (5120, 128, 16, "fp8")]


def router_calls(K: int, N: int, M: int, tag: str, config: dict | None = None, rotated: bool = True) -> list:
    """One ll_gemm call a fresh input set, as bench small_gemm rotates them (past L2), or one set;
    the A/B probes and probe_ll_gemm_trace.py build their points with it."""
    n_sets = n_input_sets(N * K * (1 if tag == "fp8" else 2)) if rotated else 1
    sets = [operands(M, N, K, tag, "cuda", 700 + i) for i in range(n_sets)]
    return [lambda s=s: lmkernels.ll_gemm(s[0], s[1], x_scale=s[2], w_scale=s[3], config=config) for s in sets]


def point_us(K: int, N: int, M: int, tag: str, config: dict | None = None) -> float:
    """The best of two CUDA-graph medians (µs a call) over router_calls' rotated sets."""
    calls = router_calls(K, N, M, tag, config)
    us = round(min(graph_us(calls) for _ in range(2)), 3)
    del calls
    torch.cuda.empty_cache()
    return us


def print_points(points, names=(), config: dict | None = None) -> int:
    """The A/B probes' output: one JSON line {label (sys.argv[1]), package, "tag KxN M=m": point_us}
    over points [(K, N, M, tag)], only those named in names where any are."""
    res = {"label": sys.argv[1], "package": lmkernels.__file__}
    for K, N, M, tag in points:
        name = f"{tag} {K}x{N} M={M}"
        if not names or name in names:
            res[name] = point_us(K, N, M, tag, config)
    print(json.dumps(res), flush=True)
    return 0


def main() -> int:
    return print_points(POINTS, sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
