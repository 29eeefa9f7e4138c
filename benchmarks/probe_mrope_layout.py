"""Probe (GPU): is Liger's 0.5-1 % lead at mrope T = 4096 / 16384 (`bench rotary`, sessions 3 and 41,
with persisting L2 lines reset between providers) its kernel's, or the layout each is given?

`bench rotary` gives ours q and k as slices of one [T, (32 + 2 x 8) x 128] qkv tensor, as engines
pass them (each token's 12 KB row: 10 KB read and written, the v part skipped), and a cos/sin cache
gathered at random positions; Liger gets q and k as separate contiguous tensors and cos / sin
already gathered per token ([3, 1, T, D]). Here ours also runs on separate contiguous q and k.
Prediction (before the run): ours on contiguous q, k within 0.3 % of Liger or ahead; on qkv slices
0.5-1 % behind, as in the bench. If so, the lead is the layout engines impose, not the kernel.

python benchmarks/probe_mrope_layout.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics

import torch

import lmkernels
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us_rounds, n_input_sets
from lmkernels.bench.rotary import D, HKV, HQ, MAX_POS, SECTIONS, _liger, rope_cache
from lmkernels.runtime.device import describe_device

BF16 = torch.bfloat16


def makers(T: int, lg_mrope) -> dict:
    """{variant: make(set index) -> call}, each set its own fresh random inputs."""
    def ours(contiguous: bool):
        def make(i):
            g = torch.Generator(device="cuda").manual_seed(5000 + i)
            if contiguous:
                q = torch.randn(T, HQ * D, device="cuda", dtype=BF16, generator=g)
                k = torch.randn(T, HKV * D, device="cuda", dtype=BF16, generator=g)
            else:
                qkv = torch.randn(T, (HQ + 2 * HKV) * D, device="cuda", dtype=BF16, generator=g)
                q, k = qkv[:, :HQ * D], qkv[:, HQ * D:(HQ + HKV) * D]
            cache = rope_cache(MAX_POS, D, BF16)
            pos = torch.randint(0, MAX_POS, (3, T), device="cuda", generator=g)
            return lambda: lmkernels.mrope(pos, q, k, cache, SECTIONS, D)
        return make

    v = {"ours, q and k slices of qkv (the bench's)": ours(False), "ours, q and k separate contiguous": ours(True)}
    if lg_mrope is not None:
        def liger(i):
            g = torch.Generator(device="cuda").manual_seed(6000 + i)
            q = torch.randn(1, T, HQ, D, device="cuda", dtype=BF16, generator=g).transpose(1, 2)
            k = torch.randn(1, T, HKV, D, device="cuda", dtype=BF16, generator=g).transpose(1, 2)
            ang = torch.rand(3, 1, T, D, device="cuda", generator=g) * 6.2832
            cos, sin = ang.cos().to(BF16), ang.sin().to(BF16)
            return lambda: lg_mrope.LigerQwen2VLMRopeFunction.apply(q, k, cos, sin, SECTIONS)
        v["Liger (contiguous q, k; cos / sin gathered)"] = liger
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    _, lg_mrope = _liger()
    print(f"### mrope by q / k layout; {describe_device()}\n")
    print(f"copy bandwidth (1 GiB), measured in this run: {copy_bandwidth_gbs():.0f} GB/s; µs: CUDA-graph medians a "
          f"call over rotating input sets, median of {args.rounds} interleaved rounds (min-max); bytes 2 T (Hq + Hkv) D 2\n")
    print("| T | variant | µs | GB/s |")
    print("|---:|---|---|---:|")
    for T in (4096, 16384):
        nbytes = 2 * T * (HQ + HKV) * D * 2
        k = n_input_sets(nbytes)
        variants = {n: [make(i) for i in range(k)] for n, make in makers(T, lg_mrope).items()}
        times = graph_us_rounds(variants, args.rounds)
        for n, ts in times.items():
            us = statistics.median(ts)
            print(f"| {T} | {n} | {us:.2f} ({min(ts):.2f}-{max(ts):.2f}) | {nbytes / us / 1e3:.0f} |", flush=True)
        variants = None
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
