"""Probe: ll_gemm's one-launch split-K, whole-share L2 prefetch and early launch, against the
two-launch split-K it replaces, on the router shapes (H100, CUDA-graph medians, pdl on unless said,
weights rotating over 4x the L2 as in `lmkernels bench small_gemm`).

Rows per (shape, M): the heuristic with ONE_LAUNCH False (the old path: partials + reduce
kernel), the heuristic as it stands, then + PREFETCH, + PREFETCH + EARLY_LAUNCH, pdl=False, and
a sweep of tiles and split counts with all three on. Prints markdown as it goes (a partial table
survives a timeout); stops sweeping after --minutes.

    python benchmarks/probe_ll_gemm.py [--minutes 7]
"""
from __future__ import annotations

import argparse
import time

import torch

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.ops.small_gemm import ll_gemm_config
from lmkernels.runtime.device import describe_device, num_sms

FP8 = torch.float8_e4m3fn
CASES = [(7168, 256, False), (7168, 384, False), (5120, 128, False), (4096, 8, False), (2880, 64, False),
         (7168, 256, True)]
MS = (1, 4, 16)


def _sets(M, N, K, fp8):
    out = []
    for i in range(n_input_sets(N * K * (1 if fp8 else 2))):
        g = torch.Generator(device="cuda").manual_seed(300 + i)
        x = torch.randn(M, K, device="cuda", generator=g)
        w = torch.randn(N, K, device="cuda", generator=g)
        if fp8:
            out.append(((x * 8).to(FP8), (w * 8).to(FP8), torch.full((), 0.1, device="cuda"),
                        torch.full((), 0.01, device="cuda")))
        else:
            out.append((x.bfloat16(), w.bfloat16(), None, None))
    return out


def _time(sets, cfg, pdl=True):
    return graph_us([lambda x=x, w=w, a=a, b=b: lmkernels.ll_gemm(x, w, x_scale=a, w_scale=b, pdl=pdl, config=cfg)
                     for x, w, a, b in sets])


def _sweep(M, N, K, fp8, sms):
    dot = M > 1
    for bn in (16, 32):
        for bk in ((256, 512) if fp8 else (64, 128, 256, 512)):
            n_tiles, k_tiles = -(-N // bn), -(-K // bk)
            for f in (1, 2, 4):
                sk = max(1, min(64, k_tiles, round(f * sms / n_tiles)))
                yield {"USE_DOT": dot, "BLOCK_M": 16 if dot else 1, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": sk,
                       "num_stages": 1 if sk * bk >= K else 3, "ONE_LAUNCH": True, "PREFETCH": True,
                       "EARLY_LAUNCH": True}


def _short(c):
    return (f"{'dot' if c['USE_DOT'] else 'fma'} {c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']} split {c['SPLIT_K']}"
            f"{' 1L' if c.get('ONE_LAUNCH') else ' 2L'}{' pf' if c.get('PREFETCH') else ''}"
            f"{' early' if c.get('EARLY_LAUNCH') else ''}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=7.0)
    args = ap.parse_args()
    t_end = time.time() + 60 * args.minutes
    sms = num_sms(torch.cuda.current_device())
    print(f"### ll_gemm one-launch probe on {describe_device()}\n")
    print("| shape | dtype | 2 launches | 1 launch | + prefetch | + prefetch + early | 1L pdl=False | best swept | "
          "its config |\n|---|---|---:|---:|---:|---:|---:|---:|---|", flush=True)
    for K, N, fp8 in CASES:
        for M in MS:
            sets = _sets(M, N, K, fp8)
            h = ll_gemm_config(M, N, K, 1 if fp8 else 2, sms)
            fixed = [_time(sets, dict(h, ONE_LAUNCH=False)), _time(sets, dict(h, ONE_LAUNCH=True)),
                     _time(sets, dict(h, ONE_LAUNCH=True, PREFETCH=True)),
                     _time(sets, dict(h, ONE_LAUNCH=True, PREFETCH=True, EARLY_LAUNCH=True)),
                     _time(sets, dict(h, ONE_LAUNCH=True), pdl=False)]
            best = (float("inf"), None)
            if time.time() < t_end:
                for c in _sweep(M, N, K, fp8, sms):
                    try:
                        us = _time(sets, c)
                    except Exception as e:  # noqa: BLE001 - a config the GPU cannot run is reported
                        print(f"<!-- {_short(c)}: {type(e).__name__}: {str(e)[:100]} -->")
                        continue
                    best = min(best, (us, _short(c)), key=lambda r: r[0])
            print(f"| M={M} N={N} K={K} | {'fp8' if fp8 else 'bf16'} | " + " | ".join(f"{t:.2f}" for t in fixed) +
                  f" | {best[0]:.2f} | {best[1] or 'not swept (time)'} |", flush=True)
            del sets
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
