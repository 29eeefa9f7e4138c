"""Configs the tuner does not search yet, timed against its winners (GPU; a developer tool).

Session 6 questions (benchmarks/NOTES.md has the predictions):
  big      M = 4096 / 1024: does fp8's fast accumulation close the gap to cuBLASLt / CUTLASS?
           Peers: torch._scaled_mm with use_fast_accum False and True. (Session 6 also timed
           Triton's warp specialisation here, through a WARP_SPECIALIZE key of commit be2935a:
           results/h100/probe_scaled_mm_big.md; the key is gone, see benchmarks/NOTES.md.)
  mid      M = 128: 128-row tiles with split-K, 32-wide tiles, against the tuned 64 x 64.
  decode   M = 16: deeper pipelines and descriptors for the weight stream.
Session 12 (predictions in benchmarks/NOTES.md):
  mid6144      M = 128, N = 6144: tile shapes that keep one program an SM (96 or 48 tiles).
  decode14336  M = 1 and 16, N = 4096, K = 14336: split, depth and width of the weight stream.
  one_launch   every tuned split-K entry, finished by a second launch and in the same launch.
Session 13:
  tail     tuned unsplit entries whose tiles overrun a whole wave of SMs by at most half a wave
           (8B N = 6144, 70B N = 10240): as tuned, with only the overrun tiles split (SPLIT_TAIL,
           tuning.scaled_mm.split_tail_twin), and that persistent.
Session 16:
  int8sync M >= 1024, int8: Triton 3.6 keeps a wgmma asynchronous across K steps only with an fp32
           accumulator (WGMMAPipeline.cpp, "Rule 2.1"), so every int8 K step ends in
           wgmma.wait_group 0 (fp8: wait_group 1). Deeper K steps (BLOCK_K 256) halve the
           waits; 4-warp 128 x 128 tiles at <= 96 KB of stages let two programs share an SM and
           fill each other's waits. fp8 at the tuned int8 config for contrast.
  narrow   M >= 1024: 128 x 64 and 64 x 128 tiles (72 KB in 3 stages: three programs an SM) for
           int8's waits and the wave quantisation of 1024 x 6144 (384 tiles of 128 x 128 on 264
           slots of two an SM); fp8 too, where it trails torch._scaled_mm.
Session 21:
  swap     M <= 64: SWAP_AB (the tile transposed, the weight tile as wgmma's 64-row M side) against
           the shipped tables. Triton 3.6 runs a tile under 64 rows on mma.sync, which on sm90 has
           no fp8 form: e4m3 widened to f16, twice int8's MMAs, and fp8 decode ran 1.1-1.5x int8's
           time at the same tiles (scaled_mm.md). int8 too (wgmma s8 instead of mma.sync s8).
Session 22:
  midswap  M = 48-128: the transposed 64 x 64 x 128 tile in 6 pointer stages (swap's M = 64 winner,
           outside the tuner's space) and its neighbours against the tables (midswap's docstring).
Session 27:
  deepk    M = 1 / 16 on the 8B shapes: decode tiles 512 and 1024 deep in K (check_config allows 256;
           the probe widens ops.scaled_mm.BLOCK_RANGE in its own process) against the tables, and a
           plain read of the same weight in [32, BK] tiles (read_weight: no MMA) as the ceiling for
           each depth. Prediction (before the run): if DRAM row locality holds the decode rows at
           ~2.5 TB/s (a same-bytes copy 2.72 at 4096 x 14336), 512-1024-byte row chunks gain 3-6 %;
           if not, within +-1 %.
  int8swap M = 1 / 16 on the 8B shapes: int8 on the fp8 tables' transposed 16 x 64 tiles (the tuner
           makes SWAP_AB twins for fp8 only; session 21 timed int8's 16 x 32 entries transposed,
           within 1 %, never a 16 x 64 one). Prediction (before the run): int8 then runs as fp8
           does on those tiles (same bytes, wgmma m64n16k32 on s8): 4096 x 14336 M = 16 23.5 ->
           ~23.0 µs, 6144 x 4096 10.9 -> ~10.3, 4096 x 4096 8.1 -> ~7.95.
Every row also gives the time on one input set replayed (the weight stays in L2): the method of
ANCHORS.md's figures (results/h100/probe_scaled_mm_warm.md).
Each config runs through lmkernels.scaled_mm(config=...), CUDA-graph medians over rotated input
sets (the weight read from HBM). int8 variants must equal the first config's output bit for bit;
fp8 variants are checked against the reference with the tuner's bound (fast accumulation with its
own, wider one, as in tests/test_scaled_mm.py).
python benchmarks/probe_scaled_mm.py [big] [mid] [decode] [mid6144] [decode14336] [one_launch] [tail]
    [int8sync] [narrow] [swap] [midswap] [deepk] [int8swap]
"""
import json
import os
import sys
import time

