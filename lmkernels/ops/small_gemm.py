"""Low-latency small-batch GEMM (decode and MoE router logits) and the `linear` dispatcher.

  ll_gemm     x [M <= 16, K] @ weight [N, K]^T -> [M, N], bf16/fp16 or fp8 e4m3 (per-tensor scales)
              operands, fp32 accumulation, fp32 (router logits) / bf16 / fp16 out, optional bias;
              with programmatic dependent launch on sm90+. Kernels: kernels/small_gemm.py.
  linear      what an engine calls: ll_gemm where it wins (use_ll_gemm, the rule below), cuBLAS
              (torch) elsewhere.

Shape of the module (for library.py): ll_gemm routes to torch.ops.lmkernels.ll_gemm while
torch.compile traces (config travels as JSON), else ll_gemm_impl. ll_gemm_impl's fast branch
recognises the common call with a handful of attribute reads and launches a cached plan through
Launcher.fast; anything else takes _careful, which checks everything (check_ll_gemm, also the fake
implementation's check), explains what is wrong and caches the plan.
"""
from __future__ import annotations

import json

import torch
import torch.nn.functional as F
import triton

from ..kernels.small_gemm import _ll_gemm_kernel, _ll_gemm_reduce_kernel
from ..runtime import config_store
from ..runtime import scratch as _scratch
from ..runtime.device import fp8_mma_problem, is_interpreter, num_sms
from ..kernels.cluster import region_bytes
from ..runtime.launch import Launcher, cluster_launch_ok
from .scaled_mm import scaled_mm
from ._common import (check_runnable, check_same_device, check_tensor, config_int, cpu_interpreted, resolve_pdl,
                      use_dispatcher)

# x, weight, out, workspace, counters, bias, x_scale, w_scale | M | N, K, stride_xm, stride_wn, k_chunk
_launch = Launcher(_ll_gemm_kernel, "tttttttt" "n" "iiiii")
# workspace, out, bias, x_scale, w_scale | M | N
_launch_reduce = Launcher(_ll_gemm_reduce_kernel, "ttttt" "n" "i")

MAX_M = 16
FP8 = torch.float8_e4m3fn
IN_DTYPES = (torch.bfloat16, torch.float16, FP8)
OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MAX_SPLIT_K = 64  # split-K's finishing sum holds next_pow2(SPLIT_K) partials of a tile in registers
# FMA tiles: fp32 products a thread holds (of 255 registers; the heuristic's tiles hold 64-128)
MAX_FMA_PER_THREAD = 128
# N from which a 16-bit weight counts as dense in the heuristic (ll_gemm_config): the routers it was
# fitted to have N <= 384; the dense tables start at 4096; 2048 is where 32-column tiles fill 64 SMs
DENSE_N = 2048
_Tensor, _Dtype, _F32 = torch.Tensor, torch.dtype, torch.float32

CONFIG_KEYS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "SPLIT_K", "USE_DOT", "num_warps", "num_stages", "EARLY_LAUNCH",
               "PREFETCH", "ONE_LAUNCH", "PRELOAD", "DOT_CHAINS", "SWAP_AB", "CLUSTER", "BULK_PREFETCH")
# keys a config may leave out, and their values: DOT_CHAINS (session 28), SWAP_AB (session 33),
# CLUSTER (session 34) and BULK_PREFETCH (session 39) came after the first tables, whose entries mean
# one chain, unswapped, no cluster, the line prefetch
CONFIG_DEFAULTS = {"DOT_CHAINS": 1, "SWAP_AB": False, "CLUSTER": False, "BULK_PREFETCH": False}
# split counts a cluster can hold: 8 is the portable cluster size, 16 the H100's non-portable one
CLUSTER_SPLITS = (2, 3, 4, 5, 6, 7, 8, 16)
# split-K finishes in its one launch everywhere but HIP, which keeps the reduce kernel (kernels/small_gemm.py)
_HIP = torch.version.hip is not None

_plans: dict = {}
# linear asks this on every call, torch.compile traces it: read once (the interpreter is chosen before
# triton is imported and never changes in a process)
_INTERPRETED = is_interpreter()


# ---------------------------------------------------------------- configs

def ll_gemm_config(M: int, N: int, K: int, elem_bytes: int, sms: int, clusters: bool = False) -> dict:
    """The heuristic config, from the H100 probes (benchmarks/probe_ll_gemm.py, probe_ll_gemm.md,
    probe_ll_gemm_rows.py, probe_ll_gemm_rows.md: CUDA-graph medians with PDL, a call waiting on the
    one before as in a model's chain).

    What sets the time at M <= 16 is latency, not bandwidth: in a PDL chain a dependent kernel that
    only waits, reads and writes costs ~1.0 µs a call, and split-K's handshake (partial store,
    barrier, atomic, the last program's read) another ~1.0 µs (the probe's floor rows), against a
    weight read of 0.02-1.8 µs. So split-K only where nothing else fills the GPU:
      M == 1: no split. fp32 FMAs on whole K rows, BLOCK_K = next_pow2(K) (<= 16384, looping past
        it), BLOCK_N rows a program: 4 for bf16 from N = 256, else 2 (fp8: 2), 16 warps when a tile
        holds >= 8192 elements and N > 16, else 8. Probe (PRELOAD): 7168 x 256 2.52 µs (two-launch
        split-K 4.66), 5120 x 128 1.87, 4096 x 8 1.24, 2880 x 64 1.29, fp8 7168 x 256 2.13-2.14.
        PREFETCH asks L2 for the whole block before the wait (the safe form of PRELOAD, which is a
        config key: kernels/small_gemm.py says why it is not the default).
      M >= 2 where _rows_config applies (N < 128 at any M, N < 256 to M = 8, else M <= 4 and some
        M <= 8): no split either, whole-K FMA rows, all M rows a program or (M_TILED) a few of them.
      128 <= N < 256 from M = 9: _two_launch_config.
      M >= 2 otherwise: _dot_split_config (tl.dot tiles, split-K; transposed to M = 8 up to N = 384).
    clusters (the GPU launches thread-block clusters: runtime/launch.cluster_launch_ok): the router
    band _cluster_rule names takes _dot_split_config's tiles with their split-K finished in a cluster,
    ahead of the rows and the two-launch rule.
    Dense 16-bit weights (N >= DENSE_N: a model's projections, where N / 32 output tiles already
    cover much of the GPU) follow the bf16 dense tables instead (tune_ll_gemm_dense.log: Llama-3-8B;
    tune_ll_gemm_dense_heuristic.log: those and four held-out shapes), where the router rules ran
    1.05-1.64x the tuned time: _dense_config.
    """
    if N >= DENSE_N and (M == 1 and (elem_bytes == 1 or K <= 4096) or M > 1 and elem_bytes == 2):
        return _dense_config(M, N, K, elem_bytes, sms)
    if M == 1:
        bk = min(16384, triton.next_power_of_2(max(K, 16)))
        bn = 4 if elem_bytes == 2 and N >= 256 else 2
        bn = min(bn, triton.next_power_of_2(max(N, 1)))
        return _rows(1, bn, bk, 16 if bn * bk >= 8192 and N > 16 else 8, K)
    if clusters and _cluster_rule(M, N, K):
        c = _dot_split_config(M, N, K, elem_bytes, sms, cluster=True)
        if M <= 8 or triton.cdiv(N, c["BLOCK_N"]) * c["SPLIT_K"] <= 0.85 * sms:
            return c
    if N < 128 or M <= 4 or (M <= 8 and (N < 256 or N == 256 and K <= (6144 if elem_bytes == 2 else 4096))):
        return _rows_config(M, N, K, elem_bytes, sms)
    if N < 256:  # M > 8: held out 5120 x 160 at M = 16 ran the tiled rows in 7.8 µs, these 4.1
        return _two_launch_config(N, K, sms)
    return _dot_split_config(M, N, K, elem_bytes, sms)


