"""`lmkernels tune scaled-mm`: time a pruned set of configs per (N, K, dtype, M) on this GPU and write
the table runtime/config_store.py serves (its docstring has the layout, format and bucket rule).

Per shape and M:
  1. candidates(): the heuristic's config first, then the pruned space (below), normalised by the
     op's check_config and deduplicated, then the twins (SWAP_AB, ONE_LAUNCH, SPLIT_TAIL): 12-109 a M
     on the shipped H100 shapes (fp8 decode 20-76).
  2. compile them all up front: worker processes (spawned, --compile-workers, 8 by default) call
     the op once per candidate so Triton's on-disk cache holds every binary, then this process
     warms each candidate once (a disk-cache load). A candidate that fails here (out of shared
     memory, refused) is skipped, not fatal. Processes, not threads: two threads in one process
     would race on the launchers' caches, and a candidate that faults takes down a worker, not
     the tuner.
  3. time each with CUDA-graph replays over rotated input sets (bench/harness.graph_us: the sets
     overflow L2 4x, so the weight is read from HBM as in a real step). A probe of the heuristic
     sizes the replays (>= 1 ms of calls, at most 32 calls); a quick pass gives every candidate
     ~30 ms of replays, then the REFINE fastest and the heuristic get ~150 ms, in interleaved
     rounds (common.REFINE_ROUNDS; each one's median); the fastest wins.
  4. check the winner's output against the reference (int8 bit-exact; fp8 within a derived bound,
     check_output) and fall back to the next fastest when it fails.
  5. rewrite the file (atomic) with the new M: an interruption loses at most the M in flight, and
     a rerun skips the Ms already in the file (unless --force).

The search space (sized for H100-class GPUs, sm80+ compatible; fp8 at the op's default fast
accumulation, FP8_FAST_ACCUM is not searched):
  M <= 32, weight streaming: BLOCK_M 16 (32 when M > 16), BLOCK_N 32/64/128, BLOCK_K 128/256,
    4 warps, stages 4/6 (BLOCK_K 128) or 3/5 (256), pointer access; SPLIT_K the two powers of two
    that bring the tile count up to the SM count (1 when the tiles fill the SMs), each split >= 2
    K steps: at most 3 x 2 x 2 x 2 = 24.
  M > 32, tiles: BLOCK_M x BLOCK_N x BLOCK_K (warps) among 64x128x128 (4), 64x256x128 (8),
    64x128x64 (4) for M <= 128; 128x128x64 (4), 128x128x128 (8 and 4) for M >= 96; 128x256x64 (8),
    128x256x128 (8), 256x128x64 (8), 256x128x128 (8) at M >= 256; GROUP_SIZE_M 8; each of
    3/4/5 stages within 200 KiB of shared memory (smaller GPUs: their opt-in maximum less 27 KiB;
    the decode space obeys the same limit); SPLIT_K the smallest power of two that
    fills the SMs (>= 4 K steps a split); access descriptor (sm90+, aligned; pointer elsewhere),
    plus pointer for the 64-deep K tiles, plus a persistent variant when there is more than one
    wave of work: at most 21 (M = 48, 64), 42 (96, 128), 47 (>= 256) candidates.
  sm90 with Gluon (Target.wgmma_ok), M > 32: also the WGMMA_TILES on kernels/scaled_mm_wgmma.py that
    fill 3/4 of the SMs unsplit, each within its M range, and from M = 512 the WS_TILES on
    kernels/scaled_mm_ws.py whose tiles are at least one an SM: at most 60 a M.
  sm90, session 22: at M = 33-128 the MID_TILES (64 x 64 x 128 in 6 pointer stages), plain and
  transposed; from M = 2048 every WS_TILES candidate again with GROUP_SIZE_M 16.
  fp8 (session 21) and int8 (session 27): each candidate whose tile is under 64 rows and at least 64
  wide is timed again transposed (SWAP_AB: the weight tile as wgmma's M side; a 16-row tile
  otherwise runs on mma.sync, which has no sm90 fp8 form); at most 16 more a M.
  On CUDA every split-K candidate is timed twice: its splits summed by a second launch (the op's
  default) and in the same launch (ONE_LAUNCH; neither wins everywhere: from 0.84x to 1.33x the
  two-launch time over the 44 split entries of the first H100 tables,
  results/h100/probe_scaled_mm_one_launch.md), and past the decode sizes every unsplit one whose
  tiles run at most half a wave past a whole wave is timed again with only those tiles split
  (SPLIT_TAIL, split_tail_twin).
"""
from __future__ import annotations