import torch
import triton
import triton.language as tl

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.reference.scaled_mm import scaled_mm as reference
from lmkernels.runtime import config_store
from lmkernels.tuning.scaled_mm import check_output, config, describe, operands


TABLES = os.path.join(config_store.PACKAGED_DIR, "scaled_mm")


def shipped_table(N, K, dtype):
    """The packaged H100 table for (N, K, dtype) as a dict (M as str -> config, and _meta)."""
    with open(os.path.join(TABLES, f"N={N},K={K},device_name=NVIDIA_H100_80GB_HBM3,dtype={dtype}.json")) as f:
        return json.load(f)


def cfg(bm, bn, bk, warps, stages, split=1, access="descriptor", persistent=False, group=8, fast=False):
    return dict(config(bm, bn, bk, group, warps, stages, split, access, persistent), FP8_FAST_ACCUM=fast)


def name(c):
    return describe(c) + (" FAST" if c.get("FP8_FAST_ACCUM") else "")


def probe(M, N, K, fp8, configs):
    # a second's rest first: a section's first config, timed right after milliseconds of GEMMs,
    # ran 8-12 % slow (session 16, int8 1024 x 4096 x 4096: 34.77 µs first, 31.10 for the same
    # config later in the section), as the bench harness found at M = 1 (results/h100/README.md)
    time.sleep(1.0)
    nbytes = M * K + N * K + 2 * M * N + 4 * (M + N)
    sets = [operands(M, N, K, fp8, "cuda", 500 + 13 * i + M) for i in range(n_input_sets(nbytes))]
    a0, b0, sa0, sb0 = sets[0]
    ref = reference(a0, b0, sa0, sb0, torch.bfloat16)
    flops = 2 * M * N * K
    tag = "fp8" if fp8 else "int8"
    print(f"\n### M={M} N={N} K={K} {tag}\n\n| config | µs | T(FL)OP/s | weight TB/s | check | compile s "
          "| µs, one input set (L2-warm) |\n|---|---:|---:|---:|---|---:|---:|", flush=True)
    first = None
    rows = []
    for c in configs:
        t0 = time.time()
        try:
            out = lmkernels.scaled_mm(a0, b0, sa0, sb0, torch.bfloat16, config=c)
            torch.cuda.synchronize()
        except Exception as e:  # a config Triton refuses: say so and go on
            print(f"| {name(c)} | fails: {type(e).__name__}: {str(e)[:120]!r} | | | | |", flush=True)
            continue
        comp = time.time() - t0
        if not fp8:
            ok = "bit-exact" if torch.equal(out, ref) else "DIFFERS"
        else:
            why = check_output(out, ref, a0, b0, sa0, sb0, True, False)
            if why is not None and c.get("FP8_FAST_ACCUM"):
                err = (out.float() - ref.float()).abs().max().item()
                why = f"outside the precise bound (max err {err:.3g})"
            ok = "ok" if why is None else why[:60]
        first = out if first is None else first
        calls = [lambda s=s, c=c: lmkernels.scaled_mm(*s, torch.bfloat16, config=c) for s in sets]
        us = graph_us(calls, reps=20, min_calls=max(len(sets), 8 if M >= 1024 else 32))
        warm = graph_us(calls[:1], reps=20, min_calls=8 if M >= 1024 else 32)
        rows.append((us, name(c)))
        print(f"| {name(c)} | {us:.2f} | {flops / us / 1e6:.1f} | {N * K / us / 1e6:.2f} | {ok} | {comp:.1f} "
              f"| {warm:.2f} |", flush=True)
    if fp8:
        for fast in (False, True):
            calls = [lambda s=s, f=fast: torch._scaled_mm(s[0], s[1], scale_a=s[2], scale_b=s[3],
                                                          out_dtype=torch.bfloat16, use_fast_accum=f) for s in sets]
            us = graph_us(calls, reps=20, min_calls=max(len(sets), 8 if M >= 1024 else 32))
            warm = graph_us(calls[:1], reps=20, min_calls=8 if M >= 1024 else 32)
            rows.append((us, f"torch._scaled_mm fast={fast}"))
            print(f"| torch._scaled_mm use_fast_accum={fast} | {us:.2f} | {flops / us / 1e6:.1f} | "
                  f"{N * K / us / 1e6:.2f} | peer | | {warm:.2f} |", flush=True)
    best = min(rows)
    print(f"\nfastest: {best[1]} {best[0]:.2f} µs")
    del sets
    torch.cuda.empty_cache()


