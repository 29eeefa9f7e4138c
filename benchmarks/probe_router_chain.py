"""Probe: where ll_gemm's split-K dot tiles spend a router call at M = 8-16 (H100).

The big routers at M = 8 and 16 run the dot tiles 16 x 16 x 512 in 7 splits (7168 x 256: 4.8-4.9
µs rotated, against 2.37 at M = 1 with FMA rows and a PDL chain floor of 1.03 µs plus 1.0 for the
split-K handshake, probe_ll_gemm.md). x traffic does not explain the rest: the same tiles took
4.74 µs at M = 4 and 4.86 at M = 16 (a quarter of the x bytes).

Prediction (written before the run): a program's K loop is one chain of dependent mma.sync steps,
16 deep per 256 K columns (k16 a step): 64 steps at k_chunk 1024, ~33 cycles each, about 1 µs of
the call. Tiles holding one K tile a program (k_chunk = BLOCK_K) do not shorten that chain; more
splits do (BLOCK_K 256, split 28: 16 steps), at the price of 4x the partials and 3.4 programs an
SM. If the chain is the cost, split 28 gains 0.5-0.8 µs on the shipped tile and num_warps moves
nothing; if the loads are, PREFETCH off loses and split 28 gains nothing.

Second prediction (written after the first run refuted the first: split 28 ran 9.6 µs, the shipped
tile 4.9): the sm90 PTX of the 16 x 16 x 512 tile has 32 mma.sync a warp per K tile for 64 needed
per CTA: the 4 warps duplicate each other's n8 columns, and each warp's accumulator is one chain of
32 steps a tile. A batched tl.dot over DOT_CHAINS K sub-slices (x [16, C, K/C] -> [C, 16, K/C];
the rounds ran with it as a probe-only global of kernels/small_gemm.py set from the environment,
commit 6252a6b; it is now the config key DOT_CHAINS, which --chains sets) gives each warp its
own chain of 8 steps at C = 4 (16 mma.sync a warp, half the PTX's): -0.5 to -1.0 µs at M = 8-16
on the big routers (7168 x 256 4.9 -> about 4.0), the same relative error.

Modes:
    python benchmarks/probe_router_chain.py time [--minutes 6] [--dot-only --chains C]   graph medians,
                                                                  rotated and one set
    python benchmarks/probe_router_chain.py heldout              the heuristic's chains off its tables
    python benchmarks/probe_router_chain.py ncu-driver            two calls each of a few configs,
                                                                  for `ncu --kernel-name regex:_ll_gemm`
"""
from __future__ import annotations

import argparse
import time

import torch

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.ops.small_gemm import tuned_config, ll_gemm_config
from lmkernels.runtime.device import describe_device, num_sms
from lmkernels.tuning.ll_gemm import describe

SHAPES = [(7168, 256), (7168, 384), (6144, 256), (4096, 256)]  # (K, N)
MS = (8, 16)


def _sets(M, N, K, count):
    out = []
    for i in range(count):
        g = torch.Generator(device="cuda").manual_seed(500 + i)
        out.append((torch.randn(M, K, device="cuda", generator=g).bfloat16(),
                    torch.randn(N, K, device="cuda", generator=g).bfloat16()))
    return out


def _shipped(M, N, K):
    dev = torch.cuda.current_device()
    return tuned_config(M, N, K, torch.bfloat16, dev) or ll_gemm_config(M, N, K, 2, num_sms(dev))


def _dot(bn, bk, split, warps=4, stages=None, prefetch=True):
    return {"USE_DOT": True, "BLOCK_M": 16, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split, "num_warps": warps,
            "num_stages": stages or 1, "PREFETCH": prefetch, "EARLY_LAUNCH": True, "ONE_LAUNCH": True,
            "PRELOAD": False, "DOT_CHAINS": 1}