import functools
import importlib
import json
import os
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..ops.scaled_mm import tail_split, ws_smem_bytes
from ..verify import fp8_mma_rel
from .common import (REFINE, Budget, CompilePool, Progress, first_passing, git_commit, rank, record, report,
                     table_meta, tune_tables)

OP = "scaled_mm"
M_GRID = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 1536, 2048, 3072, 4096)
OUT_DTYPE = torch.bfloat16  # tables are tuned for bf16 outputs (vLLM's W8A8 default); fp16 is the same bytes
SMALL_M = 32
SMEM_BUDGET = 200 * 1024  # H100 gives a block 227 KiB; ~27 KiB stay free for the epilogue's layout change
SMEM_SPARE = 27 * 1024    # other GPUs: their opt-in maximum less the same spare (A100: 137 KiB of stages)
# (BM, BN, BK, warps, smallest M, largest M): 64-row tiles while M <= 128 (at most 2 row tiles,
# so a 128-row tile would be half empty), 128 x 256 and 256 x 128 once M >= 256 (each weight tile
# is re-read M / BM times: bigger tiles halve that), for both dtypes (fp8's default fast
# accumulation keeps one accumulator, as int8 does: 128 x 256 at 8 warps fits without spills).
# 8 warps from 64 x 256 or 128 x 128 x 128 up; 128 x 128 x 128 at 4 warps too (one warpgroup of
# 128 rows: fp8's winner at 8 of the 40 M >= 1024 entries of the session-16 tables).
_BIG = 2**62
TILES = ((64, 128, 128, 4, 33, 128), (64, 256, 128, 8, 33, 128), (64, 128, 64, 4, 33, 128),
         (128, 128, 64, 4, 96, _BIG), (128, 128, 128, 8, 96, _BIG), (128, 128, 128, 4, 96, _BIG),
         (128, 256, 64, 8, 256, _BIG), (128, 256, 128, 8, 256, _BIG),
         (256, 128, 64, 8, 256, _BIG), (256, 128, 128, 8, 256, _BIG))


# sm90 only (Target.wgmma_ok): tiles for the Gluon kernel (kernels/scaled_mm_wgmma.py), which keeps a
# wgmma group in flight across K steps for int8 too; one tile a program, never split, so timed only
# where the tiles fill at least 3/4 of the SMs. (BM, BN, BK, warps, stages, smallest M, largest M).
# H100, int8 at M = 1024 / 4096 (results/h100/probe_wgmma.md): 128 x 256 x 64 in 5 stages fastest at 5
# of the 8 Llama-3-8B rows, 128 x 256 x 128 in 3 at 2, 128 x 128 x 128 in 3 at 1 (1024 x 4096 x 4096)
# Session 18, tiles of two accumulators (ops/scaled_mm.wgmma_n_split; probe_wgmma_split.md, N = 6144):
# 64 x 96 at M = 128 (128 tiles: one wave), 64 x 192 at 256, 128 x 192 at 512-1024; slower per FLOP
# than 128 x 256 (0.87x at M = 4096), so only to M = 2048
WGMMA_TILES = ((64, 128, 128, 4, 4, 33, 128), (128, 128, 128, 8, 3, 96, _BIG), (128, 128, 128, 8, 4, 96, _BIG),
               (128, 256, 64, 8, 4, 256, _BIG), (128, 256, 64, 8, 5, 256, _BIG), (128, 256, 128, 8, 3, 256, _BIG),
               (256, 128, 64, 8, 4, 256, _BIG), (256, 128, 128, 8, 3, 256, _BIG),
               (64, 96, 128, 4, 6, 33, 128), (64, 96, 128, 4, 8, 33, 128), (64, 192, 128, 4, 6, 96, 512),
               (128, 192, 128, 8, 5, 256, 2048))

