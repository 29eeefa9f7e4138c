"""Probe: ll_gemm's split-K finished inside a cluster (CLUSTER, kernels/cluster.py) on the router shapes,
against the shipped configs (H100, CUDA-graph medians in the bench's method: PDL chains, weights
rotated past 4x the L2; two interleaved rounds, the faster of each).

Prediction (session 34, before the run; probe_cluster_split.md: the cluster finish costs +0.4-0.6 µs
over the chain floor where the counter handshake costs +1.2-1.6): the shipped split-K configs (M =
8 / 16 on the big routers) 0.6-0.9 µs faster with CLUSTER; at M = 2 / 4, where whole-K FMA rows ship
because split-K's finish cost a microsecond, the transposed 8-row split tiles in clusters win by
0.2-0.6 µs.
Outcome (probe_cluster_ll_gemm.md): half right. Shipped + CLUSTER won where its tile leaves room (bf16
6144 x 256 M = 8 3.71 -> 3.10, 7168 x 384 M = 4 5.42 -> 4.55; fp8 M = 8-16 0.3-0.75 µs), barely at
7168 x 256 M = 8 (3.78 -> 3.74), and lost 1.3-1.7 µs on the M = 16 bf16 entries of 7168 x 256 / 384
(8 x 16 x 1024, one program an SM: with clusters of 4 placed inside GPCs, presumably not every
cluster fits one wave; not profiled). At M = 2 every cluster tile lost (1.1-1.6x); at M = 4 they won
on 7168 x 384 and 6144 x 256 (0.77-0.87x) and lost on 7168 x 256, 4096 x 256 and 5120 x 128. The
tuner, given the CLUSTER twins, chose them at 26 of 30 entries (tune_ll_gemm_s34_cluster.log).

    python benchmarks/probe_cluster_ll_gemm.py [--dtype bf16 fp8] [--minutes 6]
"""
from __future__ import annotations

import argparse
import time

import torch

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.ops.small_gemm import CLUSTER_SPLITS, check_config, ll_gemm_config, split_k, tuned_config
from lmkernels.runtime.device import describe_device, num_sms
from lmkernels.tuning.ll_gemm import check_output, describe, operands

SHAPES = [(7168, 256), (7168, 384), (6144, 256), (4096, 256), (5120, 128)]  # (K, N)
MS = (2, 4, 8, 16)
FP8 = torch.float8_e4m3fn


def _tile(bm, bn, bk, split, chains, swap):
    return {"USE_DOT": True, "SWAP_AB": swap, "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split,
            "num_warps": 4, "num_stages": 3, "PREFETCH": True, "EARLY_LAUNCH": True, "ONE_LAUNCH": True,
            "PRELOAD": False, "DOT_CHAINS": chains, "CLUSTER": True}


def variants(M, N, K, dtype):
    dev = torch.cuda.current_device()
    shipped = tuned_config(M, N, K, dtype, dev) or ll_gemm_config(M, N, K, dtype.itemsize, num_sms(dev))
    yield "shipped", shipped
    split = split_k(K, shipped["BLOCK_K"], shipped["SPLIT_K"])[0]
    if shipped["SPLIT_K"] > 1 and shipped["ONE_LAUNCH"] and split in CLUSTER_SPLITS:
        yield "shipped + CLUSTER", dict(shipped, CLUSTER=True)
    bm = 8  # transposed 8-row tiles, M-tiled above 8 rows
    for bk, split in ((512, 7), (512, 8), (1024, 4), (1024, 7), (256, 16)):
        if split_k(K, bk, split)[0] not in CLUSTER_SPLITS:
            continue
        for bn in (16, 32) if N > 256 else (16,):
            yield f"cluster {bm}x{bn}x{bk} split {split}", _tile(bm, bn, bk, split, 4 if bk >= 512 else 1, True)
    if M > 8:
        yield "cluster 16x16x512 split 8", _tile(16, 16, 512, 8, 4, False)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", nargs="+", choices=("bf16", "fp8"), default=["bf16", "fp8"])
    ap.add_argument("--minutes", type=float, default=6.0)
    args = ap.parse_args()
    t_end = time.time() + 60 * args.minutes
    print(f"### ll_gemm split-K in clusters against the shipped configs, on {describe_device()}\n")
    print("µs: CUDA-graph medians a call in PDL chains, weights rotated past 4x L2; two interleaved rounds, "
          "the faster; 'best' the fastest variant\n")
    print("| shape | dtype | variant | config | µs rounds | µs | / shipped | check |\n|---|---|---|---|---|---:|---:|---|",
          flush=True)
    for tag in args.dtype:
        dtype = FP8 if tag == "fp8" else torch.bfloat16
        for K, N in SHAPES:
            for M in MS:
                if time.time() > t_end:
                    print("<!-- out of time -->")
                    return 0
                sets = [operands(M, N, K, tag, "cuda", 700 + i) for i in range(n_input_sets(N * K * dtype.itemsize))]
                vs = []
                for name, cfg in variants(M, N, K, dtype):
                    try:
                        cfg = check_config(cfg, M) if "CLUSTER" in cfg or name != "shipped" else cfg
                        x, w, xs, ws = sets[0]
                        out = lmkernels.ll_gemm(x, w, x_scale=xs, w_scale=ws, config=cfg)
                        bad = check_output(out, x, w, xs, ws)
                        again = lmkernels.ll_gemm(x, w, x_scale=xs, w_scale=ws, config=cfg)
                        bad = bad or (None if torch.equal(out, again) else "not bit-identical run to run")
                        vs.append((name, cfg, [lambda s=s, c=cfg: lmkernels.ll_gemm(s[0], s[1], x_scale=s[2],
                                                                                   w_scale=s[3], config=c)
                                               for s in sets], bad or "ok", []))
                    except Exception as e:  # noqa: BLE001 - a variant that cannot run is reported
                        print(f"| M={M} N={N} K={K} | {tag} | {name} | | failed: {type(e).__name__}: {str(e)[:100]} "
                              f"| | | |", flush=True)
                for _ in range(2):
                    for v in vs:
                        v[4].append(graph_us(v[2]))
                base = min(vs[0][4]) if vs else 1.0
                best = min(vs, key=lambda v: min(v[4]))[0] if vs else ""
                for name, cfg, _, check, ts in vs:
                    star = " (best)" if name == best else ""
                    print(f"| M={M} N={N} K={K} | {tag} | {name}{star} | {describe(cfg)} | "
                          f"{' / '.join(f'{t:.2f}' for t in ts)} | {min(ts):.2f} | {min(ts) / base:.3f} | {check} |",
                          flush=True)
                del sets, vs
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
