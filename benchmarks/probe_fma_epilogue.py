"""Probe: ll_gemm's FMA tiles with the K reduction after the loop at M = 1 too, and the output
stored a value at a time (kernels/small_gemm._epilogue_values), against HEAD (session 40).

Why: the sm90 PTX of the shipped M = 1 router tile (1 x 4 x 8192, 16 warps) has 5 CTA barriers after
its loads: one at the start of the K reduction (it sat in the loop, so its shared scratch needed a
barrier against the previous trip), the reduction's own two, and two more where Triton converts the
[1, 4] result into its coalesced store layout through shared memory. probe_read_bound.md put the
router call 0.5 µs above a kernel that loads the same weight and x after the wait and keeps every
value in its thread (7168 x 256: 1.79 against 2.35 µs). With the reduction after the loop (the
elementwise accumulation the M > 1 FMA rows already had) and the values stored straight from the
registers that hold them, 2 barriers are left.

Prediction (before the run): -0.05 to -0.15 µs (2-6 %) on every FMA entry (M = 1-2 on the big
routers, M = 1-4 on 4096 x 256 and 5120 x 128, all M on 2880 x 64 and 4096 x 8): 7168 x 256 M = 1
2.36 -> ~2.25, 4096 x 256 M = 1 ~2.05 -> ~1.95, 5120 x 128 M = 1 ~2.0 -> ~1.9; the dot entries
(not in the list) unchanged.

The variant package is HEAD's with probe_fma_epilogue.patch applied (2 CTA barriers left in the
sm90 PTX of the M = 1 tile, against 5).

Outcome (H100, results/h100/probe_fma_epilogue.md, 2 rounds alternating): wrong, and not
understood. 0.98-1.01x at 9 of 44 points, worse at the rest, the same in both rounds: bf16 M = 1 on
the big routers 1.20-1.23x (7168 x 256 2.58 -> 3.13 µs), 4096 x 256 M = 4 1.85x, 7168 x 384 M = 2
1.31x, 4096 x 8 M = 2 / 4 1.12-1.13x; the best, 4096 x 256 M = 1, 0.98x. On the CPU compile the M = 1
tile went from 64 to 97 registers (1 x 2 x 8192 on 8 warps: 75 -> 128), which would stop a next
kernel's program from sharing the SM while this one runs; but 4096 x 256 M = 4 (4 x 2 x 2048, only
the value-at-a-time stores changed, 111 -> 100 registers, 4 -> 2 barriers) lost most, so the stores
themselves cost something the PTX does not show. A version that kept HEAD's M = 1 loop and only
stored a value at a time did not compile to fewer barriers (Triton moved the conversion in front
of the value picks). Not shipped.

    python benchmarks/probe_fma_epilogue.py LABEL [POINT ...]   (one JSON line {label, point: µs};
                                                                 PYTHONPATH picks the package)
"""
from __future__ import annotations

import sys

from probe_wait_ab import print_points


# (K, N, Ms) whose shipped H100 entries are FMA tiles, both dtypes
FMA_ENTRIES = [(7168, 256, (1, 2)), (7168, 384, (1, 2)), (6144, 256, (1, 2)), (4096, 256, (1, 2, 4)),
               (5120, 128, (1, 2, 4)), (2880, 64, (1, 2, 4, 8, 16)), (4096, 8, (1, 2, 4, 8, 16))]
POINTS = [(K, N, M, tag) for tag in ("bf16", "fp8") for K, N, ms in FMA_ENTRIES for M in ms]


def main() -> int:
    return print_points(POINTS, sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
