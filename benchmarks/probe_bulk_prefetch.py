"""Probe: ll_gemm's L2 prefetch before gdc_wait as one bulk request a weight row
(cp.async.bulk.prefetch.L2: the copy engine walks the row) instead of one prefetch.global.L2 a
128-byte line from every thread (shipped), session 39.

Why: probe_ll_gemm_trace.md. With rotated weights a call's K loop runs 0.6-0.8 thousand clocks
longer than with its weights already in L2, although each program asked L2 for its whole share
before its wait, ~1.3 µs (a period) ahead. Either the line prefetches are dropped or throttled (a
hint the memory system may shed under load; 448 line requests a program at 7168 x 256 M = 1), or
the HBM stream does not fit the window (PRELOAD, real loads before the wait, did not finish in it
either: 2.63 against 2.34 µs). A bulk request per row is not shed the same way (it is one
asynchronous copy-engine operation, like a TMA load), so this separates the two.
The variant package is HEAD's with `benchmarks/probe_bulk_prefetch.patch` applied (ll_gemm only;
rms_norm, the KV write and the packing kernels keep their line prefetches).

Prediction (before the run): if prefetches are shed, the rotated M = 1 / 2 rows move toward their
one-set times (7168 x 256 M = 1 2.34 -> 2.1-2.2 µs, 4096 x 256 M = 1 2.19 -> ~1.9, 6144 x 256 M = 1
2.23 -> ~2.0) and the split-K dot rows by -0.05 to -0.2; if the window is the limit, every row
within +-3 %. I expect the second (about 60 / 40): PRELOAD's loads cannot be shed and did not land
in time either.

Outcome (H100, results/h100/probe_bulk_prefetch.md, 5 rounds alternating): neither. The bulk form
moved rows both ways, by more than the +-3 % and the same way in every round: 4096 x 256 M = 1 / 2
0.90 / 0.93x (2.19 -> 1.97 µs), 7168 x 384 M = 16 0.96x, fp8 4096 x 256 M = 1 0.94x, 7168 x 256 M = 1
0.97x; but 7168 x 256 M = 16 1.10x, 4096 x 8 M = 2 1.16x, 2880 x 64 M = 8 1.10x, 5120 x 128 M = 2
1.08x, 6144 x 256 M = 1 1.07x. So the shed-prefetch story is not the whole one, and neither form
is the right default: shipped as a config key (BULK_PREFETCH, a runtime loop over the rows where this
probe unrolled them) that the tuner decides per entry, timing its winner both ways.

    python benchmarks/probe_bulk_prefetch.py LABEL [POINT ...]   (one JSON line {label, point: µs};
                                                                  PYTHONPATH picks the package)
"""
from __future__ import annotations

import sys

from probe_wait_ab import print_points

from lmkernels.bench.small_gemm import ROUTERS

FP8 = [(7168, 256), (7168, 384), (6144, 256), (4096, 256), (5120, 128)]  # K >= 4096 with a table
POINTS = ([(K, N, M, "bf16") for K, N in ROUTERS for M in (1, 2, 8, 16)]
          + [(K, N, M, "fp8") for K, N in FP8 for M in (1, 16)])


def main() -> int:
    return print_points(POINTS, sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