def big():
    for M, N, K in ((4096, 6144, 4096), (4096, 28672, 4096), (1024, 4096, 4096)):
        probe(M, N, K, False, [
            cfg(128, 256, 128, 8, 4, persistent=True),
            cfg(128, 256, 128, 8, 3, persistent=True),
            cfg(256, 128, 128, 8, 4, persistent=True),
            cfg(128, 256, 128, 8, 4, persistent=True, group=16),
        ])
        probe(M, N, K, True, [
            cfg(256, 128, 128, 8, 4),
            cfg(256, 128, 128, 8, 3, persistent=True),
            cfg(256, 128, 128, 8, 4, fast=True),
            cfg(256, 128, 128, 8, 4, persistent=True, fast=True),
            cfg(128, 256, 128, 8, 4, persistent=True, fast=True),
        ])


def mid():
    """Session 12: the M = 128 target (within 1.1x of CUTLASS's 9.0-9.5 µs). The tuned 64 x 64 tiles
    re-read a and b from L2 32 and 2 times: 64 MB of L2 traffic for a 16.8 MB weight. 128-row
    tiles read b once and a N / BLOCK_N times; split-K fills the SMs."""
    for N in (4096, 6144):
        for fp8 in (False, True):
            probe(128, N, 4096, fp8, [
                cfg(64, 64, 128, 4, 4),
                cfg(128, 128, 128, 8, 4, split=2),
                cfg(128, 128, 128, 8, 4, split=4),
                cfg(128, 128, 128, 4, 4, split=4),
                cfg(128, 128, 64, 4, 5, split=4),
                cfg(128, 256, 128, 8, 3, split=4),
                cfg(128, 256, 128, 8, 3, split=8),
                cfg(64, 256, 128, 8, 4, split=4),
                cfg(64, 128, 128, 4, 4, split=2),
                cfg(64, 128, 128, 4, 4, split=4),
                cfg(128, 64, 256, 4, 3, split=2),
            ])


