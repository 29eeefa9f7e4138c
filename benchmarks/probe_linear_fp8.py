"""Probe (GPU): lmkernels.linear on fp8 e4m3 dense weights at decode sizes, against the kernels it
chooses between (ll_gemm's heuristic, lmkernels.scaled_mm) and torch._scaled_mm, in one run.

Per-tensor scales, bf16 out, no tables for these shapes (linear's untuned rule: ll_gemm at M = 1,
scaled_mm from M = 2 on weights of >= 16 MiB). CUDA-graph medians, weights rotating over 4x the L2
(lmkernels.bench.harness), each call PDL-launched after the one before where the op has PDL.
python benchmarks/probe_linear_fp8.py
"""
from __future__ import annotations

import torch

import lmkernels
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.ops.small_gemm import use_ll_gemm
from lmkernels.runtime.device import describe_device

FP8 = torch.float8_e4m3fn
SHAPES = ((4096, 4096), (6144, 4096), (14336, 4096), (4096, 14336))


def main() -> None:
    copy = copy_bandwidth_gbs()
    print(f"### linear, fp8 e4m3 dense weights, bf16 out; {describe_device()}\n")
    print(f"copy bandwidth (1 GiB), measured in this run: {copy:.0f} GB/s; µs: CUDA-graph medians a call\n")
    print("| N x K | M | linear | ll_gemm (heuristic) | scaled_mm | torch._scaled_mm | linear took |")
    print("|---|---|---:|---:|---:|---:|---|")
    for N, K in SHAPES:
        k = n_input_sets(N * K)
        ws = [(torch.randn(N, K, device="cuda") * 0.5).to(FP8) for _ in range(k)]
        sx = torch.tensor(0.5, device="cuda")
        sw = torch.tensor(0.01, device="cuda")
        for M in (1, 2, 4, 8, 16):
            x = (torch.randn(M, K, device="cuda") * 2).to(FP8)
            took = "ll_gemm" if use_ll_gemm(M, N, K, FP8, 0) else "scaled_mm"
            cases = {
                "linear": [lambda w=w: lmkernels.linear(x, w, out_dtype=torch.bfloat16, x_scale=sx, w_scale=sw)
                           for w in ws],
                "ll_gemm": [lambda w=w: lmkernels.ll_gemm(x, w, out_dtype=torch.bfloat16, x_scale=sx, w_scale=sw)
                            for w in ws],
                "scaled_mm": [lambda w=w: lmkernels.scaled_mm(x, w.t(), sx, sw, torch.bfloat16) for w in ws],
                "torch": [lambda w=w: torch._scaled_mm(x, w.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16,
                                                       use_fast_accum=True) for w in ws],
            }
            us = {name: graph_us(calls, reps=30) for name, calls in cases.items()}
            print(f"| {N} x {K} | {M} | {us['linear']:.2f} | {us['ll_gemm']:.2f} | {us['scaled_mm']:.2f} | "
                  f"{us['torch']:.2f} | {took} |", flush=True)
        del ws
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
