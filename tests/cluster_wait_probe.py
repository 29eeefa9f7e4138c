"""Run by test_small_gemm.test_cluster_wait_traps_instead_of_hanging in a subprocess (a trap ends
the CUDA context, so it cannot run inside pytest's process). One cluster of 2 CTAs on GPU 0:

  python tests/cluster_wait_probe.py send     each rank sends its slices of a 2 x 64 fp32 tile to the
                                              rank that finishes them; prints the 128 sums, exits 0
  python tests/cluster_wait_probe.py nosend   no rank sends: each mbarrier expects 256 bytes (its peer's slice)
                                              that never land, so the waits must trap after LIMIT_NS
                                              (20 ms) instead of spinning forever

The tile spans the 4 warps so that its sums go through shared memory: the finish addresses its
region from Triton's dynamic shared array, which ptxas rejects as an unknown symbol in a kernel
that allocates no shared memory.
"""
import sys
import time

import torch
import triton
import triton.language as tl

from lmkernels.kernels.cluster import cluster_arm, cluster_done, cluster_slice, cluster_sum, cluster_wait, region_bytes
from lmkernels.runtime.launch import Launcher

ROWS, COLS, SPLITS, LIMIT_NS = 2, 64, 2, 20_000_000


@triton.jit
def _exchange_kernel(out_ptr, ROWS: tl.constexpr, COLS: tl.constexpr, SPLITS: tl.constexpr, LIMIT_NS: tl.constexpr,
                     SEND: tl.constexpr):
    TILE: tl.constexpr = ROWS * COLS
    split = tl.program_id(0) % SPLITS
    dep = cluster_arm(split, TILE, SPLITS)
    flat = tl.arange(0, ROWS)[:, None] * COLS + tl.arange(0, COLS)[None, :]
    acc = (flat + 10 * split + 1).to(tl.float32)  # rank r's partial: j + 10 r + 1
    if SEND:
        total = cluster_sum(acc, flat, split, dep, TILE, SPLITS)
        j, valid = cluster_slice(split, TILE, SPLITS)
        tl.store(out_ptr + j, total, mask=valid)
    else:  # a sum across the warps (0: acc >= 1) gives this branch shared memory too
        dep += tl.sum(tl.sum((acc < 0).to(tl.int32), axis=1), axis=0)
        cluster_wait(region_bytes(TILE, SPLITS), dep, LIMIT_NS)
    cluster_done(dep)


if __name__ == "__main__":
    send = sys.argv[1] == "send"
    out = torch.full((ROWS * COLS,), float("nan"), device="cuda")
    launch = Launcher(_exchange_kernel, "t")
    t0 = time.perf_counter()
    launch(0, (1,), (out,), (ROWS, COLS, SPLITS, LIMIT_NS, send), num_warps=4, cluster=SPLITS,
           cluster_smem=region_bytes(ROWS * COLS, SPLITS))
    torch.cuda.synchronize()
    want = 2 * torch.arange(ROWS * COLS, device="cuda", dtype=torch.float32) + 12  # (j + 1) + (j + 11)
    print("sums right" if torch.equal(out, want) else f"sums WRONG {out.tolist()}", f"{time.perf_counter() - t0:.3f} s",
          flush=True)
