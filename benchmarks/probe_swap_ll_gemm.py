"""Probe: ll_gemm's split-K dot tiles transposed (SWAP_AB: acc^T = w x^T, the weight rows on the MMA's
M side) at M = 8 / 16 on the four big routers, bf16 and fp8 (H100, CUDA-graph medians, PDL chain,
weights rotating over 4x the L2 as `lmkernels bench small_gemm` times them, and one input set).

Why: the shipped tiles put x's rows on the MMA's M side, padded to 16 (mma.sync m16n8k16 on sm90,
whatever M is), with 16 or 32 weight rows a program. Transposed, two shapes open up that the
unswapped kernel cannot have:
  - 64 weight rows a program on sm90's wgmma (m64n16k16 bf16; the sm90 PTX of 16 x 64 x 256 has 16
    wgmma and no mma.sync), whose loads Triton pipelines into shared memory like its large GEMMs,
    and which reads x once per 64 weight rows instead of per 16 (a quarter of the L2 traffic of x);
  - at M <= 8, x's rows on the mma's n8 side: 8 x 16 x 512 with 4 chains compiles to 8 mma.sync a
    K tile where the padded 16-row tile has 16.
fp8 is widened to fp16 before the MMA as in the unswapped tiles (exact products, fp32 sums).

Prediction (session 33, written before the first run):
  - bf16, 64-row wgmma tiles at the best split (7 or 14): -0.2 to -0.4 µs at M = 16 on 7168 x 256
    (4.38 -> ~4.1) and 7168 x 384 (5.72 -> ~5.4); not enough for 2x cuBLAS (~3.7 / 3.9 µs) there,
    and the split-K finish (~1.1 µs over the chain floor, probe_split_poll.md) stays.
  - M = 8 on mma's n8 side (8 x 16 x 512, chains 4): -0.1 to -0.2 µs (half the mma.sync).
  - fp8 widened on wgmma tiles: like bf16; fed to wgmma as e4m3 unwidened (a probe-only switch,
    m64n16k32, no conversions): -0.3 to -0.5 µs more on fp8 M = 8-16 (7168 x 256 3.80 / 3.84 ->
    ~3.3), at a relative error up to ~1e-5 instead of ~1e-7.
If the wgmma tiles win, SWAP_AB stays a config key, enters the tuner's space and the tables are
re-tuned at M = 8-16; if not, it is removed again (as LOAD_AHEAD was, session 32).

Outcome (results/h100/probe_swap_ll_gemm.md): the first prediction wrong, the second right in
sign and 3-5x larger in size.
  - Every 64- and 128-row tile lost, bf16 and fp8, M = 8 and 16: 4.7-24 µs against the shipped
    2.95-5.70 (7168 x 256 M = 16: 6.9-24 against 3.92 fp8 / 4.43 bf16). Not pursued; the unwidened e4m3 run, which
    only those tiles would use, was not made and its switch was removed.
  - The shipped tile transposed with 8 rows at M = 8: 7168 x 256 4.35 -> 3.83 µs (fp8 3.86 -> 3.47),
    7168 x 384 5.70 -> 4.77 (fp8 4.06 -> 4.01), with the same error. SWAP_AB stayed: a config key,
    twins in the tuner's space at M <= 8, the heuristic's split-K tiles to M = 8; the re-tune
    (tune_ll_gemm_s33_swap.log) took it at 8 of 42 entries (M = 4 and 8), 1.11-1.29x faster than
    the heuristic there.

Held-out mode (`heldout`): the heuristic against the one before session 33 (the 16-row tile: 32
columns above N = 256, one program an SM), on shapes without a table, bf16, two alternated rounds.
It ran when the heuristic took the 8-row transposed tile at M = 5-16 (M tiled above 8, the splits
for about one program an SM counting the m-tiles) wherever it takes split-K dot tiles. Prediction (before the run): the new one 0-0.3 µs faster at M = 12-16 and
0.3-0.9 at M = 6 (the tuned gains, 1.03-1.29x), nowhere more than 0.1 µs slower.
Outcome (results/h100/probe_swap_ll_gemm_heldout.md): wrong. At M = 12-16 the M-tiled rule won at
K <= 3072 and N = 320 (0.78-0.95x) but lost at K = 5120-14336 (1.02-1.23x: half the splits of the
16-row rule, so twice the K steps a program) and at N = 512 (1.19-1.21x); at M = 6 it won on
8192 / 14336 x 256 and 6144 x 320 (0.64-0.94x) and lost on 7168 x 512 (1.15x). So the heuristic
transposes only at M <= 8 and N <= 384 (the rows measured here as wins) and keeps the 16-row tile
above M = 8; the tuned M = 16 tables keep their M-tiled entries, each measured against it.

    python benchmarks/probe_swap_ll_gemm.py [--dtype bf16|fp8] [--minutes 8]
    python benchmarks/probe_swap_ll_gemm.py heldout
"""
from __future__ import annotations