# sm90 only, session 19: the persistent warp-specialised kernel (kernels/scaled_mm_ws.py), where the
# tiles are at least one an SM. (BM, BN, BK, warps, stages, PINGPONG, smallest M). H100 at the 8B
# rows, M = 1024 / 4096 (results/h100/probe_ws.md): int8 128 x 256 x 128 at 8 warps in 4 stages
# fastest at 4 rows, the ping-pong 128 x 128 x 128 in 5 at 3 (1024 x 6144 x 4096: 36.8 µs, the
# session-18 table 44.9); fp8 the ping-pong one at 1024 x 6144 and 4096 x 28672. Session 20: the
# 128 x 256 x 128 one in 3 stages with TMA_STORE (its 64 KB bf16 output tile beside the stages), fp8
# 4096 x 28672 x 4096 810 -> 682 µs, torch._scaled_mm 724 (results/h100/probe_ws_tma.md).
# (BM, BN, BK, warps, stages, PINGPONG, TMA_STORE, smallest M)
WS_TILES = ((128, 256, 128, 8, 4, False, False, 512), (128, 256, 64, 8, 5, False, False, 512),
            (128, 128, 128, 4, 5, True, False, 512), (128, 128, 128, 4, 4, True, False, 512),
            (128, 256, 128, 8, 3, False, True, 512))


# Session 22: 64 x 64 x 128 in 6 pointer stages at M = 33-128, plain and transposed (SWAP_AB), both
# dtypes: outside the space above (its 64-row tiles are >= 128 wide, <= 5 stages, descriptors at
# BLOCK_K 128). H100 (results/h100/probe_midswap.md), fp8 rotated: 4096 x 4096 M = 128 12.39 ->
# 9.85 µs (transposed; plain 10.05), 6144 x 4096 M = 64 15.58 -> 11.91, 4096 x 14336 M = 96 31.14
# -> 28.82; not at N = 28672 (the persistent 64 x 128 / 64 x 256 tiles 3-15 % faster).
# (BM, BN, BK, warps, stages, smallest M, largest M)
MID_TILES = ((64, 64, 128, 4, 6, 33, 128),)
# Session 22: the persistent kernel's tiles again with GROUP_SIZE_M 16 from M = 2048 (16 row tiles
# share a weight tile's L2 lines; fp8 4096 x 28672 x 4096 at 128 x 256 x 128: 763 -> 745 µs,
# results/h100/probe_ws_epilogue.md)
WS_GROUP16_M = 2048