def mid6144():
    """Session 12: M = 128, N = 6144 (ANCHORS' CUTLASS 9.5 µs int8 / 9.4 fp8, L2-warm): 64 x 64 tiles
    are 192 programs on 132 SMs (60 SMs hold two); 96- and 48-tile layouts keep one a SM."""
    for fp8 in (False, True):
        probe(128, 6144, 4096, fp8, [
            cfg(64, 64, 128, 4, 4),
            cfg(64, 64, 256, 4, 3),
            cfg(64, 64, 128, 4, 6),
            cfg(64, 64, 128, 4, 4, access="pointer"),
            cfg(128, 64, 128, 4, 4),
            cfg(128, 64, 128, 4, 5),
            cfg(128, 64, 256, 4, 3),
            cfg(128, 64, 128, 8, 4),
            cfg(64, 128, 128, 4, 4),
            cfg(64, 128, 128, 4, 5),
            cfg(64, 128, 256, 4, 3),
            cfg(128, 128, 128, 8, 4),
            cfg(128, 128, 64, 4, 5),
            cfg(64, 256, 128, 8, 4),
        ])


def decode14336():
    """Session 12: N = 4096, K = 14336 at M = 1 and 16 (58.7 MB of weight, past the L2): fp8 ran
    2.27-2.48 TB/s, int8 2.47-2.52, against the 2.5 target."""
    for M in (1, 16):
        for fp8 in (True, False):
            probe(M, 4096, 14336, fp8, [
                cfg(16, 32, 256, 4, 5, split=2, access="pointer", group=1),
                cfg(16, 32, 256, 4, 5, access="pointer", group=1),
                cfg(16, 32, 256, 4, 7, split=2, access="pointer", group=1),
                cfg(16, 32, 128, 4, 8, split=2, access="pointer", group=1),
                cfg(16, 64, 256, 4, 5, split=2, access="pointer", group=1),
                cfg(16, 64, 256, 4, 5, access="pointer", group=1),
                cfg(16, 32, 256, 2, 5, split=2, access="pointer", group=1),
                cfg(16, 32, 256, 4, 5, split=4, access="pointer", group=1),
                cfg(16, 32, 512, 4, 3, split=2, access="pointer", group=1),
                cfg(16, 128, 256, 4, 4, split=4, access="pointer", group=1),
            ])


def one_launch():
    """Session 12: every shipped H100 table entry with SPLIT_K > 1 (44), its config as tuned, split-K
    finished by a second launch (as tuned) and in the same launch (ONE_LAUNCH, the new default).
    The two must agree bit for bit (both sum the splits 0, 1, ... in order), fp8 included."""
    import glob
    print("\n### split-K: two launches (as tuned) against one\n\n| N x K | dtype | M | config | two launches µs | "
          "one launch µs | one / two | bits |\n|---|---|---:|---|---:|---:|---:|---|", flush=True)
    for path in sorted(glob.glob(os.path.join(TABLES, "*H100*"))):
        with open(path) as f:
            table = json.load(f)
        N, K = table["_meta"]["N"], table["_meta"]["K"]
        fp8 = table["_meta"]["dtype"] == "fp8"
        for m, c in sorted(((int(m), c) for m, c in table.items() if m != "_meta"), key=lambda mc: mc[0]):
            if c.get("SPLIT_K", 1) == 1:
                continue
            nbytes = m * K + N * K + 2 * m * N
            sets = [operands(m, N, K, fp8, "cuda", 700 + 13 * i + m) for i in range(n_input_sets(nbytes))]
            outs, times = [], []
            for one in (False, True):
                cc = dict(c, ONE_LAUNCH=one)
                outs.append(lmkernels.scaled_mm(*sets[0], torch.bfloat16, config=cc))
                times.append(graph_us([lambda s=s, cc=cc: lmkernels.scaled_mm(*s, torch.bfloat16, config=cc)
                                       for s in sets], reps=20, min_calls=max(len(sets), 32)))
            same = "equal" if torch.equal(outs[0], outs[1]) else "DIFFER"
            print(f"| {N} x {K} | {'fp8' if fp8 else 'int8'} | {m} | {describe(c)} | {times[0]:.2f} | {times[1]:.2f} "
                  f"| {times[1] / times[0]:.3f} | {same} |", flush=True)
            del sets
            torch.cuda.empty_cache()


