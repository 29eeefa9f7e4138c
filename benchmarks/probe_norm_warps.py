"""Probe (GPU): rms_norm and fused_add_rms_norm at 8 and 16 warps a row, H = 4096 and 8192, bf16 and
fp32, with the op's own launch (PDL on), rotating input sets as `bench norm` times them.

Why: `bench norm` had Liger ahead of ours at rms_norm T = 4096 H = 8192 in sessions 30 and 41
(46.23 / 46.01 µs against 46.91 / 46.71, 1.5 % both times). Liger runs that row at 16 warps, ours
at 8 (ops/norm.py:norm_config); session 30's ceiling probe had the op's kernel at 16 warps 0.85 %
faster there, every round (46.00 vs 46.39, probe_norm_ceiling.md), and session 1's sweep (before
PDL) 0.5 % at T = 32768.
Prediction (before the run): bf16 H = 8192 rms_norm at 16 warps -1 to -1.5 % at T = 4096 (46.7 ->
~46.1, Liger's time), -0.3 to -0.6 % at T = 32768, +-0.03 µs at T <= 16; fused_add_rms_norm within
+-0.5 % everywhere; H = 4096 bf16 worse at 16 (session 30: +1.4 % at T = 4096), fp32 unknown.

python benchmarks/probe_norm_warps.py [--rounds 3] [--dtypes ...] [--hidden ...] [--ops rms fused] [--tokens ...]
"""
from __future__ import annotations

import argparse
import statistics

import torch

import lmkernels
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.bench.peers import liger
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime.device import describe_device

EPS = 1e-6
SHIPPED = norm_ops.norm_config


def use_warps(warps: int | None) -> None:
    """warps None: the shipped norm_config; else that many warps for every row (BLOCK_H as shipped).
    The plans and the memo of bound launches are dropped so that the next call plans again."""
    if warps is None:
        norm_ops.norm_config = SHIPPED
    else:
        norm_ops.norm_config = lambda H, elem_bytes: (SHIPPED(H, elem_bytes)[0], warps)
    norm_ops._plans.clear()
    norm_ops._memo.clear()


def calls(op: str, T: int, H: int, dtype, lg):
    e = torch.finfo(dtype).bits // 8
    nbytes = ((4 if op == "fused" else 2) * T * H + H) * e
    k = n_input_sets(nbytes)
    out = []
    for i in range(k):
        g = torch.Generator(device="cuda").manual_seed(100 + i)
        x = torch.randn(T, H, device="cuda", dtype=dtype, generator=g)
        w = torch.randn(H, device="cuda", dtype=dtype, generator=g)
        if op == "rms":
            out.append(lambda x=x, w=w: lmkernels.rms_norm(x, w, EPS))
        elif op == "fused":
            r = torch.randn(T, H, device="cuda", dtype=dtype, generator=g)
            out.append(lambda x=x, r=r, w=w: lmkernels.fused_add_rms_norm(x, r, w, EPS))
        else:  # Liger's rms_norm, as `bench norm` calls it
            out.append(lambda x=x, w=w: lg.LigerRMSNormFunction.apply(x, w, EPS, 0.0, "llama", False))
    return nbytes, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--hidden", nargs="+", type=int, default=[4096, 8192])
    ap.add_argument("--ops", nargs="+", default=["rms", "fused"])
    ap.add_argument("--tokens", nargs="+", type=int, default=[1, 16, 4096, 32768])
    ap.add_argument("--no-liger", action="store_true")
    args = ap.parse_args()
    lg = liger()
    print(f"### rms_norm / fused_add_rms_norm at 8 and 16 warps a row; {describe_device()}\n")
    print(f"copy bandwidth (1 GiB), measured in this run: {copy_bandwidth_gbs():.0f} GB/s; µs: CUDA-graph medians "
          f"a call over rotating input sets, median of {args.rounds} interleaved rounds (min-max beside); "
          f"bytes: rms (2 T H + H) e, fused (4 T H + H) e\n")
    print("| op | dtype | H | T | shipped warps | µs at 8 warps | µs at 16 warps | 16 / 8 | GB/s at 8 | GB/s at 16 |")
    print("|---|---|---:|---:|---:|---|---|---:|---:|---:|")
    for dtype in [getattr(torch, d) for d in args.dtypes]:
        for H in args.hidden:
            for op in args.ops:
                for T in args.tokens:
                    nbytes, cs = calls(op, T, H, dtype, lg)
                    t = {8: [], 16: []}
                    for _ in range(args.rounds):
                        for w in t:
                            use_warps(w)
                            t[w].append(graph_us(cs, reps=30))
                    use_warps(None)
                    a, b = statistics.median(t[8]), statistics.median(t[16])
                    dt = str(dtype).split(".")[-1]
                    print(f"| {op} | {dt} | {H} | {T} | {SHIPPED(H, dtype.itemsize)[1]} | "
                          f"{a:.2f} ({min(t[8]):.2f}-{max(t[8]):.2f}) | {b:.2f} ({min(t[16]):.2f}-{max(t[16]):.2f}) | "
                          f"{b / a:.3f} | {nbytes / a / 1e3:.0f} | {nbytes / b / 1e3:.0f} |", flush=True)
                    cs = None
                    torch.cuda.empty_cache()
    if lg is not None and not args.no_liger:
        print("\nLiger's rms_norm (16 warps at H = 8192), same method:\n")
        for T in (4096, 32768):
            nbytes, cs = calls("liger", T, 8192, torch.bfloat16, lg)
            ts = [graph_us(cs, reps=30) for _ in range(args.rounds)]
            us = statistics.median(ts)
            print(f"- T = {T} H = 8192 bf16: {us:.2f} µs ({min(ts):.2f}-{max(ts):.2f}), {nbytes / us / 1e3:.0f} GB/s")


if __name__ == "__main__":
    main()
