"""Probe: ll_gemm at 2 <= M <= 16 without split-K. Every program owns BLOCK_N weight rows over the
whole of K and all M rows of x, fp32 FMAs summed elementwise over the K loop and reduced once
(kernels/small_gemm.py, _mac3), so there is no partial store, no counter and no second reader:
the ~1 µs split-K handshake of probe_ll_gemm.md is gone, paid for by every program reading all
of x (M K elements) from L2.

Against the split-K dot tiles that served M >= 2 before (_dot_split_config: tl.dot on a 16-row
padded tile) and the heuristic as it stands, on the router shapes, H100, CUDA-graph medians with PDL, weights rotating over 4x the L2 as in `lmkernels bench`.
Prints markdown as it goes; stops sweeping after --minutes.

    python benchmarks/probe_ll_gemm_rows.py [--minutes 8] [--shapes 7168x256,5120x128] [--ms 2,4,8,16]
"""
from __future__ import annotations

import argparse
import time

import torch

from lmkernels.tuning.ll_gemm import rows_configs
from lmkernels.ops.small_gemm import _dot_split_config, ll_gemm_config
from lmkernels.runtime.device import describe_device, num_sms
from probe_ll_gemm import _sets, _short, _time, sweep_best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--shapes", default="7168x256,5120x128,4096x8,7168x256fp8")
    ap.add_argument("--ms", default="2,4,8,16")
    args = ap.parse_args()
    t_end = time.time() + 60 * args.minutes
    sms = num_sms(torch.cuda.current_device())
    print(f"### ll_gemm whole-K FMA rows (no split-K) on {describe_device()}\n")
    print("| shape | dtype | split-K dot µs | heuristic µs | its config | best rows µs | its config | "
          "best rows / dot |\n|---|---|---:|---:|---|---:|---|---:|", flush=True)
    every = ["| shape | dtype | config | µs |", "|---|---|---|---:|"]
    for spec in args.shapes.split(","):
        fp8 = spec.endswith("fp8")
        K, N = (int(v) for v in spec.removesuffix("fp8").split("x"))
        for M in (int(m) for m in args.ms.split(",")):
            if time.time() > t_end:
                break
            sets = _sets(M, N, K, fp8)
            h = ll_gemm_config(M, N, K, 1 if fp8 else 2, sms)
            h_us = _time(sets, h)
            dot_us = _time(sets, _dot_split_config(M, N, K, 1 if fp8 else 2, sms))
            row = f"| M={M} N={N} K={K} | {'fp8' if fp8 else 'bf16'}"
            best = sweep_best(lambda c, sets=sets: _time(sets, c), rows_configs(M, N, K), row, every, t_end)
            print(f"{row} | {dot_us:.2f} | {h_us:.2f} | {_short(h)} | {best[0]:.2f} | {best[1]} | "
                  f"{best[0] / dot_us:.2f} |", flush=True)
            del sets
            torch.cuda.empty_cache()
    print("\n### every swept config\n")
    print("\n".join(every))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