def config(bm, bn, bk, group, warps, stages, split=1, access="pointer", persistent=False) -> dict:
    return {"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": group,
            "num_warps": warps, "num_stages": stages, "SPLIT_K": split, "ACCESS": access, "PERSISTENT": persistent}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _splits(tiles: int, num_sms: int) -> tuple[int, ...]:
    """SPLIT_K values worth timing: the smallest power of two s <= 8 with tiles * s >= SMs, and s / 2
    (one wave a little short of the SMs can beat a wave and a bit); 1 when the tiles fill the SMs."""
    if tiles >= num_sms:
        return (1,)
    s = 1
    while tiles * s < num_sms and s < 8:
        s *= 2
    return tuple(sorted({max(1, s // 2), s}))


def _decode_space(M, N, K, num_sms, smem):
    bm = 16 if M <= 16 else 32
    for bn in (32, 64, 128):
        for split in _splits(_cdiv(M, bm) * _cdiv(N, bn), num_sms):
            for bk in (128, 256):
                if _cdiv(K, bk * split) < 2:  # a split with one K step has nothing to pipeline
                    continue
                for stages in ((4, 6) if bk == 128 else (3, 5)):
                    if stages * (bm + bn) * bk <= smem:
                        yield config(bm, bn, bk, 1, 4, stages, split)


def _fill_split(tiles: int, num_sms: int, k_steps: int) -> int:
    """The smallest power of two s <= 8 with tiles * s >= SMs while each split keeps >= 4 K steps:
    at M = 256, N = 4096, 128 x 256 tiles are 32 programs, a quarter of an H100's 132 SMs."""
    s = 1
    while tiles * s < num_sms and s < 8 and k_steps >= 8 * s:
        s *= 2
    return s


def _wgmma_space(M, N, num_sms, smem):
    for bm, bn, bk, warps, stages, lo, hi in WGMMA_TILES:
        if lo <= M <= hi and 4 * _cdiv(M, bm) * _cdiv(N, bn) >= 3 * num_sms and stages * (bm + bn) * bk <= smem:
            yield dict(config(bm, bn, bk, 8, warps, stages, 1, "descriptor"), WGMMA=True)
    for bm, bn, bk, warps, stages, pingpong, tma_store, lo in WS_TILES:
        cfg = dict(config(bm, bn, bk, 8, warps, stages, 1, "descriptor", True), WGMMA=True, PINGPONG=pingpong,
                   TMA_STORE=tma_store)
        if M >= lo and _cdiv(M, bm) * _cdiv(N, bn) >= num_sms and \
                ws_smem_bytes(cfg, OUT_DTYPE.itemsize) <= smem:
            yield cfg
            if M >= WS_GROUP16_M:
                yield dict(cfg, GROUP_SIZE_M=16)


def _tile_space(M, N, K, fp8, num_sms, descriptor_ok, smem, wgmma=False):
    if wgmma and descriptor_ok:
        yield from _wgmma_space(M, N, num_sms, smem)
    for bm, bn, bk, warps, stages, lo, hi in MID_TILES if wgmma else ():
        if lo <= M <= hi and stages * (bm + bn) * bk <= smem:
            tile = config(bm, bn, bk, 8, warps, stages)
            yield tile
            yield dict(tile, SWAP_AB=True)
    for bm, bn, bk, warps, lo, hi in TILES:
        if not lo <= M <= hi:
            continue
        tiles = _cdiv(M, bm) * _cdiv(N, bn)
        split = _fill_split(tiles, num_sms, _cdiv(K, bk))
        # pointer loads beside descriptors only for 64-deep K tiles (the 8B tables: pointers won
        # once in 36 tiled Ms, at 128 x 128 x 64); persistent programs only pay with more than
        # one wave of work items to walk
        access = ("pointer", "descriptor") if descriptor_ok and bk == 64 else \
            ("descriptor",) if descriptor_ok else ("pointer",)
        modes = [(a, False) for a in access] + ([(access[-1], True)] if tiles * split > num_sms else [])
        # every depth that fits: 3 stages of 128 x 128 x 128 (96 KB) let two programs share an SM,
        # which int8 needs (Triton 3.6 waits for each int8 wgmma before the next K step; the
        # other program's MMAs fill that wait): 1.05-1.27x over the tables' configs at M = 1024
        # (results/h100/probe_int8sync.md)
        fits = [s for s in (3, 4, 5) if s * (bm + bn) * bk <= smem]
        for stages in fits:
            for a, persistent in modes:
                yield config(bm, bn, bk, 8, warps, stages, split, a, persistent)


def candidates(M: int, N: int, K: int, *, num_sms: int, descriptor_ok: bool, fp8: bool = False,
               heuristic: dict | None = None, normalize: Callable | None = None,
               smem: int = SMEM_BUDGET, one_launch: bool = False, split_tail: bool = False,
               wgmma: bool = False) -> list[dict]:
    """The configs timed for one M: the heuristic's first, then the pruned space (module docstring),
    each normalised (normalize: the op's check_config; refused ones are dropped) and deduplicated;
    one_launch: then each split-K one again with ONE_LAUNCH True; split_tail: then, past the
    decode sizes, each unsplit one whose tiles overrun their last whole wave by 1 to num_sms / 2
    tiles again with those tiles split (SPLIT_TAIL, split_tail_twin); wgmma (sm90 with descriptors):
    the WGMMA_TILES that fill the SMs too.
    FP8_FAST_ACCUM is never searched: every fp8 table entry has the op's default accumulation, so
    the accuracy a caller gets does not depend on which config a table picked."""
    space = (_decode_space(M, N, K, num_sms, smem) if M <= SMALL_M
             else _tile_space(M, N, K, fp8, num_sms, descriptor_ok, smem, wgmma))
    out, seen = [], set()
    for i, cfg in enumerate(([heuristic] if heuristic is not None else []) + list(space)):
        if normalize is not None:
            try:
                cfg = normalize(cfg) or cfg
            except ValueError:
                if i == 0 and heuristic is not None:
                    raise
                continue
        key = json.dumps(cfg, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(cfg)
    # transposed tiles (SWAP_AB) where the tile's M side is under wgmma's 64 rows and its N side fills them:
    # fp8 since session 21, int8 since session 27 (its 16-row tiles have a native mma.sync form, but
    # transposed 16 x 64 ran 6144 x 4096 M = 16 in 10.48 µs against the table's 11.03 and 4096 x 14336
    # 23.30 / 23.55, results/h100/probe_int8swap.md)
    twins = [dict(c, SWAP_AB=True) for c in out
             if not c.get("WGMMA") and c["BLOCK_SIZE_M"] < 64 <= c["BLOCK_SIZE_N"] and not c.get("SWAP_AB")]
    if one_launch:  # the transposed split tiles too (session 21: 16 x 64 split 2 at 4096 x 14336, 23.24 -> 22.99 µs)
        twins += [dict(c, ONE_LAUNCH=True) for c in out + twins if c.get("SPLIT_K", 1) > 1 and not c.get("ONE_LAUNCH")]
    if split_tail and M > SMALL_M:
        twins += [t for t in (split_tail_twin(c, M, N, K, num_sms) for c in out
                              if c.get("SPLIT_K", 1) == 1 and not c.get("WGMMA")) if t]
    for twin in twins:
        key = json.dumps(twin, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(twin)
    return out


def split_tail_twin(cfg: dict, M: int, N: int, K: int, num_sms: int) -> dict | None:
    """cfg with only the tiles past its last whole wave split (SPLIT_TAIL), or None where that
    cannot pay: no whole wave, or more than half a wave over (rem tiles x SPLIT_K parts must fit
    one wave beside the whole tiles: SPLIT_K = num_sms // rem, at most 8, each part >= 2 K tiles).
    M = 128, N = 6144 in 64 x 64 tiles: 192 = 132 + 60, SPLIT_K 2, so no SM has more than 1.5
    tiles' work where the plain grid gave 60 of them 2 (on the H100 that lost: those tiles run two
    an SM anyway; it won at 128-wide tiles, which is why the tuner times both)."""
    tiles = -(-M // cfg["BLOCK_SIZE_M"]) * -(-N // cfg["BLOCK_SIZE_N"])
    split = tail_split(tiles, num_sms, -(-K // cfg["BLOCK_SIZE_K"]), 8, 2)
    return dict(cfg, SPLIT_K=split, ONE_LAUNCH=True, SPLIT_TAIL=True) if split >= 2 else None


def describe(cfg: dict) -> str:
    """16x64x256 g1 w4 s5 split4 pointer: a config in one short word list."""
    s = (f"{cfg['BLOCK_SIZE_M']}x{cfg['BLOCK_SIZE_N']}x{cfg['BLOCK_SIZE_K']} g{cfg['GROUP_SIZE_M']} "
         f"w{cfg['num_warps']} s{cfg['num_stages']}")
    if cfg.get("SPLIT_K", 1) != 1:
        s += (f" split{cfg['SPLIT_K']}" + (" one-launch" if cfg.get("ONE_LAUNCH") else "")
              + (" tail" if cfg.get("SPLIT_TAIL") else ""))
    return (s + f" {cfg.get('ACCESS') or 'auto'}" + (" persistent" if cfg.get("PERSISTENT") else "")
            + (" wgmma" if cfg.get("WGMMA") else "") + (" ping-pong" if cfg.get("PINGPONG") else "")
            + (" tma-store" if cfg.get("TMA_STORE") else "") + (" swap-ab" if cfg.get("SWAP_AB") else ""))


def _ulp(x: torch.Tensor, dtype) -> torch.Tensor:
    """One unit in the last place of `dtype` at |x| (x in [2^(e-1), 2^e) has ulp 2^(e-1) * eps)."""
    _, e = torch.frexp(x)
    return torch.ldexp(torch.full_like(x, torch.finfo(dtype).eps), e - 1)


def check_output(out, ref, a, b, sa, sb, fp8: bool, interpreter: bool) -> str | None:
    """None when `out` (the op) matches `ref` (the reference) closely enough, else what is wrong.

    int8 on a GPU: bit-exact (int32 sums are exact, the epilogue's fp32 steps follow the reference's
    order). Under the interpreter its fp32 -> bf16 cast truncates where the reference rounds to
    nearest: 2 ulps. fp8: every e4m3 x e4m3 product is exact in fp32; a sum of K fp32 terms is off
    by at most (K - 1) u sum|a b| in any order (u = 2^-24), once in the kernel and once in the
    reference: 2 K u; the sm90 MMA's own accumulator keeps ~14 significand bits (DeepSeek-V3's
    measurement), and with fast accumulation (the default) the whole K stays there: K / 32 adds of
    at most 2^-13 sum|a b| each (lmkernels.verify.fp8_mma_rel), doubled for margin (the tests
    allow 8x). Scaled
    by |sa sb|, plus the final rounding: results that close can round to neighbours, 1 ulp (2
    under the interpreter)."""
    if out.shape != ref.shape or out.dtype != ref.dtype:
        return f"output {tuple(out.shape)} {out.dtype} != reference {tuple(ref.shape)} {ref.dtype}"
    o, r = out.float(), ref.float()
    if not bool(torch.isfinite(o).all()):
        return f"{int((~torch.isfinite(o)).sum())} non-finite outputs (the reference has none)"
    if not fp8 and not interpreter:
        if torch.equal(out, ref):
            return None
        diff = (o - r).abs()
        return (f"int8 result must be bit-exact; {int((diff > 0).sum())} of {diff.numel()} elements differ "
                f"(max |diff| {float(diff.max()):g})")
    tol = (2.0 if interpreter else 1.0) * _ulp(r, out.dtype)
    if fp8:
        K = a.shape[1]
        mag = (a.float().abs() @ b.float().abs()) * (sa.float() * sb.float()).abs()
        tol = tol + mag * (2 * K * 2.0**-24 + 2 * fp8_mma_rel(K))
    err = (o - r).abs()
    bad = err > tol
    if bool(bad.any()):
        i = int((err - tol).argmax())
        return (f"{int(bad.sum())} of {err.numel()} elements outside the tolerance; worst at flat index {i}: "
                f"|{float(o.flatten()[i]):g} - {float(r.flatten()[i]):g}| > {float(tol.flatten()[i]):g}")
    return None


def quantized(rows: int, cols: int, fp8: bool, device, gen) -> torch.Tensor:
    """Fresh random [rows, cols] operand data, never zeros: int8 uniform over [-128, 127]; e4m3 from
    normals of sigma 64, spread over its range (max 448) as a quantiser's x / scale would be."""
    if fp8:
        return (torch.randn(rows, cols, device=device, generator=gen) * 64).clamp(-448, 448).to(torch.float8_e4m3fn)
    return torch.randint(-128, 128, (rows, cols), device=device, dtype=torch.int8, generator=gen)


def scales(M: int, N: int, device, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 per-token scale_a [M, 1] and per-channel scale_b [1, N] in [0.005, 0.015): int8 sums of
    ~1e5-1e6 land at ~10-100 in bf16, far from its range's ends."""
    return (torch.rand(M, 1, device=device, generator=gen) * 0.01 + 0.005,
            torch.rand(1, N, device=device, generator=gen) * 0.01 + 0.005)


def operands(M, N, K, fp8, device, seed):
    """(a [M, K], b = w.t() of a row-major [N, K] weight, scale_a [M, 1], scale_b [1, N]): the bench's
    and the tuner's inputs."""
    g = torch.Generator(device=device).manual_seed(seed)
    a, w = quantized(M, K, fp8, device, g), quantized(N, K, fp8, device, g)
    return (a, w.t(), *scales(M, N, device, g))


@dataclass
class Target:
    """Everything the tuner touches outside itself; gpu_target() builds the real one, tests fakes."""
    op: Callable           # op(a, b, scale_a, scale_b, out_dtype, config=cfg) -> out
    reference: Callable    # reference(a, b, scale_a, scale_b, out_dtype) -> out
    heuristic: Callable    # heuristic(M, N, K, fp8) -> config dict
    timer: Callable        # timer(cfg, calls, reps) -> µs per call; calls: zero-argument callables
    check_config: Callable | None = None
    check: Callable = check_output
    device: str = "cuda"
    gpu: str = "cpu"       # the device's name (file names use it with '_' for ' ')
    num_sms: int = 132
    descriptor_ok: bool = False
    wgmma_ok: bool = False                 # sm90 with Gluon: WGMMA_TILES are candidates too
    one_launch_ok: bool = False            # split-K candidates also timed finishing in one launch
    smem: int = SMEM_BUDGET                # shared memory the stages of a candidate may take
    interpreter: bool = False
    n_sets: Callable = lambda nbytes: 1    # input sets to rotate for a call touching nbytes
    calls_per_replay: int = 32             # graph_us's MIN_GRAPH_CALLS: how many calls one replay holds
    compile_workers: int = 0
    op_path: str | None = None             # "module:function" the compile workers import
    limit: int | None = None               # at most this many candidates per M (tests)
    meta: dict = field(default_factory=dict)
    sync: Callable = lambda: None
    _pool: object = None

    def warm(self, cands, M, N, K, fp8, inputs) -> dict:
        """Compile every candidate before timing (common.CompilePool); {index: why} for those that
        cannot run."""
        if self._pool is None:
            self._pool = CompilePool(self.compile_workers if self.op_path else 0)

        def run_here(i):
            self.op(*inputs, OUT_DTYPE, config=cands[i])
            self.sync()
        return self._pool.warm("lmkernels.tuning.scaled_mm:compile_one",
                               [(self.op_path, self.device, M, N, K, fp8, c) for c in cands], run_here)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


_child_inputs: dict = {}


def compile_one(op_path, device, M, N, K, fp8, cfg) -> None:
    """In a compile worker: one call of the op with this config (Triton compiles it into its disk
    cache). Uninitialised operands: only the binary matters here."""
    mod, name = op_path.split(":")
    op = getattr(importlib.import_module(mod), name)
    key = (device, M, N, K, fp8)
    if key not in _child_inputs:
        _child_inputs.clear()
        dt = torch.float8_e4m3fn if fp8 else torch.int8
        _child_inputs[key] = (torch.empty(M, K, dtype=dt, device=device), torch.empty(N, K, dtype=dt, device=device).t(),
                              torch.ones(M, 1, device=device), torch.ones(1, N, device=device))
    op(*_child_inputs[key], OUT_DTYPE, config=cfg)
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gpu_target(device_index: int = 0, compile_workers: int = 8) -> Target:
    """The real target: lmkernels.scaled_mm on CUDA device `device_index`, timed with graph_us."""
    import triton

    import lmkernels
    from ..bench import harness
    from ..ops import scaled_mm as ops_mm
    from ..runtime import access
    reference = importlib.import_module("lmkernels.reference.scaled_mm").scaled_mm
    torch.cuda.set_device(device_index)
    props = torch.cuda.get_device_properties(device_index)
    cap = torch.cuda.get_device_capability(device_index)
    return Target(
        op=ops_mm.scaled_mm, reference=reference,
        heuristic=lambda M, N, K, fp8: ops_mm.heuristic_config(M, N, K, fp8, device_index),
        timer=lambda cfg, calls, reps: harness.graph_us(calls, reps=reps, min_calls=len(calls)),
        check_config=getattr(ops_mm, "check_config", None), device="cuda", gpu=props.name,
        num_sms=props.multi_processor_count,
        smem=min(SMEM_BUDGET, (getattr(props, "shared_memory_per_block_optin", 0) or 48 * 1024) - SMEM_SPARE),
        descriptor_ok=(cap >= (9, 0) and not torch.version.hip and access.unavailable_reason(access.DESCRIPTOR) is None),
        one_launch_ok=not torch.version.hip,
        wgmma_ok=ops_mm.wgmma_unavailable(device_index) is None,
        n_sets=harness.n_input_sets, calls_per_replay=harness.MIN_GRAPH_CALLS, compile_workers=compile_workers,
        op_path="lmkernels.ops.scaled_mm:scaled_mm", sync=torch.cuda.synchronize,
        meta={"capability": f"{cap[0]}.{cap[1]}", "sms": props.multi_processor_count, "cuda": torch.version.cuda,
              "torch": torch.__version__, "triton": triton.__version__, "lmkernels": lmkernels.__version__,
              "git": git_commit()})


def _tune_m(target, sets, M, N, K, fp8, show) -> tuple[dict, dict]:
    """Search one M: (winner config, its _meta['measured'] record)."""
    norm = target.check_config
    heur = target.heuristic(M, N, K, fp8)
    cands = candidates(M, N, K, num_sms=target.num_sms, descriptor_ok=target.descriptor_ok and K % 16 == 0
                       and N % 8 == 0, fp8=fp8, heuristic=heur, normalize=norm, smem=target.smem,
                       one_launch=target.one_launch_ok, split_tail=target.one_launch_ok,
                       wgmma=target.wgmma_ok)[:target.limit]
    show(f"compile {len(cands)}")
    failed = target.warm(cands, M, N, K, fp8, sets[0])
    if 0 in failed:
        raise RuntimeError(f"M={M} N={N} K={K}: the heuristic config {cands[0]} does not run: {failed[0]}")

    def time_one(i, n_calls, reps):
        """The timer over n_calls calls a replay: the input sets in turn, whole rotations."""
        calls = [functools.partial(target.op, a, b, sa, sb, OUT_DTYPE, config=cands[i]) for a, b, sa, sb in sets]
        try:
            return target.timer(cands[i], calls * (n_calls // len(calls)), reps)
        except Exception as e:
            failed[i] = f"timing: {type(e).__name__}: {str(e)[:200]}"
            return None

    ranked, times, replays = rank(len(cands), time_one, show, target.calls_per_replay, len(sets), failed,
                                  f"M={M} N={N} K={K}")
    a, b, sa, sb = sets[0]
    ref = target.reference(a, b, sa, sb, OUT_DTYPE)
    i, rejected = first_passing(
        ranked, lambda i: target.check(target.op(a, b, sa, sb, OUT_DTYPE, config=cands[i]), ref, a, b, sa, sb, fp8,
                                       target.interpreter),
        lambda i: describe(cands[i]), f"M={M} N={N} K={K} {'fp8' if fp8 else 'int8'}", show)
    return cands[i], record(times, i, len(cands), failed, rejected, replays)


def _meta(target, N, K, dtype, grid, entries, measured) -> dict:
    return table_meta(OP, N, K, dtype, target.gpu, target.meta, grid, entries, measured,
                      out_dtype=str(OUT_DTYPE).split(".")[-1],
                      operands="a [M, K] row-major, b = w.t() of a row-major [N, K] weight, fp32 scale_a [M, 1] "
                               "and scale_b [1, N]",
                      timing="CUDA-graph replays over input sets rotated past 4x L2 (bench/harness.graph_us), median "
                             f"µs a call: a quick pass, then the {REFINE} fastest and the heuristic with more replays "
                             "in interleaved rounds (the median of each)",
                      bucket_rule="smallest tuned M >= M, else the largest tuned M")


def _input_sets(target, weights, M, N, K, fp8) -> list:
    """The input sets one M rotates through: enough that a replay overflows L2 (target.n_sets of the
    bytes a call moves: a, w, out, scales), each with its own weight (kept across the shape's Ms in
    `weights`), activations and scales."""
    k = target.n_sets(M * K + N * K + 2 * M * N + 4 * (M + N))
    while len(weights) < k:
        g = torch.Generator(device=target.device).manual_seed(7919 * len(weights) + 1)
        weights.append(quantized(N, K, fp8, target.device, g).t())
    sets = []
    for s in range(k):
        g = torch.Generator(device=target.device).manual_seed(104729 + 31 * s + M)
        sets.append((quantized(M, K, fp8, target.device, g), weights[s], *scales(M, N, target.device, g)))
    return sets


def tune(jobs, ms, out_dir: str, target: Target, *, budget: Budget | None = None, force: bool = False,
         progress: Progress | None = None, log=functools.partial(print, flush=True)) -> dict:
    """Tune jobs [(N, K, dtype)] at every M in ms, one table file per job under out_dir/scaled_mm/
    (common.tune_tables: resumable, within the budget)."""
    return tune_tables(jobs, ms, out_dir, op=OP, gpu=target.gpu,
                       tune_m=lambda sets, M, N, K, dtype, show: _tune_m(target, sets, M, N, K, dtype == "fp8", show),
                       input_sets=lambda weights, M, N, K, dtype: _input_sets(target, weights, M, N, K, dtype == "fp8"),
                       meta=lambda *a: _meta(target, *a), describe=describe, budget=budget, force=force,
                       progress=progress, log=log, close=target.close)


def run_cli(args, target: Target | None = None) -> int:
    """`lmkernels tune scaled-mm ...` on the current GPU (or `target`): 0 when every table is
    complete, 3 when the budget stopped the run with Ms left (rerun the same command to continue)."""
    target = target or gpu_target(torch.cuda.current_device(), args.compile_workers)
    ms = args.m or list(M_GRID)
    jobs = [(N, K, dtype) for dtype in args.dtype for N, K in args.nk]  # dtype-major: one set of kernels at a time
    budget = Budget(args.max_minutes)
    print(f"tuning {OP} on {target.gpu}: {len(jobs)} table(s) x {len(ms)} M into {os.path.join(args.out, OP)}"
          + ("" if args.max_minutes is None else f", budget {args.max_minutes:g} min"), flush=True)
    result = tune(jobs, ms, args.out, target, budget=budget, force=args.force)
    return report(result, budget, args.max_minutes)
