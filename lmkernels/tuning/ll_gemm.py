"""`lmkernels tune ll-gemm`: time ll_gemm's candidate configs per (N, K, dtype, M <= 16) on this GPU,
and cuBLAS beside them, and write the table runtime/config_store.py serves (its docstring has the
layout, format and bucket rule). ll_gemm takes the tuned config where a table covers its shape;
`linear` sends a tuned M bucket to cuBLAS where the table says cuBLAS was faster.

Per shape and M (common.tune_tables drives the loop, resumable and within --max-minutes):
  1. candidates(): the heuristic's config first, then whole-K FMA rows (rows_configs, M <= 8), the
     same with M tiled over programs (tiled_rows_configs, BLOCK_M < M) and split-K dot tiles
     (split_configs, M >= 2), each checked by the op's check_config, deduplicated.
  2. compile them in worker processes (common.CompilePool), then warm each here once.
  3. time each as `lmkernels bench small_gemm` times ll_gemm: CUDA-graph replays of back-to-back
     calls with PDL on (each call's launch overlapping the previous call's tail, as between a
     model's kernels), weights rotating over 4x the L2 (common.rank: a quick pass, then the
     fastest three and the heuristic again).
  4. check the winner against the float64 reference (lmkernels.verify.ll_gemm_error, the tests'
     bound); the next fastest where it fails.
  5. where it prefetches its weight before the PDL wait (sm90+), time the winner against its twin
     with the other form of that prefetch (prefetch_form: BULK_PREFETCH), the faster kept.
     `--prefetch-form-only` runs this step alone on tables already written (recheck_forms).
  6. time cuBLAS on the same input sets (bench/peers.cublas_small_gemm, the bench's peers): bf16/fp16
     torch.nn.functional.linear and torch.mm with fp32 out (the faster counts), fp8 torch._scaled_mm
     with the same per-tensor scales (cuBLASLt needs N and K multiples of 16, None otherwise). The record's "cublas_us" is what
     `linear` compares with.
Tables are tuned for fp32 outputs (router logits); the kernel's time hardly depends on the output
dtype at these sizes (bf16 out writes M N x 2 bytes instead of 4).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..ops.small_gemm import CLUSTER_SPLITS, MAX_SPLIT_K, TABLE_DTYPES, split_k
from ..runtime import config_store
from .common import (REFINE, REFINE_ROUNDS, Budget, CompilePool, Progress, first_passing, git_commit,
                     interleaved_medians, rank, read_existing, record, report, table_meta, tune_tables)

OP = "ll_gemm"
M_GRID = (1, 2, 4, 8, 16)
FORM_MARGIN = 0.02  # prefetch_form takes the other prefetch form only where it is this much faster
OUT_DTYPE = torch.float32
FP8 = torch.float8_e4m3fn
DTYPES = {tag: dt for dt, tag in TABLE_DTYPES.items()}  # the file name's dtype tag -> operand dtype


# ---------------------------------------------------------------- the search space

def rows_configs(M: int, N: int, K: int, block_m: int | None = None):
    """Whole-K FMA rows (no split): BLOCK_N 1-8 weight rows a program, BLOCK_K 1024-8192 columns a
    step, warps chosen so a thread holds 16-64 weight elements a step (16-32 at BLOCK_M = 4, 8-16
    from 8; the M = 1 winner held 64 in one step), the fp32 products BLOCK_M times that (<= 128).
    block_m: BLOCK_M, by default all M rows a program; smaller, the kernel tiles M (M_TILED)."""
    bm = block_m or 1 << (M - 1).bit_length()
    whole = 1 << max(4, (K - 1).bit_length())
    seen = set()
    for bn in (1, 2, 4, 8):
        if bn > 1 and bn // 2 >= N:
            continue
        for bk in sorted({1024, 2048, 4096, min(whole, 8192)}):
            if bk > whole:
                continue
            for per_thread in ((8, 16) if bm >= 8 else (16, 32) if bm == 4 else (16, 32, 64)):
                warps = bn * bk // (32 * per_thread)
                if warps not in (4, 8, 16):
                    continue
                stages = 1 if bk >= K else 2
                if (bn, bk, warps, stages) in seen:
                    continue
                seen.add((bn, bk, warps, stages))
                yield {"USE_DOT": False, "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": 1,
                       "num_warps": warps, "num_stages": stages, "PREFETCH": True, "EARLY_LAUNCH": True,
                       "ONE_LAUNCH": True, "PRELOAD": False, "DOT_CHAINS": 1, "SWAP_AB": False}


def tiled_rows_configs(M: int, N: int, K: int, sms: int):
    """rows_configs with BLOCK_M < M (1, 2, 4, 8): cdiv(M, BLOCK_M) programs an output tile, for grids
    that all-rows tiles leave small (N / BLOCK_N programs: 8 at N = 8), up to about 4 programs an SM."""
    for bm in (1, 2, 4, 8):
        if bm >= M:
            break
        for cfg in rows_configs(M, N, K, bm):
            if -(-N // cfg["BLOCK_N"]) * -(-M // bm) <= 4 * sms:
                yield cfg


def split_configs(M: int, N: int, K: int, sms: int, elem_bytes: int = 2, cluster: bool = False):
    """Split-K dot tiles on the 16-row padded tile (M >= 2): BLOCK_N 16/32, BLOCK_K 256/512/1024 (1024
    for 16-bit weights on 16-column tiles only: a [32, 1024] 16-bit tile is 128 registers a thread on
    4 warps), the splits that make about half, one and two programs an SM (whole K tiles, at most 64);
    one launch with PREFETCH and EARLY_LAUNCH, and the two-launch form (partials, then a reduce
    kernel; from one program an SM), which the fp8 and small-N probes preferred. One-launch 32-column
    tiles also on 8 warps; one-launch 16-column tiles at least 512 deep also with DOT_CHAINS 4 on 4
    and 8 warps and 8 on 8 warps (kernels/small_gemm._dot_chains; probe_router_chain_chains.md timed
    512 and 1024 on 4 warps, where the 32-column tiles lost with chains).
    Session 31 added the half-SM splits, the 16-bit 1024-deep tiles and the 8 warps: session 28's
    tables took fp8 7168 x 384 M = 8 / 16 at 16 x 16 x 1024, 4 splits (96 programs), 4 chains, a
    tile the 16-bit space did not have. Session 33: each tile also transposed with 8 rows (SWAP_AB,
    BLOCK_M 8: probe_swap_ll_gemm.md, 7168 x 384 M = 8 5.70 -> 4.77 µs), at M > 8 the one-launch
    ones only, as two m-tiles a weight tile (M_TILED). Session 34 (cluster: the GPU launches
    clusters, runtime/launch.cluster_launch_ok): every one-launch tile whose split count is a cluster
    size also with CLUSTER (kernels/cluster.py; probe_cluster_split.md: the finish 0.8-0.9 µs
    cheaper), and in clusters only the splits that make 2-8 and 16 programs a tile: a cheaper finish
    moves the best split."""
    seen = set()
    for bn in (16, 32):
        n_tiles = -(-N // bn)
        for bk in (256, 512, 1024) if elem_bytes == 1 or bn == 16 else (256, 512):
            k_tiles = -(-K // bk)
            # (splits wanted, two launches too): about half, one and two programs an SM, the first in
            # one launch only; with clusters also every cluster size
            wants = [(-(-halves * sms // (2 * n_tiles)), halves > 1, False) for halves in (1, 2, 4)]
            wants += [(c, False, True) for c in CLUSTER_SPLITS] if cluster else []  # these in clusters only
            for want, two_too, cluster_only in wants:
                split, k_chunk = split_k(K, bk, max(1, min(MAX_SPLIT_K, k_tiles, want)))
                for one in (True, False):
                    if (bn, bk, split, one) in seen or (split == 1 and not one) or (not two_too and not one):
                        continue
                    seen.add((bn, bk, split, one))
                    shapes = [(4, 1)]  # (num_warps, DOT_CHAINS)
                    if one and bn == 16 and bk >= 512:
                        shapes += [(4, 4), (8, 4), (8, 8)]
                    elif one and bn == 32:
                        shapes.append((8, 1))
                    for warps, chains in shapes:
                        cfg = {"USE_DOT": True, "BLOCK_M": 16, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split,
                               "num_warps": warps, "num_stages": 3 if k_chunk > bk else 1, "PREFETCH": one,
                               "EARLY_LAUNCH": one, "ONE_LAUNCH": one, "PRELOAD": False, "DOT_CHAINS": chains,
                               "SWAP_AB": False}
                        twins = [cfg]
                        if M <= 8 or one:  # the tile transposed, x's rows on mma's n8 side (no 16-row
                            # padding); above 8 rows two m-tiles a weight tile (M tiled: one launch only,
                            # so check_config drops these on HIP: ops/small_gemm.m_tiles_ok)
                            twins.append(dict(cfg, BLOCK_M=8, SWAP_AB=True))
                        for c in twins:
                            if not cluster_only:
                                yield c
                            if cluster and one and split in CLUSTER_SPLITS:
                                yield dict(c, CLUSTER=True)


def candidates(M: int, N: int, K: int, *, num_sms: int, heuristic: dict, normalize: Callable,
               elem_bytes: int = 2, cluster: bool = False) -> list[dict]:
    """The configs timed for one M: the heuristic's first, then rows_configs (M <= 8) and
    split_configs (M >= 2), each normalised by normalize(cfg, M) (the op's check_config; refused
    ones dropped) and deduplicated."""
    space = ((list(rows_configs(M, N, K)) if M <= 8 else []) + list(tiled_rows_configs(M, N, K, num_sms))
             + (list(split_configs(M, N, K, num_sms, elem_bytes, cluster)) if M >= 2 else []))
    out, seen = [normalize(heuristic, M)], set()
    seen.add(describe(out[0]))
    for cfg in space:
        try:
            cfg = normalize(cfg, M)
        except ValueError:
            continue
        if describe(cfg) not in seen:
            seen.add(describe(cfg))
            out.append(cfg)
    return out


def describe(cfg: dict) -> str:
    """"dot 16x32x512 split7 w4 s3 1L pf early": a config in one short word list (every key; DOT_CHAINS
    only where above 1, SWAP_AB, CLUSTER and BULK_PREFETCH where True: "... 1L chains4 swap cluster pf bulk
    early")."""
    s = (f"{'dot' if cfg['USE_DOT'] else 'fma'} {cfg['BLOCK_M']}x{cfg['BLOCK_N']}x{cfg['BLOCK_K']} "
         f"split{cfg['SPLIT_K']} w{cfg['num_warps']} s{cfg['num_stages']}")
    s += " 1L" if cfg["ONE_LAUNCH"] else " 2L"
    if cfg.get("DOT_CHAINS", 1) > 1:
        s += f" chains{cfg['DOT_CHAINS']}"
    if cfg.get("SWAP_AB", False):
        s += " swap"
    if cfg.get("CLUSTER", False):
        s += " cluster"
    return s + "".join(f" {name}" for key, name in (("PREFETCH", "pf"), ("BULK_PREFETCH", "bulk"),
                                                     ("EARLY_LAUNCH", "early"), ("PRELOAD", "preload"))
                       if cfg.get(key, False))


# ---------------------------------------------------------------- inputs, checks, compile workers

def operands(M: int, N: int, K: int, dtype: str, device, seed: int, weight=None) -> tuple:
    """(x [M, K], weight [N, K], x_scale, w_scale): fresh normals, never zeros; fp8 values spread
    over e4m3's range (sigma 8) with per-tensor scales near a quantiser's."""
    g = torch.Generator(device=device).manual_seed(seed)
    dt = DTYPES[dtype]
    if dtype != "fp8":
        x = torch.randn(M, K, device=device, generator=g).to(dt)
        w = torch.randn(N, K, device=device, generator=g).to(dt) if weight is None else weight
        return x, w, None, None
    x = (torch.randn(M, K, device=device, generator=g) * 8).to(FP8)
    w = (torch.randn(N, K, device=device, generator=g) * 8).to(FP8) if weight is None else weight
    return x, w, torch.rand((), device=device, generator=g) + 0.25, torch.rand((), device=device, generator=g) * 0.01 + 0.001


def check_output(out, x, w, xs, ws) -> str | None:
    """None when out is within the tests' bound of the exact result (verify.ll_gemm_error <= 1)."""
    from ..verify import ll_gemm_error
    if not bool(torch.isfinite(out).all()):
        return f"{int((~torch.isfinite(out)).sum())} non-finite outputs"
    err = ll_gemm_error(out, x, w, None, xs, ws)
    return None if err <= 1.0 else f"error {err:.3g} x the bound"


def compile_one(device: str, M: int, N: int, K: int, dtype: str, cfg: dict) -> None:
    """In a compile worker: one ll_gemm call with this config (Triton compiles it into its disk cache)."""
    import lmkernels
    x, w, xs, ws = operands(M, N, K, dtype, device, 0)
    lmkernels.ll_gemm(x, w, out_dtype=OUT_DTYPE, x_scale=xs, w_scale=ws, config=cfg)
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------- the target and one M

@dataclass
class Target:
    """Everything the tuner touches outside itself; gpu_target() builds the real one, tests fakes."""
    op: Callable            # op(x, w, out_dtype=, x_scale=, w_scale=, config=) -> out (lmkernels.ll_gemm)
    heuristic: Callable     # heuristic(M, N, K, elem_bytes) -> config dict
    normalize: Callable     # normalize(cfg, M) -> config dict, ValueError for one the op refuses
    timer: Callable         # timer(calls, reps) -> µs a call; calls: zero-argument callables
    peers: Callable | None = None  # peers(x, w, xs, ws) -> [zero-argument cuBLAS calls], or None
    check: Callable = check_output
    device: str = "cuda"
    gpu: str = "cpu"
    num_sms: int = 132
    cluster: bool = False   # the GPU launches clusters: CLUSTER twins join the space (split_configs)
    bulk_prefetch: bool = False  # PDL runs here (sm90+): the winner is timed with both prefetch forms
    n_sets: Callable = lambda nbytes: 1
    calls_per_replay: int = 32
    compile_workers: int = 0
    limit: int | None = None
    meta: dict = field(default_factory=dict)
    sync: Callable = lambda: None
    pool: CompilePool | None = None

    def warm(self, cands, M, N, K, dtype, inputs) -> dict:
        """Compile every candidate before timing (common.CompilePool); {index: why} for those that
        cannot run."""
        if self.pool is None:
            self.pool = CompilePool(self.compile_workers)
        x, w, xs, ws = inputs

        def run_here(i):
            self.op(x, w, out_dtype=OUT_DTYPE, x_scale=xs, w_scale=ws, config=cands[i])
            self.sync()
        return self.pool.warm("lmkernels.tuning.ll_gemm:compile_one",
                              [(self.device, M, N, K, dtype, c) for c in cands], run_here)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def tune_m(target: Target, sets, M, N, K, dtype, show) -> tuple[dict, dict]:
    """Search one M: (winner config, its _meta['measured'] record, with cuBLAS's time)."""
    heur = target.heuristic(M, N, K, DTYPES[dtype].itemsize)
    cands = candidates(M, N, K, num_sms=target.num_sms, heuristic=heur, normalize=target.normalize,
                       elem_bytes=DTYPES[dtype].itemsize, cluster=target.cluster)[:target.limit]
    show(f"compile {len(cands)}")
    failed = target.warm(cands, M, N, K, dtype, sets[0])
    what = f"M={M} N={N} K={K} {dtype}"
    if 0 in failed:
        raise RuntimeError(f"{what}: the heuristic config {cands[0]} does not run: {failed[0]}")

    def time_one(i, n_calls, reps):
        try:
            return time_config(target, sets, cands[i], n_calls, reps)
        except Exception as e:
            failed[i] = f"timing: {type(e).__name__}: {str(e)[:200]}"
            return None

    ranked, times, replays = rank(len(cands), time_one, show, target.calls_per_replay, len(sets), failed, what)
    i, rejected = first_passing(ranked, lambda i: check_config_output(target, sets, cands[i]),
                                lambda i: describe(cands[i]), what, show)
    cfg, forms = cands[i], {}
    if target.bulk_prefetch and cfg["PREFETCH"]:
        cfg, forms = prefetch_form(target, sets, cfg, replays, show)
    cublas = None
    if target.peers is not None:
        show("cuBLAS")
        per_set = [target.peers(*s) for s in sets]
        for k in range(len(per_set[0])):
            try:
                us = time_calls(target, [p[k] for p in per_set], replays["calls_per_replay"], replays["full_reps"])
            except Exception:  # noqa: BLE001 - a peer that cannot take the shape (_scaled_mm: N % 16)
                continue
            cublas = us if cublas is None else min(cublas, us)
    rec = record(times, i, len(cands), failed, rejected, replays, cublas_us=None if cublas is None else round(cublas, 3))
    return cfg, with_forms(rec, cfg, forms)


def time_calls(target: Target, calls: list, n_calls: int, reps: int) -> float:
    """target.timer over n_calls of calls (one per input set), in whole rotations of the list."""
    return target.timer(calls * (n_calls // len(calls)), reps)


def time_config(target: Target, sets, cfg: dict, n_calls: int, reps: int) -> float:
    """time_calls of the op with cfg on every input set."""
    return time_calls(target, [functools.partial(target.op, x, w, out_dtype=OUT_DTYPE, x_scale=xs, w_scale=ws,
                                                 config=cfg) for x, w, xs, ws in sets], n_calls, reps)


def check_config_output(target: Target, sets, cfg: dict) -> str | None:
    """target.check of the op's output with cfg on the first input set (None: it passes)."""
    x, w, xs, ws = sets[0]
    return target.check(target.op(x, w, out_dtype=OUT_DTYPE, x_scale=xs, w_scale=ws, config=cfg), x, w, xs, ws)


def prefetch_form(target: Target, sets, cfg: dict, replays: dict, show) -> tuple[dict, dict]:
    """cfg against its twin with the other form of the L2 prefetch (BULK_PREFETCH toggled: one bulk
    request a weight row, or one prefetch a 128-byte line), in REFINE_ROUNDS interleaved rounds (after
    one thrown away) of the search's full replays each, each one's time the median of its rounds.
    Neither form won everywhere (router calls 0.90-1.16x, results/h100/probe_bulk_prefetch.md), and the search ranks the line
    form only, so the form is decided for the winner alone. The twin is taken where it is faster,
    runs, and passes the reference check, and by more than FORM_MARGIN: the H100's first pass over
    the router tables (session 39) found 18 of 70 entries within 1 % between the forms and 32 within
    2 %, about the spread of one point's rounds (probe_bulk_prefetch.md). Returns (config, {"line": µs, "bulk": µs})."""
    pair = (cfg, dict(cfg, BULK_PREFETCH=not cfg["BULK_PREFETCH"]))

    def time_one(j):
        try:
            return time_config(target, sets, pair[j], replays["calls_per_replay"], replays["full_reps"])
        except Exception:  # noqa: BLE001 - a twin that cannot run keeps the winner's form
            return None

    # one round thrown away: it brings the GPU's clock up after the twin's compile (the H100's first
    # run of this step, on an idle machine, timed 7168 x 256 M = 2 at 3.12 µs against 2.79 when warm)
    us = interleaved_medians([0, 1], time_one, REFINE_ROUNDS, show, "prefetch form", warmup=1)
    if us[0] is None:
        raise RuntimeError(f"the winner {describe(cfg)} failed when timed again")
    forms = {("bulk" if c["BULK_PREFETCH"] else "line"): None if us[j] is None else round(us[j], 3)
             for j, c in enumerate(pair)}
    if us[1] is not None and us[1] < us[0] * (1 - FORM_MARGIN) and check_config_output(target, sets, pair[1]) is None:
        return pair[1], forms
    return cfg, forms


def with_forms(rec: dict, cfg: dict, forms: dict) -> dict:
    """The measured record with prefetch_form's times ("prefetch_forms": {"line", "bulk"}) where it ran;
    "us" then the kept form's paired-round median, and "search_us" the search's time of its winner,
    which is what "heuristic_us" and "speedup" compare with (the same rounds: the paired ones came
    later, on a GPU whose clock had moved)."""
    if not forms:
        return rec
    return dict(rec, us=forms["bulk" if cfg["BULK_PREFETCH"] else "line"], search_us=rec.get("search_us", rec["us"]),
                prefetch_forms=forms)


def recheck_forms(jobs, ms, out_dir: str, target: Target, *, budget: Budget | None = None,
                  progress: Progress | None = None, log=functools.partial(print, flush=True)) -> dict:
    """`lmkernels tune ll-gemm --prefetch-form-only`: prefetch_form on the entries of tables already
    written (no search): each tuned M in ms whose config prefetches is timed with both forms and keeps
    the faster; its record keeps the search's fields ("search_seconds": the search's "seconds") with
    "us" and "prefetch_forms" from these rounds. The step a full search ends with, for tables tuned
    before it existed (session 39). Only the entries that prefetch and have no prefetch_forms yet are
    timed (and their input sets made); the others, and whole files with none, are left as they are,
    so a run that --max-minutes stopped continues where it stopped."""
    def redo(M, cfg, rec):
        return target.bulk_prefetch and target.normalize(cfg, M)["PREFETCH"] and "prefetch_forms" not in rec

    def recheck_m(sets, M, N, K, dtype, show):
        path = os.path.join(out_dir, OP, config_store.file_name(N, K, target.gpu, dtype))
        entries, measured, _ = read_existing(path, OP, N, K, dtype)
        if M not in entries:
            raise ValueError(f"{path} has no entry for M={M} to recheck: tune it first (without --prefetch-form-only)")
        cfg = target.normalize(entries[M], M)
        rec = dict(measured[str(M)])
        rec.setdefault("search_seconds", rec.get("seconds"))
        target.warm([cfg, dict(cfg, BULK_PREFETCH=not cfg["BULK_PREFETCH"])], M, N, K, dtype, sets[0])
        cfg, forms = prefetch_form(target, sets, cfg, rec, show)
        return cfg, with_forms(rec, cfg, forms)

    return tune_tables(jobs, ms, out_dir, op=OP, gpu=target.gpu, tune_m=recheck_m,
                       input_sets=lambda weights, M, N, K, dtype: _input_sets(target, weights, M, N, K, dtype),
                       meta=lambda *a: _meta(target, *a), describe=describe, budget=budget, redo=redo,
                       progress=progress, log=log, close=target.close)


def _meta(target, N, K, dtype, grid, entries, measured) -> dict:
    return table_meta(OP, N, K, dtype, target.gpu, target.meta, grid, entries, measured, out_dtype="float32",
                      operands="x [M, K] and weight [N, K] row-major" + (", per-tensor fp32 scales" if dtype == "fp8" else ""),
                      timing="CUDA-graph replays of back-to-back calls with PDL on, weights rotated past 4x L2 "
                             f"(bench/harness.graph_us), median µs a call: a quick pass, then the {REFINE} fastest and "
                             "the heuristic with more replays in interleaved rounds (the median of each); then the "
                             "winner with both forms of its L2 prefetch (prefetch_forms, BULK_PREFETCH), the faster kept; "
                             "cublas_us the same way (fp8: torch._scaled_mm)",
                      bucket_rule="smallest tuned M >= M, else the largest tuned M (a config whose BLOCK_M < M is "
                                  "not used)")


def _input_sets(target, weights, M, N, K, dtype) -> list:
    """Enough sets that a replay overflows L2 (target.n_sets of the weight's bytes), each with its own
    weight (kept across the shape's Ms in `weights`) and activations."""
    k = target.n_sets(N * K * DTYPES[dtype].itemsize)
    while len(weights) < k:
        weights.append(operands(1, N, K, dtype, target.device, 7919 * len(weights) + 1)[1])
    return [operands(M, N, K, dtype, target.device, 104729 + 31 * s + M, weights[s]) for s in range(k)]


def tune(jobs, ms, out_dir: str, target: Target, *, budget: Budget | None = None, force: bool = False,
         progress: Progress | None = None, log=functools.partial(print, flush=True)) -> dict:
    """Tune jobs [(N, K, dtype)] at every M in ms (<= 16), one table file per job under out_dir/ll_gemm/."""
    return tune_tables(jobs, ms, out_dir, op=OP, gpu=target.gpu,
                       tune_m=lambda sets, M, N, K, dtype, show: tune_m(target, sets, M, N, K, dtype, show),
                       input_sets=lambda weights, M, N, K, dtype: _input_sets(target, weights, M, N, K, dtype),
                       meta=lambda *a: _meta(target, *a), describe=describe, budget=budget, force=force,
                       progress=progress, log=log, close=target.close)


def gpu_target(device_index: int = 0, compile_workers: int = 8) -> Target:
    """The real target: lmkernels.ll_gemm on CUDA device `device_index`, timed with graph_us."""
    import lmkernels
    from ..bench import harness
    from ..bench.peers import cublas_small_gemm
    from ..ops import small_gemm as sg
    from ..runtime.device import pdl_supported
    from ..runtime.launch import cluster_launch_ok
    torch.cuda.set_device(device_index)
    props = torch.cuda.get_device_properties(device_index)
    cap = torch.cuda.get_device_capability(device_index)
    return Target(
        op=lmkernels.ll_gemm, normalize=sg.check_config,
        heuristic=lambda M, N, K, eb: sg.ll_gemm_config(M, N, K, eb, props.multi_processor_count,
                                                        cluster_launch_ok(device_index)),
        timer=lambda calls, reps: harness.graph_us(calls, reps=reps, min_calls=len(calls)),
        peers=lambda *operands: list(cublas_small_gemm(*operands).values()), device="cuda", gpu=props.name, num_sms=props.multi_processor_count,
        cluster=cluster_launch_ok(device_index), bulk_prefetch=pdl_supported(device_index), n_sets=harness.n_input_sets, calls_per_replay=harness.MIN_GRAPH_CALLS, compile_workers=compile_workers,
        sync=torch.cuda.synchronize,
        meta={"capability": f"{cap[0]}.{cap[1]}", "sms": props.multi_processor_count, "cuda": torch.version.cuda,
              "lmkernels": lmkernels.__version__, "git": git_commit()})


def run_cli(args, target: Target | None = None) -> int:
    """`lmkernels tune ll-gemm ...` on the current GPU (or `target`): 0 when every table is complete,
    3 when the budget stopped the run with Ms left (rerun the same command to continue)."""
    target = target or gpu_target(torch.cuda.current_device(), args.compile_workers)
    ms = args.m or list(M_GRID)
    jobs = [(N, K, dtype) for dtype in args.dtype for N, K in args.nk]
    budget = Budget(args.max_minutes)
    if getattr(args, "prefetch_form_only", False):
        print(f"rechecking the prefetch form of {OP}'s tables on {target.gpu}: {len(jobs)} table(s) x {len(ms)} M "
              f"in {args.out}/{OP}", flush=True)
        return report(recheck_forms(jobs, ms, args.out, target, budget=budget), budget, args.max_minutes)
    print(f"tuning {OP} on {target.gpu}: {len(jobs)} table(s) x {len(ms)} M into {args.out}/{OP}"
          + ("" if args.max_minutes is None else f", budget {args.max_minutes:g} min"), flush=True)
    return report(tune(jobs, ms, args.out, target, budget=budget, force=args.force), budget, args.max_minutes)
