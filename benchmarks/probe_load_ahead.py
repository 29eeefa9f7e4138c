"""Probe: ll_gemm's FMA tiles with LOAD_AHEAD (kernels/small_gemm.py) against the same config
without, on the router shapes' shipped configs (H100, CUDA-graph medians, PDL on, weights rotating
over 4x the L2 as in `lmkernels bench small_gemm`); then the same for the K step halved, which
LOAD_AHEAD may now afford (twice the steps, half the registers a step).

Prediction (session 32, written before the run): Triton 3.6 does not pipeline the FMA loops
(their PTX has no cp.async whatever num_stages says), and a load-only kernel paid ~0.55 µs a K
step in series (probe_router_bounds.md). With the next step's tiles in flight, a program of S
steps waits for about ceil(S / 2) round trips instead of S: the two-step configs (7168 / 6144 x 256
at M = 2-4, BLOCK_K 4096) -0.3 to -0.5 µs (7168 x 256 M = 4 3.69 -> ~3.3, under 2x cuBLAS's 3.65),
the three- and four-step ones (BLOCK_K 2048 at M = 8) -0.5 to -0.8 µs; one-step configs (M = 1,
BLOCK_K 8192) unchanged.
Outcome (probe_load_ahead.md): wrong everywhere. LOAD_AHEAD ran slower on all 16 multi-step
configs, +0.05 to +3.1 µs (7168 x 256 M = 4 3.71 -> 4.80, fp8 7168 x 384 M = 4 3.84 -> 6.89), and
BLOCK_K / 2 with it slower still on most; the re-tune of 4 bf16 routers at M = 2-16
(tune_ll_gemm_s32_ahead.log, 99-182 candidates an entry) took it nowhere. The PTX issues the next
step's loads before the FMAs as meant and spills nothing; what the step costs is not the series of
round trips the load-only probe suggested. Key removed again (the commit after this one).

    python benchmarks/probe_load_ahead.py
"""
from __future__ import annotations

import torch

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.bench.small_gemm import ROUTERS
from lmkernels.ops import small_gemm as sg
from lmkernels.runtime.device import describe_device
from lmkernels.tuning.ll_gemm import describe

FP8 = torch.float8_e4m3fn


def _sets(M, N, K, fp8):
    out = []
    for i in range(n_input_sets(N * K * (1 if fp8 else 2))):
        g = torch.Generator(device="cuda").manual_seed(700 + i)
        x = torch.randn(M, K, device="cuda", generator=g)
        w = torch.randn(N, K, device="cuda", generator=g)
        if fp8:
            out.append(((x * 8).to(FP8), (w * 8).to(FP8), torch.full((), 0.1, device="cuda"),
                        torch.full((), 0.01, device="cuda")))
        else:
            out.append((x.bfloat16(), w.bfloat16(), None, None))
    return out


def _us(sets, cfg):
    return graph_us([lambda s=s: lmkernels.ll_gemm(s[0], s[1], x_scale=s[2], w_scale=s[3], config=cfg) for s in sets])


def main() -> int:
    print(f"### ll_gemm LOAD_AHEAD on the shipped FMA configs, {describe_device()}\n")
    print("| shape | dtype | M | shipped config | K steps | µs | + LOAD_AHEAD | BLOCK_K / 2 + LOAD_AHEAD |\n"
          "|---|---|---:|---|---:|---:|---:|---:|")
    dev = torch.cuda.current_device()
    for fp8 in (False, True):
        for K, N in ROUTERS:
            for M in (1, 2, 4, 8, 16):
                dt = FP8 if fp8 else torch.bfloat16
                cfg = sg.tuned_config(M, N, K, dt, dev) or sg.ll_gemm_config(M, N, K, dt.itemsize, 132)
                cfg = sg.check_config(cfg, M)
                if cfg["USE_DOT"]:
                    continue
                steps = -(-sg.split_k(K, cfg["BLOCK_K"], cfg["SPLIT_K"])[1] // cfg["BLOCK_K"])
                sets = _sets(M, N, K, fp8)
                base = _us(sets, cfg)
                ahead = _us(sets, dict(cfg, LOAD_AHEAD=True, num_stages=1)) if steps > 1 else float("nan")
                half = dict(cfg, BLOCK_K=cfg["BLOCK_K"] // 2, LOAD_AHEAD=True, num_stages=1, PRELOAD=False)
                try:
                    halved = _us(sets, sg.check_config(half, M))
                except ValueError:
                    halved = float("nan")
                print(f"| {N} x {K} | {'fp8' if fp8 else 'bf16'} | {M} | {describe(cfg)} | {steps} | {base:.2f} | "
                      f"{ahead:.2f} | {halved:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