import argparse
import time

import torch
import triton

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.ops.small_gemm import ll_gemm_config, split_k, tuned_config
from lmkernels.runtime.device import describe_device, num_sms
from lmkernels.tuning.ll_gemm import describe, operands

SHAPES = [(7168, 256), (7168, 384), (6144, 256), (4096, 256)]  # (K, N)
MS = (8, 16)
FP8 = torch.float8_e4m3fn


def _sets(M, N, K, dtype, count):
    """count fresh input sets (x, weight, x_scale, w_scale): the tuner's operands (fp8 spread over
    e4m3's range with per-tensor scales)."""
    tag = "fp8" if dtype == FP8 else "bf16"
    return [operands(M, N, K, tag, "cuda", 900 + i) for i in range(count)]


def _shipped(M, N, K, dtype):
    dev = torch.cuda.current_device()
    return tuned_config(M, N, K, dtype, dev) or ll_gemm_config(M, N, K, 1 if dtype == FP8 else 2, num_sms(dev))


def _swap(bm, bn, bk, split, chains=1, warps=4, stages=3):
    return {"USE_DOT": True, "SWAP_AB": True, "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split,
            "num_warps": warps, "num_stages": stages, "PREFETCH": True, "EARLY_LAUNCH": True, "ONE_LAUNCH": True,
            "PRELOAD": False, "DOT_CHAINS": chains}