def tail():
    """Session 13: SPLIT_TAIL against the tuned config at the 8B and 70B entries it should help most."""
    from lmkernels.tuning.scaled_mm import split_tail_twin
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for (N, K), ms in (((6144, 4096), (96, 128, 256, 512)), ((10240, 8192), (128, 512))):
        for fp8 in (False, True):
            table = shipped_table(N, K, "fp8" if fp8 else "int8")
            for m in ms:
                c = table[str(m)]
                twin = split_tail_twin(c, m, N, K, sms)
                if twin is None or c.get("SPLIT_K", 1) != 1:
                    print(f"\n(M={m} N={N} K={K}: no tail twin for {describe(c)})")
                    continue
                probe(m, N, K, fp8, [c, twin, dict(twin, PERSISTENT=True)])


def int8sync():
    """Session 16: int8 at the 8B shapes, M = 1024 and 4096: the tuned config, then deeper K steps
    and two-programs-an-SM tiles (module docstring)."""
    for (N, K), ms in (((6144, 4096), (1024, 4096)), ((4096, 4096), (1024, 4096)), ((28672, 4096), (1024,)),
                       ((4096, 14336), (1024,))):
        table = shipped_table(N, K, "int8")
        for m in ms:
            tuned = table[str(m)]
            probe(m, N, K, False, [
                tuned,
                cfg(128, 128, 256, 8, 3), cfg(128, 128, 256, 8, 3, persistent=True),
                cfg(128, 256, 256, 8, 2, persistent=True), cfg(256, 128, 256, 8, 2, persistent=True),
                cfg(128, 256, 128, 8, 3, persistent=True),
                cfg(128, 128, 128, 4, 3), cfg(128, 128, 64, 4, 4), cfg(128, 128, 256, 4, 2),
                cfg(128, 128, 128, 8, 3),
            ])
            probe(m, N, K, True, [dict(tuned, FP8_FAST_ACCUM=True)])


def narrow():
    """Session 16: narrower tiles at M >= 1024 against the shipped tables (module docstring)."""
    for (N, K), ms in (((6144, 4096), (1024, 4096)), ((4096, 4096), (1024,)), ((4096, 14336), (1024,))):
        for fp8 in (False, True):
            table = shipped_table(N, K, "fp8" if fp8 else "int8")
            for m in ms:
                probe(m, N, K, fp8, [table[str(m)]] + [
                    cfg(128, 64, 128, 4, 3, fast=True), cfg(128, 64, 128, 4, 4, fast=True),
                    cfg(64, 128, 128, 4, 3, fast=True), cfg(64, 128, 128, 4, 4, fast=True),
                    cfg(128, 64, 256, 4, 3, fast=True), cfg(128, 128, 128, 4, 3, fast=True),
                    cfg(128, 64, 128, 4, 4, persistent=True, fast=True),
                ])