def _dense_config(M: int, N: int, K: int, elem_bytes: int, sms: int) -> dict:
    """Weights with N >= DENSE_N, from the H100 dense tables (µs, tuned winner / heuristic):
      M == 1 (16-bit: K <= 4096, longer K keeps the router rule, which the tables matched within
        5 %; fp8 any K): all of K a row, 16 KB of weight a program (2-8 rows). 16-bit: 2 rows at
        K = 4096 on 4 warps (4096 x 4096 13.3 µs, the router rule's 4 rows on 16 warps 16.3), 8 rows
        at K = 1024 on 8 (8192 x 1024 7.7 against 10.0). fp8 (tune_ll_gemm_dense_fp8_r1.log): 4 rows
        at K = 4096 on 8 warps (8.3-42.6 µs on the 8B shapes against 16.2-97.2 for the router
        rule's 2 rows on 16), 2 rows at K = 8192 on 8, 16 warps past 16 KB.
      From M == 2 16-bit only (fp8 from M = 2 belongs to scaled_mm: linear sends it there):
      M == 2 where N >= 6144 and 2048 < K <= 4096: 2 x 4 rows, 2048 columns a step, 4 warps (6144 /
        14336 / 28672 x 4096: 20.6 / 42.4 / 81.5 µs; the dot tiles took 21.5 / 54.7 / 104.8 at M = 4;
        at K = 1024 the rows lost, 8192 x 1024 10.4 against 8.6).
      K >= 8192 and N >= 4096: the two-launch rule's 16 x 32 x 256 tiles, ~2 programs an SM
        (4096 x 14336, 7168 x 8192, 5120 x 13824: 43.6 / 45.7 / 53.0 µs at M = 4, against 51.6 /
        56.7 / 74.2 for one launch of 512-deep tiles).
      otherwise tl.dot on 16 x BLOCK_N x 512 tiles, split-K in one launch, about 2 programs an SM:
        splits = round(2 SMs / n-tiles), one more where that leaves 1.2-1.8 waves (a half-empty last
        wave). BLOCK_N 16 where N >= 6144 and 2048 < K <= 4096 (6144 x 4096 at M = 8: 21.5 µs against
        25.9 for 32 x 2 splits, 28672 x 4096 1.05x; 14336 x 4096 ran 1.02-1.04x slower), else 32
        (8192 x 1024: 8.7 µs against 10.9 for 16). The tables' splits: 4096 x 4096 2, 2048 x 8192 4,
        8192 x 1024 1, 14336 x 4096 1."""
    whole = triton.next_power_of_2(max(K, 16))
    if M == 1:
        bn = min(8, max(2, 16384 // (whole * elem_bytes)))
        warps = (4 if bn <= 2 else 8) if elem_bytes == 2 else (8 if bn * whole <= 16384 else 16)
        return _rows(1, bn, min(16384, whole), warps, K)
    if M == 2 and N >= 6144 and 2048 < K <= 4096:
        return _rows(2, 4, min(2048, whole), 4, K)
    if K >= 8192 and N >= 4096:
        return _two_launch_config(N, K, sms)
    bn, bk = (16 if N >= 6144 and 2048 < K <= 4096 else 32), 512
    n_tiles = triton.cdiv(N, bn)
    split = max(1, round(2 * sms / n_tiles))
    if 1.2 * sms < n_tiles * split < 1.8 * sms:
        split += 1
    split, k_chunk = split_k(K, bk, min(split, MAX_SPLIT_K))
    return {"BLOCK_M": 16, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split, "USE_DOT": True, "num_warps": 4,
            "num_stages": 3 if k_chunk > bk else 1, "EARLY_LAUNCH": True, "PREFETCH": True, "ONE_LAUNCH": True,
            "PRELOAD": False, "DOT_CHAINS": 1, "SWAP_AB": False, "CLUSTER": False,
            "BULK_PREFETCH": False}


def _rows_config(M: int, N: int, K: int, elem_bytes: int, sms: int) -> dict:
    """M >= 2, whole-K FMA rows (kernels/small_gemm.py, _mac3): no split-K handshake, every program
    reading BLOCK_M rows of x from L2 (M / BLOCK_N times the weight's bytes in all). Fitted to
    probe_ll_gemm_rows.md and the session-15 tables (H100; neighbouring configs differ by 0.1-0.5 µs,
    so a rule that is right everywhere would be a table, not this).
    M tiled over programs (BLOCK_M < M, session 15, tune_ll_gemm_bf16_s15.log / _fp8_s15.log), where
    the winners of both dtypes agreed:
      N < 256 (N < 128 from M = 9): at most a quarter of the rows a program (1 row to M = 4, 2 to 8,
        4 to 16), one weight row a program below N = 64, else two, 8 warps, K in steps of 8192
        columns with one row (held out 5120 x 160 at M = 2 / 4: 2.1 / 2.9 µs, 3.2 / 3.8 in steps
        of 4096), else 4096 (M = 8: 2 x 2 x 8192 ran 6.7 µs, 2 x 2 x 4096 5.2). The small routers had N / 2
        programs each reading all of x: 4096 x 8 at M = 8 / 16 ran 2.04 / 2.67 µs, tiled 1.22 / 1.51;
        2880 x 64 2.16 / 2.98 -> 1.61 / 2.13; 5120 x 128 M = 8 3.55 -> 3.14.
      N >= 256 at M = 5-8 (rows only where ll_gemm_config sends them): two m-tiles of 4 rows, 2
        weight rows, 2048 columns a step, 4 warps (4096 x 256 M = 8 3.59 -> 3.28 µs, 6144 x 256
        4.49 -> 4.17; fp8 4096 x 256 3.38 -> 2.92).
    All rows a program otherwise (M <= 4, N >= 256), the probe's rules:
      16-bit: BLOCK_N 2. A thread holds pt = 32 weight elements a step at M = 2, 16 at M = 3-4 (its
        fp32 products BLOCK_M times that: 64 registers). Warps: up to 16, fewer where the grid would
        not fit one wave at ~16 resident warps an SM (7168 x 384 at M = 4: 192 programs of 16 warps
        took 6.1 µs, of 8 warps 5.1). BLOCK_K = pt x 32 x warps / BLOCK_N, at most 4096 and
        next_pow2(K).
      fp8 e4m3 (half the bytes an element; the bf16 tiles with twice the warps lost by up to 1 µs):
        M <= 2 at N = 256 with K > 4096: one row of all of K (<= 8192) a program on 8 warps (7168 x
        256 2.53 µs against 2.89 for the bf16 tile; 4096 x 256 took the bf16 tile, 2.23 against
        2.61); otherwise the bf16 tile, with half the warps at M = 3-4 (7168 x 256 3.37 µs against
        4.03, 7168 x 384 4.25 against 5.30).
    Probe at M = 2 / 4 / 8 against the split-K dot tiles: bf16 7168 x 256 2.85 / 3.73 / 5.10 against
    4.70 / 4.72 / 4.81, 5120 x 128 2.31 / 2.65 / 3.65 against 3.71-3.87, 4096 x 8 1.32 / 1.47 / 2.05
    against 2.39-2.57, fp8 7168 x 256 2.53 / 3.37 / 5.16 against 5.83-6.08 (4.1 at M = 8 since the
    fp16 widening of session 15, which moved fp8 M = 5-8 on the big routers to the dot tiles). With
    all 16 rows a program the FMAs lost everywhere at M = 16 (7.6-15 µs); tiled they win below
    N = 128 (5120 x 128 fp8 M = 16: 3.59 against the dot tiles' 3.61; bf16 3.79 for the dot)."""
    bm = triton.next_power_of_2(M)
    whole = triton.next_power_of_2(max(K, 16))
    if N < 256:  # at most 4 x 2 x 4096 products on 8 warps: 128 a thread (MAX_FMA_PER_THREAD)
        bm = max(1, bm // 4)
        return _rows(bm, 2 if N >= 64 else 1, min(8192 if bm == 1 else 4096, whole), 8, K)
    if M > 4:
        return _rows(4, 2, min(2048, whole), 4, K)
    if elem_bytes == 1 and M <= 2 and N == 256 and K > 4096:
        return _rows(bm, 1, min(8192, whole), 8, K)
    bn = 2
    per_thread = 32 if M <= 2 else 16
    warps = 16
    while warps > 4 and triton.cdiv(N, bn) * warps > 16 * sms:
        warps //= 2
    bk = min(4096, whole, per_thread * 32 * warps // bn)
    warps = min(16, max(4, bn * bk // (32 * per_thread)))
    if elem_bytes == 1 and M > 2:
        warps = max(4, warps // 2)
    return _rows(bm, bn, bk, warps, K)


def _rows(bm: int, bn: int, bk: int, warps: int, K: int) -> dict:
    """A config of whole-K FMA rows (no split): BLOCK_M x BLOCK_N outputs a program, BLOCK_K columns a
    step (pipelined in 2 stages when a program takes more than one), PREFETCH and EARLY_LAUNCH."""
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": 1, "USE_DOT": False, "num_warps": warps,
            "num_stages": 1 if bk >= K else 2, "EARLY_LAUNCH": True, "PREFETCH": True, "ONE_LAUNCH": True,
            "PRELOAD": False, "DOT_CHAINS": 1, "SWAP_AB": False, "CLUSTER": False,
            "BULK_PREFETCH": False}


def _cluster_rule(M: int, N: int, K: int) -> bool:
    """Where the heuristic finishes split-K in a cluster (sm90+): 256 <= N <= 384, 3072 <= K < 8192,
    M = 5-16, and M = 4 past 4096 x 256 weights. From probe_cluster_heuristic.md (H100, five router
    shapes no table covers, M = 4 / 8 / 16, bf16 and fp8: _dot_split_config's tiles in clusters, split
    capped at 8, against today's heuristic): 26 of 30 points faster (0.56-0.98x; 0.61 where the
    16-row tile's 14 one-tile splits became 7 in clusters), the 4 losses outside this band: K = 8192
    at M = 8-16 (1.01-1.14x) and fp8 3072 x 256 at M = 4 (1.20x, where the whole-K FMA rows are
    quick; the 4096 x 256 table kept them at M = 4 too). Held out in a second round
    (probe_cluster_heuristic_heldout.md: 5 more shapes, M = 4 / 6 / 8 / 12 / 16): 38 of 48 faster
    (0.62-0.99x, median 0.89 over all 48), 7 slower by 0.2-1.9 %, the worst on the 16-row tiles of
    7680 x 256 at M = 12-16 (1.02-1.12x): 16 n-tiles x 8 splits, 128 programs in clusters of 8 on
    132 SMs, as at 8192 x 256 in the first round. So from M = 9, ll_gemm_config keeps clusters to
    grids of at most 0.85x the SMs (every 16-row winner had <= 112 programs; fitted to those two
    rounds, not held out; the transposed tiles to M = 8 won or tied with 120-168 programs). At one
    CTA an SM the H100 holds 15 clusters of 8 (120 CTAs) and 7 of 16 (probe_cluster_occupancy.md),
    about that cap. The second round re-run with it (probe_cluster_heuristic_heldout_capped.md,
    session 36): 40 of 48 faster, median 0.89x, worst 1.02x. The tuned winners agree
    (tune_ll_gemm_s34_cluster.log: 26 of 30 entries of the big routers in clusters, 8 x 16 x 512
    with 5-7 splits at M = 4-8)."""
    return 256 <= N <= 384 and 3072 <= K < 8192 and (M > 4 or M == 4 and N * K > 4096 * 256)


def _dot_split_config(M: int, N: int, K: int, elem_bytes: int, sms: int, cluster: bool = False) -> dict:
    """N >= 256 where whole-K rows lose (M > 8, or M > 4 on the big routers): split-K dot tiles,
      tl.dot on the 16-row padded tile, split-K in one launch:
        BLOCK_K 512, BLOCK_N 32 for N > 256 else 16, splits = min(K tiles, cdiv(SMs, n-tiles)) of
        whole tiles (about one program an SM: 7168 x 256 -> 16 n-tiles x 7 splits of 1024), PREFETCH
        and EARLY_LAUNCH on. Bench (small_gemm.md): 3.80-5.55 µs against 4.23-5.93 for _two_launch_config.
        DOT_CHAINS 4 on the 16-column tiles where a program takes two or more K tiles
        (kernels/small_gemm._dot_chains; probe_router_chain_chains.md: 7168 x 256 / 6144 x 256 at M = 8-16
        4.8-4.9 -> 4.3-4.5 µs; held out, probe_router_chain_heldout.md, N = 256 at K = 5120-14336:
        -0.5 to -1.1 µs, but +0.14 / +0.18 at K = 3072 / 2048, where a program has one tile). The
        32-column tiles lost with it (7168 x 384 5.5 -> 5.9-6.1).
        fp8 too since its tiles widen to fp16 (session 15, probe_fp8_widen.md: 7168 x 256 M = 16
        7.8 -> 4.2 µs with the bf16 widening's extra conversion gone; 4.1-4.2 against 5.1-5.9 for the
        FMA rows at M = 8 and the two-launch tiles at M = 16).
      M <= 8 (M = 5-8 on the big routers) and N <= 384: the tile transposed, x's rows on the mma's
        n8 side (SWAP_AB, BLOCK_M 8: no padding to 16 rows), 16 columns with 4 chains: the tuner's
        winner at all six of those entries (tune_ll_gemm_s33_swap.log: 7168 x 256 / 384 and 6144 x
        256, bf16 and fp8, 1.11-1.29x the unswapped heuristic; 7168 x 384 bf16 5.49 -> 4.61 µs), and
        held out at M = 6 on 8192 / 14336 x 256 and 6144 x 320 (0.64-0.94x the 16-row tile), but not
        on 7168 x 512 (1.15x: probe_swap_ll_gemm_heldout.md), hence N <= 384. Not at M = 9-16: the
        M-tiled 8-row tile that won 9 of 10 tuned M = 16 entries (tune_ll_gemm_s33_mtiled.log, as a
        table entry only) lost held out at K >= 5120 (1.02-1.22x) with this rule's splits.
        Not on HIP: Triton 3.6 lowers gfx942's 8-row tile to FMAs, not MFMA (tests/test_compile.py).
      (N < 256 takes the session-5 two-launch rule, _two_launch_config, from M = 9 where N >= 128,
      else the M-tiled FMA rows since session 15: ll_gemm_config.)
      cluster: split-K finished in a cluster (kernels/cluster.py), at most 8 splits (a portable
      cluster size; 7168 x 320 at M = 16 took 14 one-tile splits, 7.9 µs, and 7 two-tile splits in
      clusters 4.8: probe_cluster_heuristic.md)."""
    swap = M <= 8 and N <= 384 and not _HIP
    bn = 32 if N > 256 and not swap else 16
    bk = 512
    n_tiles = triton.cdiv(N, bn)
    k_tiles = triton.cdiv(max(K, 1), bk)
    most = 8 if cluster else MAX_SPLIT_K
    split, k_chunk = split_k(K, bk, min(k_tiles, triton.cdiv(sms, n_tiles), most))
    return {"BLOCK_M": 8 if swap else 16, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split, "USE_DOT": True,
            "num_warps": 4, "num_stages": 3 if k_chunk > bk else 1, "EARLY_LAUNCH": True, "PREFETCH": True,
            "ONE_LAUNCH": True, "PRELOAD": False, "DOT_CHAINS": 4 if bn == 16 and k_chunk > bk else 1,
            "SWAP_AB": swap, "CLUSTER": cluster and split > 1, "BULK_PREFETCH": False}


def _two_launch_config(N: int, K: int, sms: int) -> dict:
    """M >= 2 where one launch does not pay (ll_gemm_config): dot tiles on the 16-row padded tile,
    about 2 programs an SM, split-K partials summed by a second launch (the session-5 H100 sweep,
    small_gemm_sweep.md).
      BLOCK_N 16 for N <= 16, else 32; BLOCK_K next_pow2(K / splits) in [64, 8192 / BLOCK_N],
      splits = 2 SMs / n-tiles (<= 8192 elements a tile, 64 fp32 registers a thread once widened);
      whole K tiles dealt to at most min(splits, 64) programs; where whole tiles leave < 2/3 of the
      wanted programs, BLOCK_K halves (>= 64) while that adds splits."""
    block_n = min(32, max(16, triton.next_power_of_2(N)))
    n_tiles = triton.cdiv(N, block_n)
    want = min(triton.cdiv(2 * sms, n_tiles), MAX_SPLIT_K)
    max_bk = max(64, 8192 // block_n)
    block_k = min(max_bk, max(64, triton.next_power_of_2(triton.cdiv(max(K, 1), want))))
    split, k_chunk = split_k(K, block_k, want)
    while block_k > 64 and 3 * split * n_tiles < 2 * 2 * sms:
        # whole tiles a split can leave far fewer splits than wanted (7168 x 384: 28 tiles of 256 over
        # 22 splits is 14 splits of 2, 168 programs); halve the tile while that adds splits
        more, chunk = split_k(K, block_k // 2, want)
        if more <= split:
            break
        block_k, split, k_chunk = block_k // 2, more, chunk
    return {"BLOCK_M": 16, "BLOCK_N": block_n, "BLOCK_K": block_k, "SPLIT_K": split, "USE_DOT": True, "num_warps": 4,
            "num_stages": 3 if k_chunk > block_k else 1, "EARLY_LAUNCH": False, "PREFETCH": False,
            "ONE_LAUNCH": False, "PRELOAD": False, "DOT_CHAINS": 1, "SWAP_AB": False, "CLUSTER": False,
            "BULK_PREFETCH": False}


def split_k(K: int, block_k: int, split: int) -> tuple[int, int]:
    """(splits, K columns a split) for at most `split` splits of whole BLOCK_K tiles: every split but
    the last covers the same number of tiles, none is empty (so no tile straddles two splits)."""
    k_tiles = max(1, triton.cdiv(K, block_k))
    k_chunk = triton.cdiv(k_tiles, max(1, min(split, k_tiles))) * block_k
    return max(1, triton.cdiv(K, k_chunk)), k_chunk


def check_config(cfg: dict, M: int) -> dict:
    """A validated copy of a full config (keys CONFIG_KEYS). BLOCK_M: a power of two from
    min_block_m (16 with USE_DOT, 8 with SWAP_AB, a bool that needs USE_DOT) to 16, >= M unless the
    config may tile M (m_tiles_ok), where BLOCK_M < M tiles M (the kernel's M_TILED); BLOCK_N 16-256
    (from 1 for FMAs); BLOCK_K 16-2048 (to 16384 for FMAs); SPLIT_K 1-64; num_warps 1-16 (powers of
    two); num_stages 1-6; an FMA tile at most MAX_FMA_PER_THREAD products a thread; USE_DOT, EARLY_LAUNCH, PREFETCH, ONE_LAUNCH, PRELOAD bools (ONE_LAUNCH is
    ignored on HIP, kernels/small_gemm.py says why); DOT_CHAINS 1-8 (a power of two; above 1 only
    with USE_DOT and BLOCK_K / DOT_CHAINS >= 16), 1 where left out (CONFIG_DEFAULTS); CLUSTER a bool
    (False where left out) that needs ONE_LAUNCH and SPLIT_K <= 8 or 16 (_make_plan: where it runs);
    BULK_PREFETCH a bool (False where left out) that needs PREFETCH (kernels/small_gemm.py)."""
    unknown = sorted(set(cfg) - set(CONFIG_KEYS), key=str)
    if unknown:
        raise ValueError(f"config has unknown key(s) {unknown}; expected some of {list(CONFIG_KEYS)}")
    cfg = {**cfg, **{k: v for k, v in CONFIG_DEFAULTS.items() if k not in cfg}}
    for key in ("USE_DOT", "EARLY_LAUNCH", "PREFETCH", "ONE_LAUNCH", "PRELOAD", "SWAP_AB", "CLUSTER", "BULK_PREFETCH"):
        if type(cfg[key]) is not bool:
            raise ValueError(f"config[{key!r}]={cfg[key]!r} must be a bool")
    if cfg["BULK_PREFETCH"] and not cfg["PREFETCH"]:
        raise ValueError("config['BULK_PREFETCH']=True needs PREFETCH=True (it is the form of that prefetch)")
    dot = cfg["USE_DOT"]
    if cfg["SWAP_AB"] and not dot:
        raise ValueError("config['SWAP_AB']=True needs USE_DOT=True (it transposes the tl.dot tile)")
    if cfg["CLUSTER"] and not _cluster_sized(cfg):
        raise ValueError(f"config['CLUSTER']=True needs ONE_LAUNCH=True (the finish where clusters cannot run) and "
                         f"SPLIT_K <= 8 or 16 (a cluster's size), got ONE_LAUNCH={cfg['ONE_LAUNCH']}, "
                         f"SPLIT_K={cfg['SPLIT_K']!r}")
    bm = config_int(cfg, "BLOCK_M", min_block_m(cfg), 16, pow2=True)
    if bm < M and not m_tiles_ok(cfg):
        raise ValueError(f"config['BLOCK_M']={bm} must be >= M={M} (only FMA rows without split-K, and dot tiles "
                         f"without it or in one launch, tile M; this one has USE_DOT={dot}, "
                         f"ONE_LAUNCH={cfg['ONE_LAUNCH']}, SPLIT_K={cfg['SPLIT_K']!r})")
    config_int(cfg, "BLOCK_N", 16 if dot else 1, 256, pow2=True)
    # FMA tiles up to 16384: a whole K row a program (full-K, no split) with PRELOAD
    config_int(cfg, "BLOCK_K", 16, 2048 if dot else 16384, pow2=True)
    config_int(cfg, "num_warps", 1, 16, pow2=True)
    config_int(cfg, "SPLIT_K", 1, MAX_SPLIT_K)
    config_int(cfg, "num_stages", 1, 6)
    chains = config_int(cfg, "DOT_CHAINS", 1, 8, pow2=True)
    if chains > 1 and not (dot and cfg["BLOCK_K"] // chains >= 16):
        raise ValueError(f"config['DOT_CHAINS']={chains} needs USE_DOT=True and BLOCK_K / DOT_CHAINS >= 16 (the mma's "
                         f"K step), got USE_DOT={dot}, BLOCK_K={cfg['BLOCK_K']}")
    if not dot:  # the FMA tile lives in registers: BLOCK_M BLOCK_N BLOCK_K fp32 products over the threads
        per_thread = bm * cfg["BLOCK_N"] * cfg["BLOCK_K"] // (32 * cfg["num_warps"])
        if per_thread > MAX_FMA_PER_THREAD:
            raise ValueError(f"config FMA tile BLOCK_M x BLOCK_N x BLOCK_K = {bm} x {cfg['BLOCK_N']} x "
                             f"{cfg['BLOCK_K']} over {cfg['num_warps']} warps puts {per_thread} fp32 products on a "
                             f"thread; at most {MAX_FMA_PER_THREAD} (more spills to local memory)")
    return dict(cfg)


def _cluster_sized(cfg: dict) -> bool:
    """Whether a config may ask for CLUSTER: one launch, and at most a cluster's worth of splits."""
    return cfg["ONE_LAUNCH"] is True and type(cfg["SPLIT_K"]) is int and (cfg["SPLIT_K"] <= 8 or cfg["SPLIT_K"] == 16)


def _check_table_config(cfg: dict) -> dict:
    """config_store's validator for ll_gemm tables: every key of a config (the tuner writes them all),
    valid for some M (tuned_config serves a bucket only to at most its tuned M rows)."""
    missing = [k for k in CONFIG_KEYS if k not in cfg and k not in CONFIG_DEFAULTS]
    if missing:
        raise ValueError(f"config lacks {missing}; a table entry names every one of {list(CONFIG_KEYS)} "
                         f"(but {list(CONFIG_DEFAULTS)}, which default to {list(CONFIG_DEFAULTS.values())})")
    return check_config(cfg, 1)


config_store.register_validator("ll_gemm", _check_table_config)
TABLE_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", FP8: "fp8"}  # operand dtype -> table file dtype tag


def tuned_config(M: int, N: int, K: int, dtype, dev: int) -> dict | None:
    """The config of the tuned table for (N, K, dtype) on GPU `dev` (`lmkernels tune ll-gemm`, lookup
    order and bucket rule in runtime/config_store.py), or None: no table (quietly: the heuristic is
    the designed default for untuned shapes), the CPU, or a bucket tuned for fewer rows than M (past
    the table's last bucket: its config was never timed with M rows, and unless it tiles M (BLOCK_M <
    M, m_tiles_ok) it cannot run them)."""
    return _table_entry(M, N, K, dtype, dev)[0]


def _table_entry(M: int, N: int, K: int, dtype, dev: int) -> tuple[dict | None, dict | None]:
    """(tuned_config, the tuner's measured record of it) from one table resolve; (None, None) where
    tuned_config gives None."""
    if dev < 0:
        return None, None
    cfg, rec, tuned_m = config_store.entry("ll_gemm", N, K, TABLE_DTYPES[dtype], M, dev)
    return (cfg, rec) if cfg is not None and tuned_m >= M else (None, None)


def _merge_config(base: dict, keys: dict, M: int) -> dict:
    """base with keys replaced. Keys asking for FMA rows (USE_DOT False) over a dot tile drop its
    DOT_CHAINS and SWAP_AB (CONFIG_DEFAULTS) unless they name them; keys that leave a CLUSTER base
    without a cluster-sized split in one launch (ONE_LAUNCH False, SPLIT_K 9-15 or above 16) drop
    its CLUSTER unless they name it; PREFETCH False drops a BULK_PREFETCH it does not name. Where base tiles M (BLOCK_M < M)
    and keys ask for what cannot (split-K in two launches, a dot tile of more rows) without naming
    BLOCK_M, the program takes all M rows: BLOCK_M 16 for dot, next_pow2(M) for FMA rows, whose tile then gets more warps (to 16), then a shorter BLOCK_K, each only where
    keys leave it open, until it fits MAX_FMA_PER_THREAD (check_config refuses it otherwise)."""
    cfg = {**base, **keys}
    if not cfg["USE_DOT"]:  # FMA rows asked over a dot tile: its dot-only keys go, unless named
        cfg.update({k: CONFIG_DEFAULTS[k] for k in ("DOT_CHAINS", "SWAP_AB") if k not in keys})
    if cfg.get("CLUSTER") and "CLUSTER" not in keys and not _cluster_sized(cfg):
        cfg["CLUSTER"] = False  # keys that leave no cluster (two launches, 64 splits) drop a table's CLUSTER
    if cfg.get("BULK_PREFETCH") and "BULK_PREFETCH" not in keys and not cfg["PREFETCH"]:
        cfg["BULK_PREFETCH"] = False  # PREFETCH=False drops the form of a prefetch no longer made
    if "BLOCK_M" in keys or cfg["BLOCK_M"] >= M or m_tiles_ok(cfg) and cfg["BLOCK_M"] >= min_block_m(cfg):
        return cfg
    cfg["BLOCK_M"] = 16 if cfg["USE_DOT"] else triton.next_power_of_2(M)
    if not cfg["USE_DOT"]:
        def per_thread():
            return cfg["BLOCK_M"] * cfg["BLOCK_N"] * cfg["BLOCK_K"] // (32 * cfg["num_warps"])
        while per_thread() > MAX_FMA_PER_THREAD and "num_warps" not in keys and cfg["num_warps"] < 16:
            cfg["num_warps"] *= 2
        while per_thread() > MAX_FMA_PER_THREAD and "BLOCK_K" not in keys and cfg["BLOCK_K"] > 16:
            cfg["BLOCK_K"] //= 2
    return cfg


def m_tiles_ok(cfg: dict) -> bool:
    """Whether a config may have BLOCK_M < M (kernels/small_gemm.py, M_TILED): FMA rows without
    split-K, dot tiles without it or with it in one launch (the partials and counters are per (m-tile,
    n-tile); the two-launch workspace is not, so not on HIP, which keeps two launches)."""
    return cfg["SPLIT_K"] == 1 or cfg["USE_DOT"] and cfg["ONE_LAUNCH"] and not _HIP


def min_block_m(cfg: dict) -> int:
    """The fewest rows a program's tile may hold: 1 for FMA rows; for tl.dot the MMA side x's rows
    are on, n8 transposed (SWAP_AB), else m16."""
    return (8 if cfg.get("SWAP_AB") else 16) if cfg["USE_DOT"] else 1


# ---------------------------------------------------------------- checks (no data: fake tensors too)

def _check_scale(s, name: str, x) -> None:
    check_tensor(s, name)
    if s.dtype != torch.float32:
        raise TypeError(f"{name}.dtype={s.dtype} must be torch.float32")
    if s.numel() != 1 or s.dim() > 1:
        raise ValueError(f"{name}.shape={tuple(s.shape)}: ll_gemm takes one per-tensor scale, 0-d or [1]")
    check_same_device(s, name, x, "x")


def check_ll_gemm(x, weight, bias, out_dtype, x_scale, w_scale) -> tuple[int, int, int]:
    """Every check that needs no data; returns (M, N, K)."""
    check_tensor(x, "x")
    check_tensor(weight, "weight")
    if x.dim() != 2 or weight.dim() != 2:
        raise ValueError(f"x [M, K] and weight [N, K] must be 2-D, got x.shape={tuple(x.shape)} and "
                         f"weight.shape={tuple(weight.shape)}")
    M, K = x.shape
    N = weight.shape[0]
    if M > MAX_M:
        raise ValueError(f"x.shape[0]={M} rows: ll_gemm serves M <= {MAX_M} (decode); use lmkernels.linear, "
                         f"which sends larger M to cuBLAS")
    if weight.shape[1] != K:
        raise ValueError(f"weight.shape[1]={weight.shape[1]} must equal x.shape[1]={K} (K); weight is [N, K]")
    if x.dtype not in IN_DTYPES:
        raise TypeError(f"x.dtype={x.dtype} is not supported; expected torch.bfloat16, torch.float16 or "
                        f"torch.float8_e4m3fn")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight.dtype={weight.dtype} must equal x.dtype={x.dtype}")
    check_same_device(weight, "weight", x, "x")
    if not isinstance(out_dtype, torch.dtype) or out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype={out_dtype!r} is not supported; expected torch.float32, torch.bfloat16 or "
                        f"torch.float16")
    if x.dtype == FP8:
        if x_scale is None or w_scale is None:
            raise ValueError(f"float8_e4m3fn inputs need per-tensor scales: x_scale={'None' if x_scale is None else 'given'}"
                             f", w_scale={'None' if w_scale is None else 'given'} (fp32, 0-d or [1])")
        _check_scale(x_scale, "x_scale", x)
        _check_scale(w_scale, "w_scale", x)
    elif x_scale is not None or w_scale is not None:
        raise ValueError(f"x_scale and w_scale are for float8_e4m3fn inputs only; x.dtype={x.dtype} takes none")
    if bias is not None:
        check_tensor(bias, "bias")
        allowed = (torch.float32, x.dtype) if x.dtype != FP8 else (torch.float32, torch.bfloat16, torch.float16)
        if bias.dtype not in allowed:
            raise TypeError(f"bias.dtype={bias.dtype} must be one of {[str(d) for d in allowed]} for "
                            f"x.dtype={x.dtype}")
        check_same_device(bias, "bias", x, "x")
        if tuple(bias.shape) != (N,):
            raise ValueError(f"bias.shape={tuple(bias.shape)} must be [N] = [{N}]")
        if bias.stride(0) != 1 and N > 1:
            raise ValueError(f"bias.stride(0)={bias.stride(0)} must be 1")
    if x.stride(1) != 1 and K > 1:
        raise ValueError(f"x.stride(1)={x.stride(1)}: x's rows must be contiguous (shape {tuple(x.shape)}, "
                         f"strides {x.stride()})")
    if weight.stride(1) != 1 and K > 1:
        raise ValueError(f"weight.stride(1)={weight.stride(1)}: weight's rows must be contiguous, weight [N, K] "
                         f"row-major (shape {tuple(weight.shape)}, strides {weight.stride()}); a w.t() view is "
                         f"the wrong way round")
    return M, N, K


# ---------------------------------------------------------------- plans and launches

def _make_plan(M, N, K, dt, out_dtype, bias_dtype, scaled, dev, pdl, cfg) -> tuple:
    """(grid, SPLIT_K, main constexprs, main meta id, num_warps, num_stages, k_chunk, scratch, reduce,
    use PDL, out dtype, cluster size, its shared bytes): grid counts the launch's clusters where the
    cluster size is above 1 (each of that many programs, with that many bytes of shared memory past
    the kernel's own: kernels/cluster.py), else its programs; scratch is (spec, {stream: (workspace, counters)}) for one-launch split-K
    (runtime/scratch.py), else None; reduce is None or (constexprs, meta id, grid) of the second
    launch."""
    use_pdl = resolve_pdl(pdl, dev)
    bk, bn, bm = cfg["BLOCK_K"], cfg["BLOCK_N"], cfg["BLOCK_M"]
    split, k_chunk = split_k(K, bk, cfg["SPLIT_K"])
    if cfg["PRELOAD"] and k_chunk != bk:
        raise ValueError(f"config PRELOAD=True needs one K tile a program: K={K} in SPLIT_K={cfg['SPLIT_K']} splits "
                         f"of BLOCK_K={bk} gives {k_chunk // bk} tiles a split")
    # CLUSTER: split-K's finish inside a cluster of the tile's programs (kernels/cluster.py) where the
    # GPU launches clusters and the split count is a cluster size; else the counter handshake (the
    # config also says ONE_LAUNCH): a table's or an override's CLUSTER never fails a call
    cluster = split if split > 1 and cfg["CLUSTER"] and split in CLUSTER_SPLITS and cluster_launch_ok(dev) else 1
    one_launch = split > 1 and cluster == 1 and cfg["ONE_LAUNCH"] and not _HIP
    n_tiles = triton.cdiv(N, bn)
    m_tiles = triton.cdiv(M, bm)
    if m_tiles > 1 and not m_tiles_ok(cfg):  # a table entry past check_config's M (tuned_config)
        raise ValueError(f"config BLOCK_M={bm} < M={M} tiles M, which needs no split-K or split-K in one launch "
                         f"(check_config; HIP keeps two launches): SPLIT_K={split}, ONE_LAUNCH={one_launch}")
    grid = n_tiles * split * m_tiles
    stand = dt  # a None operand's pointer slot holds x (never read)
    dtypes = (dt, dt, out_dtype, _F32 if split > 1 and cluster == 1 else out_dtype, torch.int32 if one_launch else out_dtype,
              bias_dtype or stand, _F32 if scaled else stand, _F32 if scaled else stand)
    consts = (bm, bn, bk, split, cfg["USE_DOT"], bias_dtype is not None, scaled, use_pdl,
              cfg["EARLY_LAUNCH"] and use_pdl, cfg["PREFETCH"] and use_pdl, one_launch, cfg["PRELOAD"], m_tiles > 1,
              cfg["DOT_CHAINS"], cfg["SWAP_AB"], cluster > 1, cfg["BULK_PREFETCH"] and use_pdl)
    warps, stages = cfg["num_warps"], cfg["num_stages"]
    meta = _launch.meta_id(consts, warps, stages, dtypes, use_pdl)
    scratch = ((n_tiles * m_tiles, n_tiles * m_tiles * split * bm * bn, _F32), {}) if one_launch else None
    reduce = None
    if split > 1 and not one_launch and cluster == 1:
        block_s = triton.next_power_of_2(split)
        block = min(max(32, 4096 // block_s), triton.next_power_of_2(M * N))
        rconsts = (split, block_s, block, bias_dtype is not None, scaled, use_pdl)
        rmeta = _launch_reduce.meta_id(rconsts, 4, 1, (_F32, out_dtype) + dtypes[5:], use_pdl)
        reduce = (rconsts, rmeta, triton.cdiv(M * N, block))
    cluster_smem = region_bytes(bm * bn, cluster) if cluster > 1 else 0
    return grid // cluster, split, consts, meta, warps, stages, k_chunk, scratch, reduce, use_pdl, out_dtype, cluster, \
        cluster_smem


# ---------------------------------------------------------------- one-launch split-K
# workspace fp32 [n_tiles, SPLIT_K, BLOCK_M, BLOCK_N] and an int32 counter per n-tile, kept per
# device and stream by runtime/scratch.py (its docstring: why sharing them between calls is sound)


def _run(plan, x, weight, bias, x_scale, w_scale, M, N, K, sx, sw, dev):
    grid, split, consts, meta, warps, stages, k_chunk, scratch, reduce, use_pdl, out_dtype, cluster, cluster_smem = plan
    out = x.new_empty((M, N), dtype=out_dtype)
    b = x if bias is None else bias
    s1 = x if x_scale is None else x_scale
    s2 = x if w_scale is None else w_scale
    if scratch is not None:
        part, count = _scratch.split_buffers(dev, scratch)
    elif split > 1 and cluster == 1:  # the two-launch workspace [SPLIT_K, M, N]
        part = count = x.new_empty((split, M, N), dtype=_F32)
    else:
        part = count = out
    if not _launch.fast(dev, meta, grid, 1, x, weight, out, part, count, b, s1, s2, M, N, K, sx, sw, k_chunk):
        _launch(dev, (grid,), (x, weight, out, part, count, b, s1, s2, M, N, K, sx, sw, k_chunk), consts, warps,
                stages, pdl=use_pdl, cluster=cluster, cluster_smem=cluster_smem)
    if reduce is not None:
        rconsts, rmeta, rgrid = reduce
        if not _launch_reduce.fast(dev, rmeta, rgrid, 1, part, out, b, s1, s2, M, N):
            _launch_reduce(dev, (rgrid,), (part, out, b, s1, s2, M, N), rconsts, 4, 1, pdl=use_pdl)
    return out


def _careful(x, weight, bias, out_dtype, x_scale, w_scale, pdl, config):
    M, N, K = check_ll_gemm(x, weight, bias, out_dtype, x_scale, w_scale)
    check_runnable(x, "x")
    dev = x.get_device()
    resolve_pdl(pdl, dev)  # refuses a pdl that is not a bool or None
    if x.dtype == FP8:
        why = fp8_mma_problem(dev)
        if why is not None:
            raise ValueError(why)
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"config must be a dict or None, got {type(config).__name__}")
    if M == 0 or N == 0:
        return x.new_empty((M, N), dtype=out_dtype)
    # an explicit config's keys replace those of the config the call would take (the tuned one, else
    # the heuristic's): config={"PREFETCH": False} changes that and nothing else
    cfg = tuned_config(M, N, K, x.dtype, dev) or ll_gemm_config(M, N, K, x.dtype.itemsize, num_sms(max(dev, 0)),
                                                                cluster_launch_ok(dev))
    if config is not None:
        cfg = check_config(_merge_config(cfg, config, M), M)
    scaled = x_scale is not None
    bias_dtype = None if bias is None else bias.dtype
    plan = _make_plan(M, N, K, x.dtype, out_dtype, bias_dtype, scaled, dev, pdl, cfg)
    if config is None:
        _plans[(M, N, K, x.dtype, out_dtype, bias_dtype, scaled, dev, pdl)] = plan
    return _run(plan, x, weight, bias, x_scale, w_scale, M, N, K, x.stride(0) if M > 1 else K,
                weight.stride(0) if N > 1 else K, dev)


def ll_gemm_impl(x, weight, bias=None, out_dtype=torch.float32, x_scale=None, w_scale=None, pdl=None, config=None):
    """ll_gemm without the dispatcher. The fast branch: both operands 2-D on one GPU with contiguous
    rows, the bias (if any) a contiguous [N] there, fp8's scales one fp32 element there; the plan
    key holds the rest (M, N, K, dtypes, out dtype, bias dtype, scaled or not, device, pdl request),
    and a plan exists only for facts the careful path accepted once."""
    if (config is None and type(x) is _Tensor and type(weight) is _Tensor and type(out_dtype) is _Dtype
            and (pdl is None or type(pdl) is bool)):
        xshape = x.shape
        wshape = weight.shape
        dt = x.dtype
        dev = x.get_device()
        if (len(xshape) == 2 and len(wshape) == 2 and weight.dtype is dt and weight.get_device() == dev
                and (dev >= 0 or cpu_interpreted(x, weight, bias, x_scale))):
            M, K = xshape
            N = wshape[0]
            xst = x.stride()
            wst = weight.stride()
            if wshape[1] == K and xst[1] == 1 and wst[1] == 1 and 0 < M <= MAX_M and N > 0:
                if bias is None:
                    bdt = None
                elif type(bias) is _Tensor and bias.stride() == (1,) and bias.shape[0] == N and bias.get_device() == dev:
                    bdt = bias.dtype
                else:
                    bdt = False
                plan = _plans.get((M, N, K, dt, out_dtype, bdt, x_scale is not None, dev, pdl))
                if plan is not None and (
                        w_scale is None if x_scale is None else
                        type(x_scale) is _Tensor and type(w_scale) is _Tensor and x_scale.dtype is _F32
                        and w_scale.dtype is _F32 and x_scale.numel() == 1 == w_scale.numel()
                        and x_scale.dim() <= 1 >= w_scale.dim() and x_scale.get_device() == dev == w_scale.get_device()
                        and (dev >= 0 or w_scale.is_cpu)):
                    return _run(plan, x, weight, bias, x_scale, w_scale, M, N, K, xst[0] if M > 1 else K,
                                wst[0] if N > 1 else K, dev)
    return _careful(x, weight, bias, out_dtype, x_scale, w_scale, pdl, config)


def ll_gemm(x: torch.Tensor, weight: torch.Tensor, *, bias: torch.Tensor | None = None,
            out_dtype: torch.dtype = torch.float32, x_scale: torch.Tensor | None = None,
            w_scale: torch.Tensor | None = None, pdl: bool | None = None, config: dict | None = None) -> torch.Tensor:
    """Small-batch GEMM: ``out[m, n] = sum_k x[m, k] weight[n, k] (* x_scale * w_scale) + bias[n]``.

    x [M, K] with M <= 16 (larger M: lmkernels.linear), weight [N, K] row-major (an nn.Linear
    weight), both torch.bfloat16, both torch.float16, or both torch.float8_e4m3fn with per-tensor
    float32 scales x_scale and w_scale (0-d or [1]; required for fp8, refused otherwise). Rows of x
    may be strided; both must have contiguous rows. Any K and N (odd ones included). bias None or [N]
    of float32 or x's dtype (fp8: float32, bfloat16 or float16). fp32 accumulation and epilogue
    (t = acc * (x_scale * w_scale) + bias), one rounding to out_dtype (float32 by default: router
    logits; bfloat16 or float16). Returns a new [M, N] tensor; M == 0 or N == 0 gives an empty one.
    Deterministic: the split-K partials are summed in a fixed order, bit-identical run to run and
    with pdl on or off. Not batch invariant: the config (and so the summation order) follows M.
    pdl: programmatic dependent launch, None = where the GPU has it (sm90+); never changes the result.
    config: None takes the tuned table's config where one covers (N, K, dtype) on this GPU
    (`lmkernels tune ll-gemm`; runtime/config_store.py), else the heuristic (ll_gemm_config); a dict
    of config keys replaces those keys of that config (sweeps, the tuner's candidates); where that
    config tiles M (BLOCK_M < M) and the keys ask for split-K or tl.dot, which cannot, without naming
    BLOCK_M, the program takes all M rows.

    >>> logits = lmkernels.ll_gemm(h, router_w)   # h [4, 7168] bf16, router_w [256, 7168] bf16 -> fp32
    """
    if use_dispatcher(x):
        cfg = None if config is None else json.dumps(config, sort_keys=True)
        return torch.ops.lmkernels.ll_gemm(x, weight, bias, out_dtype, x_scale, w_scale, pdl, cfg)
    return ll_gemm_impl(x, weight, bias, out_dtype, x_scale, w_scale, pdl, config)


# ---------------------------------------------------------------- linear: the dispatcher

# Untuned 16-bit weights wider than twice their depth and at least this large go to cuBLAS in
# `linear` from M = 2 (use_ll_gemm): below it a call is latency-bound, where ll_gemm's ~1.3 µs beats
# cuBLAS's ~5.6 (the routers, 1.4-4.4x); the smallest wide weight that lost was 8192 x 1024 bf16.
# Untuned fp8 weights of at least this size go to lmkernels.scaled_mm from M = 2: ll_gemm's fp8 rows
# and split-K tiles ran 1.3-2.6x torch._scaled_mm's time on every 8B shape there
# (tune_ll_gemm_dense_fp8_r1.log: 4096 x 4096 M = 4 17.4 µs against 8.7; since the fp16 widening
# its dot tiles at M = 8-16 take 1.1-1.3x scaled_mm's time, probe_linear_fp8_s15.md), and scaled_mm
# is about as fast as torch._scaled_mm at decode (scaled_mm.md).
LINEAR_WIDE_CUBLAS_BYTES = 16 << 20


def use_ll_gemm(M: int, N: int, K: int, dtype, dev: int = -1) -> bool:
    """Where ll_gemm replaces cuBLAS in `linear`: M <= 16 rows of bf16, fp16 or fp8 e4m3, where
      a tuned table (on GPU `dev`) covers the M bucket: where it measured its config at least as
        fast as cuBLAS (tuning/ll_gemm.py writes cublas_us beside every M);
      otherwise (no table): one row always; more unless N > 2 K and the weight holds at least
        LINEAR_WIDE_CUBLAS_BYTES. H100, the heuristic against
        cuBLAS (tune_ll_gemm_dense_heuristic.log, 11 dense bf16 shapes; small_gemm.md, the
        routers): at M = 1 ll_gemm won all 11 dense shapes (1.06-1.20x) and every router point
        (1.4-4.4x); at M >= 2 it won or tied where N <= 2 K (0.85-1.01x cuBLAS's time; 3584 x 3584
        1.04-1.11) and lost where the weight is wider: 14336 / 28672 x 4096 at M >= 4 1.20-1.25x,
        8192 x 1024 1.03-1.06x.
    fp8 e4m3's other path is lmkernels.scaled_mm on a GPU (its tables' cuBLAS time, torch._scaled_mm's,
    stands for it); untuned, it takes M >= 2 on weights of at least LINEAR_WIDE_CUBLAS_BYTES."""
    if not (0 < M <= MAX_M and N > 0 and dtype in IN_DTYPES):
        return False
    return not _other_path_faster(M, N, K, dtype, dev)


@torch.compiler.assume_constant_result
def _other_path_faster(M: int, N: int, K: int, dtype, dev: int) -> bool:
    """use_ll_gemm's rule: whether linear's other path (cuBLAS; scaled_mm for fp8) wins here. A
    constant while torch.compile traces linear (a table lookup reads files and the device name; M, N,
    K and the device are guards of the traced graph)."""
    cfg, rec = _table_entry(M, N, K, dtype, dev)
    if cfg is None:  # no table, or none for this many rows
        big = N * K * dtype.itemsize >= LINEAR_WIDE_CUBLAS_BYTES
        return M > 1 and big and (dtype == FP8 or N > 2 * K)
    return rec is not None and rec.get("cublas_us") is not None and rec["us"] > rec["cublas_us"]


def _not_ll_gemm(x2, weight, bias, out_dtype, x_scale, w_scale):
    """linear's other path: x2 [M, K] @ weight^T through torch (cuBLAS on a GPU), fp32 maths where
    out_dtype asks for it; fp8 on a GPU through lmkernels.scaled_mm (per-tensor scales, the bias in fp32 unless it already
    has the output's dtype, which scaled_mm takes as well: the same one rounding)."""
    if x2.dtype == FP8 and x2.is_cuda:
        b = bias if bias is None or bias.dtype in (torch.float32, out_dtype) else bias.float()
        return scaled_mm(x2, weight.t(), x_scale, w_scale, out_dtype, b)
    if x2.dtype == FP8:  # dequantised fp32 matmul off the GPU: right, not fast
        y = torch.mm(x2.float(), weight.float().t()) * (x_scale.reshape(()) * w_scale.reshape(()))
        return (y if bias is None else y + bias.float()).to(out_dtype)
    if out_dtype == x2.dtype and (bias is None or bias.dtype == x2.dtype):
        return F.linear(x2, weight, bias)
    y = None
    if out_dtype == torch.float32 and x2.is_cuda:
        try:  # cuBLAS, fp32 accumulation and output (aten::mm.dtype, a CUDA kernel in torch >= 2.8)
            y = torch.mm(x2, weight.t(), out_dtype=torch.float32)
        except (TypeError, RuntimeError, NotImplementedError):
            y = None
    if y is None:  # fp32 maths on the widened operands as well, reading 2x the bytes
        y = torch.mm(x2.float(), weight.float().t())
    return (y if bias is None else y + bias.float()).to(out_dtype)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
           out_dtype: torch.dtype | None = None, x_scale: torch.Tensor | None = None,
           w_scale: torch.Tensor | None = None) -> torch.Tensor:
    """``y = x @ weight^T + bias`` (torch.nn.functional.linear's semantics) with the engine's choice of
    kernel: lmkernels.ll_gemm where use_ll_gemm says it wins (M <= 16 rows of bf16/fp16/fp8), torch
    (cuBLAS) elsewhere, lmkernels.scaled_mm for fp8 on a GPU. x [..., K] (M = the product of the leading dims), weight [N, K], bias [N] or
    None. out_dtype None = x's dtype (bfloat16 for fp8 x); torch.float32 from 16-bit inputs accumulates and stores in fp32
    on either path (cuBLAS: torch.mm(..., out_dtype=torch.float32)). fp8 e4m3 x and weight need
    x_scale and w_scale (per tensor, fp32), as for ll_gemm; ll_gemm sums them in fp32, scaled_mm
    with its default fast accumulation (the tensor cores' own accumulator, as vLLM's CUTLASS fp8
    kernels and torch._scaled_mm(use_fast_accum=True)). Not registered as one custom op: under
    torch.compile the choice is made while tracing (M is a guard), so the cuBLAS branch stays an
    ordinary matmul the compiler sees, and the ll_gemm branch is torch.ops.lmkernels.ll_gemm.

    >>> y = lmkernels.linear(h, w)                            # [..., K] -> [..., N]
    """
    check_tensor(x, "x")
    check_tensor(weight, "weight")
    if x.dim() == 0 or weight.dim() != 2:
        raise ValueError(f"x must be [..., K] and weight [N, K], got x.shape={tuple(x.shape)}, "
                         f"weight.shape={tuple(weight.shape)}")
    od = (torch.bfloat16 if x.dtype == FP8 else x.dtype) if out_dtype is None else out_dtype
    K = x.shape[-1]
    N = weight.shape[0]
    lead = x.shape[:-1]
    M = 1
    for d in lead:
        M *= d
    x2 = x if x.dim() == 2 else x.reshape(M, K)
    if (x.is_cuda or _INTERPRETED) and od in OUT_DTYPES and use_ll_gemm(M, N, K, x.dtype, x.get_device()):
        y = ll_gemm(x2, weight, bias=bias, out_dtype=od, x_scale=x_scale, w_scale=w_scale)
    else:
        if x.dtype == FP8 or x_scale is not None or w_scale is not None:
            check_ll_gemm(x2[:0], weight, bias, od, x_scale, w_scale)  # the same messages as ll_gemm's
        elif weight.dtype != x.dtype:
            raise TypeError(f"weight.dtype={weight.dtype} must equal x.dtype={x.dtype}")
        y = _not_ll_gemm(x2, weight, bias, od, x_scale, w_scale)
    return y if x.dim() == 2 else y.reshape(*lead, N)