def variants(M, N, K, dtype):
    base = _shipped(M, N, K, dtype)
    yield "shipped", base
    bm = 8 if M <= 8 else 16
    if base["USE_DOT"] and M <= 8:
        yield "shipped, swapped, 8 rows (mma n8)", dict(base, SWAP_AB=True, BLOCK_M=8)
    if M <= 8:
        yield "swap 8x32x512 split 7", _swap(8, 32, 512, 7)
    for bn, bk, split in ((64, 128, 14), (64, 128, 28), (64, 256, 7), (64, 256, 14), (64, 256, 28), (128, 128, 14)):
        if N % bn:
            continue
        splits, k_chunk = split_k(K, bk, split)
        # the finish holds next_pow2(splits) partial tiles over the threads: at most 128 fp32 a thread
        warps = 4 if triton.next_power_of_2(splits) * bn * bm <= 128 * 128 else 8
        stages = 1 if k_chunk == bk else (3 if k_chunk // bk == 2 else 4)
        yield (f"swap {bm}x{bn}x{bk} split {splits} ({k_chunk // bk} tiles)",
               _swap(bm, bn, bk, split, warps=warps, stages=stages))


def _call(s, cfg):
    x, w, xs, ws = s
    return lmkernels.ll_gemm(x, w, x_scale=xs, w_scale=ws, config=cfg)


def _error(s, cfg):
    """max |out - exact| / max |exact| of one call (float64 reference of the same fp8 / bf16 operands)."""
    x, w, xs, ws = s
    want = x.double() @ w.double().t()
    if xs is not None:
        want = want * (xs.double() * ws.double())
    got = _call(s, cfg).double()
    return float((got - want).abs().max() / want.abs().max())


HELDOUT = [(2048, 256), (3072, 256), (5120, 256), (8192, 256), (14336, 256), (6144, 320), (7168, 512)]  # (K, N)


def _unswapped_heuristic(M, N, K, sms):
    """ops/small_gemm._dot_split_config as it was before session 33: the 16-row tile, 32 columns
    above N = 256, splits for about one program an SM."""
    bn, bk = (32 if N > 256 else 16), 512
    n_tiles = -(-N // bn)
    split, k_chunk = split_k(K, bk, min(-(-K // bk), -(-sms // n_tiles), 64))
    return {"USE_DOT": True, "SWAP_AB": False, "BLOCK_M": 16, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split,
            "num_warps": 4, "num_stages": 3 if k_chunk > bk else 1, "PREFETCH": True, "EARLY_LAUNCH": True,
            "ONE_LAUNCH": True, "PRELOAD": False, "DOT_CHAINS": 4 if bn == 16 and k_chunk > bk else 1}


def heldout() -> int:
    sms = num_sms(torch.cuda.current_device())
    print(f"### ll_gemm heuristic, transposed 8-row tiles against the 16-row ones, held out, bf16, {describe_device()}\n")
    print("| shape | heuristic now | µs rotated (2 rounds) | before session 33 | µs rotated (2 rounds) | now / before |\n"
          "|---|---|---:|---|---:|---:|", flush=True)
    for K, N in HELDOUT:
        for M in (6, 12, 16):
            new = ll_gemm_config(M, N, K, 2, sms)
            if not new["USE_DOT"]:
                continue  # FMA rows there (M = 6 below K = 7168 at N = 256): unchanged
            old = _unswapped_heuristic(M, N, K, sms)
            sets = _sets(M, N, K, torch.bfloat16, n_input_sets(N * K * 2))
            t = {0: [], 1: []}
            for _ in range(2):
                for i, cfg in enumerate((new, old)):
                    t[i].append(graph_us([lambda s=s: _call(s, cfg) for s in sets]))
            a, b = min(t[0]), min(t[1])
            print(f"| M={M} N={N} K={K} | {describe(new)} | {t[0][0]:.2f} / {t[0][1]:.2f} | {describe(old)} | "
                  f"{t[1][0]:.2f} / {t[1][1]:.2f} | {a / b:.3f} |", flush=True)
            del sets
            torch.cuda.empty_cache()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", choices=("time", "heldout"), default="time")
    ap.add_argument("--dtype", choices=("bf16", "fp8"), default="bf16")
    ap.add_argument("--minutes", type=float, default=8.0)
    args = ap.parse_args()
    if args.mode == "heldout":
        return heldout()
    dtype = FP8 if args.dtype == "fp8" else torch.bfloat16
    t_end = time.time() + 60 * args.minutes
    how = ", e4m3 widened to fp16" if dtype == FP8 else ""
    print(f"### ll_gemm SWAP_AB tiles, {args.dtype}{how}, on {describe_device()}\n")
    print("| shape | variant | config | µs rotated | µs one set | rel. error |\n|---|---|---|---:|---:|---:|",
          flush=True)
    for K, N in SHAPES:
        for M in MS:
            sets = _sets(M, N, K, dtype, n_input_sets(N * K * dtype.itemsize))
            for name, cfg in variants(M, N, K, dtype):
                if time.time() > t_end:
                    print("<!-- out of time -->")
                    return 0
                try:
                    calls = [lambda s=s: _call(s, cfg) for s in sets]
                    rot, one = graph_us(calls), graph_us(calls[:1])
                    err = _error(sets[0], cfg)
                    print(f"| M={M} N={N} K={K} | {name} | {describe(cfg)} | {rot:.2f} | {one:.2f} | {err:.1e} |",
                          flush=True)
                except Exception as e:  # noqa: BLE001 - a config that cannot run is reported
                    print(f"| M={M} N={N} K={K} | {name} | | failed: {type(e).__name__}: {str(e)[:90]} | | |")
            del sets
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
