"""Probe: a heuristic rule with CLUSTER for router shapes no table covers (H100, held out: none of
these (K, N) has a shipped table), against today's heuristic. CUDA-graph medians in the bench's
method (PDL chains, weights rotated past 4x the L2), two interleaved rounds, the faster of each.

The candidate rule (session 35), from the tuned winners of tune_ll_gemm_s34_cluster.log (26 of 30 in
clusters; at M = 4-8 the transposed 8 x 16 x 512 tile with 4 chains and 5-8 splits):
  M = 3-16, N >= 256, K >= 2048, CUDA sm90+: _dot_split_config's tile and split (split capped at 8,
  a portable cluster), in a cluster; M <= 8 and N <= 384 take its transposed 8-row tile, so at
  M = 3-8 this replaces the whole-K FMA rows the heuristic ships there.
Prediction (before the run): on the dot-split points (M = 9-16, and M = 5-8 past the rows' reach)
the cluster finish saves 0.3-0.7 µs (probe_cluster_split.md: +0.4-0.6 over the chain floor against
the counter's +1.2-1.6); where the heuristic ships FMA rows (M = 3-8) the candidate wins at K >= 6144
(the tables: 7168 x 256 / 384, 6144 x 256 at M = 4 in clusters) and loses at K <= 4096 (4096 x 256
M = 4 kept the rows); at M = 16 with the 16-row tiles, mixed (session 34's M = 16 losses were
8 x 16 x 1024 tiles).

Outcome (probe_cluster_heuristic.md): 26 of 30 faster, median 0.90x (0.56-0.98); the losses at
K = 8192 from M = 8 (1.01-1.14x) and fp8 3072 x 256 at M = 4 (1.20x), outside the band then shipped
(ops/small_gemm._cluster_rule).
Round 2 (--heldout, written before it ran): the shipped rule on five more shapes at M = 4-16 wins
at least 80 % of its points, median 0.85x, no loss above 1.1x.
Outcome (probe_cluster_heuristic_heldout.md): 38 of 48 faster (79 %), median 0.89x, worst 1.12x:
short of all three. The 3 losses past 2 % are the 16-row tiles of 7680 x 256 at M = 12-16 (128
programs in clusters of 8), whence ll_gemm_config's cap from M = 9 (grids to 0.85x the SMs), fitted
to these two rounds.

    python benchmarks/probe_cluster_heuristic.py [--dtype bf16 fp8] [--minutes 4] [--heldout]
"""
from __future__ import annotations

import argparse
import time

import torch

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.ops.small_gemm import _cluster_rule, _dot_split_config, check_config, ll_gemm_config, split_k
from lmkernels.runtime.device import describe_device, num_sms
from lmkernels.tuning.ll_gemm import check_output, describe, operands

SHAPES = [(5120, 256), (8192, 256), (3072, 256), (7168, 320), (4096, 384)]  # (K, N): no table
MS = (4, 8, 16)
# the second round, on the rule as shipped (ops/small_gemm._cluster_rule), held out from the first
HELDOUT_SHAPES = [(6144, 320), (5120, 384), (4096, 320), (3584, 256), (7680, 256)]
HELDOUT_MS = (4, 6, 8, 12, 16)
FP8 = torch.float8_e4m3fn


def candidate(M, N, K, elem_bytes, sms):
    """The first round's candidate, as written before it ran; the shipped rule
    (ll_gemm_config(..., clusters=True) inside _cluster_rule's band) gives the same configs."""
    cfg = _dot_split_config(max(M, 3), N, K, elem_bytes, sms)
    split, chunk = split_k(K, cfg["BLOCK_K"], min(cfg["SPLIT_K"], 8))
    return dict(cfg, SPLIT_K=split, num_stages=3 if chunk > cfg["BLOCK_K"] else 1, CLUSTER=split > 1,
                DOT_CHAINS=cfg["DOT_CHAINS"] if chunk > cfg["BLOCK_K"] else 1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", nargs="+", choices=("bf16", "fp8"), default=["bf16", "fp8"])
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--heldout", action="store_true",
                    help="the second round: HELDOUT_SHAPES x HELDOUT_MS, the shipped rule where it applies")
    args = ap.parse_args()
    shapes, ms = (HELDOUT_SHAPES, HELDOUT_MS) if args.heldout else (SHAPES, MS)
    t_end = time.time() + 60 * args.minutes
    sms = num_sms(torch.cuda.current_device())
    print(f"### ll_gemm heuristic with clusters, held-out router shapes, on {describe_device()}\n")
    print("µs: CUDA-graph medians a call in PDL chains, weights rotated past 4x L2; two interleaved rounds, "
          "the faster\n")
    print("| shape | dtype | heuristic | µs | candidate | µs | candidate / heuristic | check |\n"
          "|---|---|---|---:|---|---:|---:|---|", flush=True)
    for tag in args.dtype:
        dtype = FP8 if tag == "fp8" else torch.bfloat16
        for K, N in shapes:
            for M in ms:
                if args.heldout and not _cluster_rule(M, N, K):
                    continue
                if time.time() > t_end:
                    print("<!-- out of time -->")
                    return 0
                sets = [operands(M, N, K, tag, "cuda", 900 + i) for i in range(n_input_sets(N * K * dtype.itemsize))]
                vs, checks = [], []
                rule = (ll_gemm_config(M, N, K, dtype.itemsize, sms, clusters=True) if args.heldout
                        else candidate(M, N, K, dtype.itemsize, sms))
                for cfg in (ll_gemm_config(M, N, K, dtype.itemsize, sms), rule):
                    cfg = check_config(cfg, M)
                    x, w, xs, ws = sets[0]
                    out = lmkernels.ll_gemm(x, w, x_scale=xs, w_scale=ws, config=cfg)
                    bad = check_output(out, x, w, xs, ws)
                    again = lmkernels.ll_gemm(x, w, x_scale=xs, w_scale=ws, config=cfg)
                    checks.append(bad or ("ok" if torch.equal(out, again) else "not bit-identical"))
                    vs.append((cfg, [lambda s=s, c=cfg: lmkernels.ll_gemm(s[0], s[1], x_scale=s[2], w_scale=s[3], config=c)
                                     for s in sets], []))
                for _ in range(2):
                    for v in vs:
                        v[2].append(graph_us(v[1]))
                (h, _, th), (c, _, tc) = vs
                print(f"| M={M} N={N} K={K} | {tag} | {describe(h)} | {min(th):.2f} | {describe(c)} | {min(tc):.2f} | "
                      f"{min(tc) / min(th):.3f} | {' / '.join(checks)} |", flush=True)
                del sets, vs
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