def variants(M, N, K):
    base = _shipped(M, N, K)
    yield "shipped", base
    yield "shipped, PREFETCH off", dict(base, PREFETCH=False)
    for w in (2, 8):
        yield f"shipped, {w} warps", dict(base, num_warps=w)
    bn = base["BLOCK_N"] if base["USE_DOT"] else 16
    for bk in (256, 512, 1024):
        split = -(-K // bk)
        if split <= 64:
            yield f"dot 16x{bn}x{bk}, one K tile a program (split {split})", _dot(bn, bk, split)
    yield f"dot 16x{bn}x256 split {-(-K // 512)} (2 tiles, 3 stages)", _dot(bn, 256, -(-K // 512), stages=3)


def dot_variants(M, N, K, chains):
    """The dot tiles only (the DOT_CHAINS rounds), each with DOT_CHAINS = chains: the shipped one
    where it is a dot tile, and forms with whole tiles a program."""
    base = _shipped(M, N, K)
    if base["USE_DOT"]:
        yield "shipped", dict(base, DOT_CHAINS=chains)
    bn = base["BLOCK_N"] if base["USE_DOT"] else 16
    for bk, split in ((512, -(-K // 1024)), (1024, -(-K // 1024)), (512, -(-K // 512))):
        if split <= 64:
            yield (f"dot 16x{bn}x{bk} split {split}",
                   dict(_dot(bn, bk, split, stages=3 if bk * split < K else 1), DOT_CHAINS=chains))


def _error(sets, cfg):
    """max |out - exact| / max |exact| of one call (float64 reference)."""
    x, w = sets[0]
    out = lmkernels.ll_gemm(x, w, config=cfg).double()
    want = x.double() @ w.double().t()
    return float((out - want).abs().max() / want.abs().max())


def _time(sets, cfg):
    calls = [lambda x=x, w=w: lmkernels.ll_gemm(x, w, config=cfg) for x, w in sets]
    return graph_us(calls), graph_us(calls[:1])


def time_mode(minutes, dot_only, chains):
    t_end = time.time() + 60 * minutes
    print(f"### ll_gemm split-K dot tiles at M = 8-16 on {describe_device()}, DOT_CHAINS = {chains}\n")
    print("| shape | variant | µs rotated | µs one set | rel. error |\n|---|---|---:|---:|---:|", flush=True)
    for K, N in SHAPES:
        for M in MS:
            sets = _sets(M, N, K, n_input_sets(N * K * 2))
            for name, cfg in (dot_variants(M, N, K, chains) if dot_only else variants(M, N, K)):
                if time.time() > t_end:
                    print("<!-- out of time -->")
                    return
                try:
                    rot, one = _time(sets, cfg)
                    err = _error(sets, cfg)
                    print(f"| M={M} N={N} K={K} | {name} | {rot:.2f} | {one:.2f} | {err:.1e} |", flush=True)
                except Exception as e:  # noqa: BLE001 - a config that cannot run is reported
                    print(f"| M={M} N={N} K={K} | {name} | failed: {type(e).__name__}: {str(e)[:80]} | |")
            del sets
            torch.cuda.empty_cache()


HELDOUT = [(2048, 256), (3072, 256), (5120, 256), (8192, 256), (14336, 256)]  # (K, N): no shipped table


def heldout_mode():
    """The heuristic (DOT_CHAINS 4 on its 16-column split-K dot tiles) against the same tiles with one
    chain, on N = 256 shapes without a table, M = 8 and 16, where _dot_split_config serves."""
    sms = num_sms(torch.cuda.current_device())
    print(f"### the heuristic's DOT_CHAINS on shapes without a table, {describe_device()}\n")
    print("| shape | heuristic | µs rotated, chains 4 | chains 1 | one set, chains 4 | chains 1 |\n"
          "|---|---|---:|---:|---:|---:|", flush=True)
    for K, N in HELDOUT:
        for M in MS:
            cfg = ll_gemm_config(M, N, K, 2, sms)
            sets = _sets(M, N, K, n_input_sets(N * K * 2))
            four, one = _time(sets, cfg), _time(sets, dict(cfg, DOT_CHAINS=1))
            print(f"| M={M} N={N} K={K} | {describe(cfg)} | {four[0]:.2f} | {one[0]:.2f} | {four[1]:.2f} | "
                  f"{one[1]:.2f} |", flush=True)
            del sets
            torch.cuda.empty_cache()


def ncu_driver():
    """Order of the profiled kernels (two calls each, the second is the one to read)."""
    K, N = 7168, 256
    runs = [(1, "shipped M=1", None), (4, "shipped M=4", None), (16, "shipped M=16", None),
            (16, "split 28 (BLOCK_K 256)", _dot(16, 256, 28))]
    for M, name, cfg in runs:
        x, w = _sets(M, N, K, 1)[0]
        for _ in range(2):
            lmkernels.ll_gemm(x, w, config=cfg)
            torch.cuda.synchronize()
        print(f"profiled: {name} (x2)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("time", "heldout", "ncu-driver"))
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--dot-only", action="store_true", help="dot tiles only (the DOT_CHAINS rounds)")
    ap.add_argument("--chains", type=int, default=1, help="DOT_CHAINS of the --dot-only tiles")
    args = ap.parse_args()
    if args.mode == "time":
        time_mode(args.minutes, args.dot_only, args.chains)
    elif args.mode == "heldout":
        heldout_mode()
    else:
        ncu_driver()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
