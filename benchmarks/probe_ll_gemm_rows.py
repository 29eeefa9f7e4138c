"""Probe: ll_gemm at 2 <= M <= 16 without split-K. Every program owns BLOCK_N weight rows over the
whole of K and all M rows of x, fp32 FMAs summed elementwise over the K loop and reduced once
(kernels/small_gemm.py, _mac3), so there is no partial store, no counter and no second reader:
the ~1 µs split-K handshake of probe_ll_gemm.md is gone, paid for by every program reading all
of x (M K elements) from L2.

Against the heuristic as it stands (tl.dot on a 16-row padded tile, split-K) on the router shapes,
H100, CUDA-graph medians with PDL, weights rotating over 4x the L2 as in `lmkernels bench`.
Prints markdown as it goes; stops sweeping after --minutes.

    python benchmarks/probe_ll_gemm_rows.py [--minutes 8] [--shapes 7168x256,5120x128] [--ms 2,4,8,16]
"""
from __future__ import annotations

import argparse
import time

import torch

from lmkernels.ops.small_gemm import ll_gemm_config
from lmkernels.runtime.device import describe_device, num_sms
from probe_ll_gemm import _sets, _short, _time


def _rows_configs(M: int, N: int, K: int):
    """Whole-K FMA configs: BLOCK_N weight rows a program, BLOCK_K columns a step, warps chosen so a
    thread holds 16-64 weight elements a step (16-32 at M = 4, 8-16 from M = 8; the M = 1 winner
    held 64 in one step), the fp32 accumulator BLOCK_M times that (<= 128 registers)."""
    bm = 1 << (M - 1).bit_length()
    whole = 1 << (K - 1).bit_length()
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
                for stages in ((1,) if bk >= K else (2,)):
                    key = (bn, bk, warps, stages)
                    if key in seen:
                        continue
                    seen.add(key)
                    yield {"USE_DOT": False, "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": 1,
                           "num_warps": warps, "num_stages": stages, "PREFETCH": True, "EARLY_LAUNCH": True,
                           "ONE_LAUNCH": True, "PRELOAD": False}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--shapes", default="7168x256,5120x128,4096x8,7168x256fp8")
    ap.add_argument("--ms", default="2,4,8,16")
    args = ap.parse_args()
    t_end = time.time() + 60 * args.minutes
    sms = num_sms(torch.cuda.current_device())
    print(f"### ll_gemm whole-K FMA rows (no split-K) on {describe_device()}\n")
    print("| shape | dtype | heuristic µs | its config | best rows µs | its config | rows / heuristic |\n"
          "|---|---|---:|---|---:|---|---:|", flush=True)
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
            best = (float("inf"), None)
            for c in _rows_configs(M, N, K):
                if time.time() > t_end:
                    break
                try:
                    us = _time(sets, c)
                except Exception as e:  # noqa: BLE001 - a config the GPU cannot run is reported
                    print(f"<!-- {_short(c)} st{c['num_stages']}: {type(e).__name__}: {str(e)[:100]} -->")
                    continue
                best = min(best, (us, f"{_short(c)} st{c['num_stages']}"), key=lambda r: r[0])
                every.append(f"| M={M} N={N} K={K} | {'fp8' if fp8 else 'bf16'} | {_short(c)} st{c['num_stages']} "
                             f"| {us:.2f} |")
            print(f"| M={M} N={N} K={K} | {'fp8' if fp8 else 'bf16'} | {h_us:.2f} | {_short(h)} | {best[0]:.2f} | "
                  f"{best[1]} | {best[0] / h_us:.2f} |", flush=True)
            del sets
            torch.cuda.empty_cache()
    print("\n### every swept config\n")
    print("\n".join(every))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