def swap():
    shapes = ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336))
    for fp8 in (True, False):
        dtype = "fp8" if fp8 else "int8"
        for N, K in shapes:
            table = shipped_table(N, K, dtype)
            for M in ((1, 16, 64) if fp8 else (1, 16)):
                tuned = dict(table[str(M)])
                configs = [tuned] + ([] if tuned.get("WGMMA") else [dict(tuned, SWAP_AB=True)])
                if fp8 and M <= 16:
                    for bm, bn, bk, st in ((16, 64, 256, 5), (16, 64, 128, 8), (16, 128, 256, 4)):
                        tiles = -(-N // bn)
                        fill = 1 if tiles >= 120 else 1 << (-(-120 // tiles) - 1).bit_length()  # tiles x split >= 120
                        configs += [dict(cfg(bm, bn, bk, 4, st, split=sp, access="pointer", group=1, fast=True),
                                         SWAP_AB=True, ONE_LAUNCH=sp > 1) for sp in sorted({1, fill})]
                elif fp8:
                    configs += [dict(cfg(64, bn, 128, 4, st, access=acc, group=8, fast=True), SWAP_AB=True)
                                for bn, st, acc in ((64, 6, "pointer"), (128, 4, "pointer"), (128, 4, "descriptor"))]
                probe(M, N, K, fp8, configs)


def midswap():
    """Session 22 (prediction before the run, benchmarks/NOTES.md): swap's M = 64 rows found the
    transposed 64 x 64 x 128 tile in 6 pointer stages 8-22 % under the fp8 tables at N <= 6144 and
    K = 14336, a tile the tuner never times (its 64-row tiles are >= 128 wide, <= 5 stages,
    descriptors at BLOCK_K 128, and SWAP_AB twins only under 64 rows). Expected: the same at
    M = 48-96 on those shapes, not at N = 28672 (the tables' persistent 64 x 128 won there), within
    ±3 % at M = 128 (session 12: 64 x 64 tiles already run two an SM); the plain (not transposed)
    twin tells whether the tile or the transposition wins; int8 at M = 64 for contrast."""
    for fp8 in (True, False):
        dtype = "fp8" if fp8 else "int8"
        for N, K in ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336)):
            table = shipped_table(N, K, dtype)
            for M in ((48, 64, 96, 128) if fp8 else (64,)):
                tile = dict(cfg(64, 64, 128, 4, 6, access="pointer", fast=fp8))
                configs = [dict(table[str(M)]), tile, dict(tile, SWAP_AB=True),
                           dict(cfg(64, 64, 128, 4, 5, access="pointer", fast=fp8), SWAP_AB=True),
                           dict(cfg(64, 64, 256, 4, 3, access="pointer", fast=fp8), SWAP_AB=True),
                           dict(cfg(64, 128, 128, 4, 5, access="pointer", fast=fp8), SWAP_AB=True)]
                probe(M, N, K, fp8, configs)


@triton.jit
def _read_weight(w_ptr, out_ptr, K, K_PER, BN: tl.constexpr, BK: tl.constexpr):
    # program (n, s) sums rows [n BN, (n + 1) BN) over columns [s K_PER, (s + 1) K_PER), BK at a
    # time with the next tile loaded before the last one is added: only loads, no MMA
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    k0 = tl.program_id(1) * K_PER
    ptrs = w_ptr + rows[:, None].to(tl.int64) * K + k0 + tl.arange(0, BK)[None, :]
    acc = tl.zeros([BN, BK], tl.int32)
    nxt = tl.load(ptrs)
    for k in range(BK, K_PER, BK):
        cur = nxt
        nxt = tl.load(ptrs + k)
        acc += cur.to(tl.int32)
    acc += nxt.to(tl.int32)
    tl.store(out_ptr + tl.program_id(0) * tl.num_programs(1) + tl.program_id(1), tl.sum(acc))


def read_weight(N, K):
    """The weight read alone in [BN, BK] tiles, as the decode tiles stream it: µs and TB/s."""
    ws = [torch.randint(-100, 100, (N, K), dtype=torch.int8, device="cuda")
          for _ in range(n_input_sets(N * K))]
    print(f"\n### read_weight N={N} K={K} ({N * K / 1e6:.1f} MB, {len(ws)} rotated)\n\n"
          "| BN x BK | split | programs | warps | µs | TB/s | µs, one set |\n|---|---:|---:|---:|---:|---:|---:|")
    for bn, bk, split, warps in ((32, 256, 2, 4), (32, 512, 2, 4), (32, 1024, 2, 4), (32, 256, 8, 4),
                                 (32, 1024, 8, 4), (32, 2048, 8, 8), (64, 1024, 4, 8), (16, 1024, 4, 2)):
        if K % (split * bk) or N % bn:
            continue
        out = torch.empty(N // bn * split, dtype=torch.int32, device="cuda")
        grid = (N // bn, split)
        calls = [lambda w=w: _read_weight[grid](w, out, K, K // split, BN=bn, BK=bk, num_warps=warps) for w in ws]
        calls[0]()
        want = ws[0].view(N // bn, bn, split, K // split).to(torch.int64).sum(dim=(1, 3)).flatten()
        assert torch.equal(out.to(torch.int64), want), "read_weight summed wrong"
        us = graph_us(calls, reps=20, min_calls=max(len(ws), 32))
        warm = graph_us(calls[:1], reps=20, min_calls=32)
        print(f"| {bn} x {bk} | {split} | {grid[0] * split} | {warps} | {us:.2f} | {N * K / us / 1e6:.2f} | "
              f"{warm:.2f} |", flush=True)
    del ws
    torch.cuda.empty_cache()


def deepk():
    from lmkernels.ops import scaled_mm as op
    op.BLOCK_RANGE["BLOCK_SIZE_K"] = (32, 1024)
    for N, K in ((4096, 14336), (4096, 4096), (6144, 4096), (28672, 4096)):
        read_weight(N, K)
        for fp8 in (False, True):
            table = shipped_table(N, K, "fp8" if fp8 else "int8")
            for M in (1, 16):
                tuned = dict(table[str(M)])
                base = {k: v for k, v in tuned.items() if k not in ("BLOCK_SIZE_K", "num_stages")}
                configs = [tuned] + [dict(base, BLOCK_SIZE_K=bk, num_stages=st)
                                     for bk, st in ((512, 2), (512, 3), (1024, 2))
                                     if K % (bk * tuned.get("SPLIT_K", 1)) == 0]
                probe(M, N, K, fp8, configs)


def int8swap():
    for N, K in ((4096, 14336), (4096, 4096), (6144, 4096), (28672, 4096)):
        t8, f8 = shipped_table(N, K, "int8"), shipped_table(N, K, "fp8")
        for M in (1, 16):
            swapped = dict(f8[str(M)])
            # the fp8 entry, the same tile with the other split (2 where it has none, else 1), 4 stages
            other = (dict(swapped, SPLIT_K=2, ONE_LAUNCH=True) if swapped.get("SPLIT_K", 1) == 1 else
                     dict(swapped, SPLIT_K=1, ONE_LAUNCH=False))
            configs = [dict(t8[str(M)]), swapped, other, dict(swapped, num_stages=4)]
            probe(M, N, K, False, configs)


def decode():
    for N, K in ((4096, 4096), (6144, 4096), (4096, 14336)):
        probe(16, N, K, False, [
            cfg(16, 32, 256, 4, 5, access="pointer", group=1),
            cfg(16, 32, 256, 4, 7, access="pointer", group=1),
            cfg(16, 32, 128, 4, 8, access="pointer", group=1),
            cfg(16, 32, 256, 4, 5, access="descriptor", group=1),
            cfg(16, 32, 256, 4, 7, access="descriptor", group=1),
            cfg(16, 32, 256, 2, 5, access="pointer", group=1),
            cfg(16, 32, 256, 4, 5, split=2, access="pointer", group=1),
            cfg(16, 64, 256, 4, 5, split=2, access="pointer", group=1),
            cfg(16, 16, 256, 2, 6, access="pointer", group=1),
        ])


if __name__ == "__main__":
    torch.manual_seed(0)
    which = sys.argv[1:] or ["big", "mid", "decode"]
    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}")
    for w in which:
        {"big": big, "mid": mid, "decode": decode, "mid6144": mid6144, "decode14336": decode14336,
         "one_launch": one_launch, "tail": tail,
         "int8sync": int8sync, "narrow": narrow, "swap": swap, "midswap": midswap, "deepk": deepk,
         "int8swap": int8swap}[w]()
