"""Probe: what a one-launch split-K finish costs in a PDL chain, the counter handshake against a
finish that polls flagged partials (H100, CUDA-graph medians, 32 calls a graph).

Prediction (session 32, written before the run): the counter handshake (partial store, CTA
barrier, acq_rel atomic, the last program's partial load) costs ~1.0 µs over a kernel that only
waits, reads and writes (probe_ll_gemm.md: 1.03 -> 2.05 µs at 128 programs): three dependent L2
round trips, the atomic's release waiting for the stores, the atomic, the load. Polling costs one:
every split but the last stores its partial tile with no fence (a 32-bit value is its own flag: the
workspace holds -1, an fp32 NaN no split stores, until the value lands), and the last split, fixed
by its program id, loads the other partials until none reads -1, then writes -1 back. Predicted:
+0.3-0.4 µs over the floor instead of +1.0.
Outcome (probe_split_poll.md): wrong. Polling cost +1.0-1.4 µs over the floor (0.86-1.02 µs), the
counter +1.2-1.6: 0.1-0.2 µs saved at 4-16 splits, 0.46 at 2 (1.98 -> 1.52). Any partial that one
SM stores and another loads costs about a microsecond in the chain, whatever the protocol; not
built into ll_gemm.

    python benchmarks/probe_split_poll.py
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from lmkernels.bench.harness import graph_us
from lmkernels.kernels.split_k import last_to_arrive
from lmkernels.runtime.device import describe_device

TILE = tl.constexpr(256)  # a 16 x 16 fp32 partial tile a program


@triton.jit
def _floor_kernel(x_ptr, out_ptr, part_ptr, count_ptr, SPLITS: tl.constexpr, MODE: tl.constexpr):
    """Programs are split-major (pid = split * tiles + tile, as in ll_gemm). MODE 0: wait, read a
    tile, write it. 1: the counter handshake (kernels/split_k.last_to_arrive). 2: polled partials."""
    gdc_wait()
    gdc_launch_dependents()
    pid = tl.program_id(0)
    tiles = tl.num_programs(0) // SPLITS
    split = pid // tiles
    tile = pid - split * tiles
    offs = tl.arange(0, TILE)
    v = tl.load(x_ptr + pid * TILE + offs)
    if MODE == 0:
        tl.store(out_ptr + pid * TILE + offs, v + 1.0)
    elif MODE == 1:  # ll_gemm's and scaled_mm's arrival (the run in probe_split_poll.md inlined its two lines)
        tl.store(part_ptr + (tile * SPLITS + split) * TILE + offs, v)
        if last_to_arrive(count_ptr + tile, SPLITS):
            s = tl.arange(0, triton.next_power_of_2(SPLITS))
            p = tl.load(part_ptr + (tile * SPLITS + s)[:, None] * TILE + offs[None, :], mask=(s < SPLITS)[:, None],
                        other=0.0, cache_modifier=".cg")
            tl.store(out_ptr + tile * TILE + offs, tl.sum(p, axis=0))
            tl.store(count_ptr + tile, 0)
    else:
        bits_ptr = part_ptr.to(tl.pointer_type(tl.int32))
        if split < SPLITS - 1:
            b = v.to(tl.int32, bitcast=True)
            tl.store(bits_ptr + (tile * (SPLITS - 1) + split) * TILE + offs, tl.where(b == -1, 0x7FFFFFFF, b))
        else:
            s = tl.arange(0, triton.next_power_of_2(SPLITS - 1))
            ptrs = bits_ptr + (tile * (SPLITS - 1) + s)[:, None] * TILE + offs[None, :]
            m = (s < SPLITS - 1)[:, None] & (offs < TILE)[None, :]
            p = tl.load(ptrs, mask=m, other=0, volatile=True)
            while tl.max(tl.where(m & (p == -1), 1, 0)) > 0:
                p = tl.load(ptrs, mask=m, other=0, volatile=True)
            tl.store(ptrs, tl.full(p.shape, -1, tl.int32), mask=m)
            tl.store(out_ptr + tile * TILE + offs, tl.sum(p.to(tl.float32, bitcast=True), axis=0) + v)


def main() -> int:
    print(f"### one-launch split-K finish, floor probe on {describe_device()}\n")
    print("| programs | splits | wait, read, write | + counter handshake | + polled partials |\n|---:|---:|---:|---:|---:|")
    for tiles, splits in ((16, 7), (16, 8), (8, 16), (32, 4), (16, 2)):
        programs = tiles * splits
        row = []
        for mode in (0, 1, 2):
            bufs = [(torch.randn(programs * TILE, device="cuda"), torch.empty(programs * TILE, device="cuda"),
                     torch.full((programs * TILE,), -1, dtype=torch.int32, device="cuda").view(torch.float32),
                     torch.zeros(tiles, dtype=torch.int32, device="cuda")) for _ in range(8)]
            row.append(graph_us([lambda b=b: _floor_kernel[(programs,)](*b, SPLITS=splits, MODE=mode, launch_pdl=True)
                                 for b in bufs]))
            if mode == 2:  # the polled sums are right and the workspace is back to -1
                x, out, part, _ = bufs[0]
                _floor_kernel[(programs,)](*bufs[0], SPLITS=splits, MODE=mode, launch_pdl=True)
                want = x.view(splits, tiles, TILE).sum(0)
                got = out[:tiles * TILE].view(tiles, TILE)
                assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
                assert bool((part.view(torch.int32) == -1).all())
        print(f"| {programs} | {splits} | " + " | ".join(f"{u:.2f}" for u in row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
