"""Probe (GPU): why Liger's rms_norm runs T = 4096 H = 4096 at ~3.05 TB/s on one input set replayed
(ANCHORS.md's method) while ours, a copy of the same bytes and torch.compile stay at ~2.8 (session 13's
`lmkernels bench norm`, where all of them are equal with input sets rotating past the L2).

Variants, each timed on rotating input sets ("rotated") and on the first set replayed ("one set"):
the op (allocating, out= a fixed y, PDL off), Liger's autograd function and its forward (which
allocates Y and RSTD itself), a probe kernel of our own with Liger's layout (1-D row, a program a
row, 8 warps) with and without the rstd store and with cache policies, and torch.add as the copy.
python benchmarks/probe_norm_l2.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics

import torch
import triton
import triton.language as tl

import lmkernels
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.bench.peers import liger
from lmkernels.runtime.device import describe_device

BF16 = torch.bfloat16


@triton.jit
def _probe_rms(x_ptr, w_ptr, y_ptr, r_ptr, H, eps, BLOCK: tl.constexpr, STORE_RSTD: tl.constexpr,
               X_POLICY: tl.constexpr, Y_MOD: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < H
    x = tl.load(x_ptr + row * H + offs, mask=mask, other=0.0, eviction_policy=X_POLICY).to(tl.float32)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    rstd = tl.math.rsqrt(tl.sum(x * x, axis=0) / H + eps)
    if STORE_RSTD:
        tl.store(r_ptr + row, rstd)
    tl.store(y_ptr + row * H + offs, (x * rstd * w).to(y_ptr.dtype.element_ty), mask=mask, cache_modifier=Y_MOD)


def probe(x, w, y=None, store_rstd=False, x_policy="", y_mod=""):
    T, H = x.shape
    r = torch.empty(T, device=x.device, dtype=torch.float32)

    def call():
        out = torch.empty_like(x) if y is None else y
        _probe_rms[(T,)](x, w, out, r, H, 1e-6, BLOCK=triton.next_power_of_2(H), STORE_RSTD=store_rstd,
                         X_POLICY=x_policy, Y_MOD=y_mod, num_warps=8 if H <= 8192 else 16)
    return call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    lg = liger()
    lrms = None if lg is None else lg.rms_norm
    copy = copy_bandwidth_gbs()
    print(f"### rms_norm on one input set vs rotating sets; {describe_device()}\n")
    print(f"copy bandwidth (1 GiB), measured in this run: {copy:.0f} GB/s; µs: CUDA-graph medians a call, median of "
          f"{args.rounds} interleaved rounds; bytes 2 T H 2 + 2 H; Liger: {'yes' if lrms else 'not installed'}\n")
    print("| T | H | variant | µs rotated | GB/s rotated | µs one set | GB/s one set |")
    print("|---|---|---|---:|---:|---:|---:|")
    for T, H in ((4096, 4096), (4096, 8192), (2048, 8192)):
        nbytes = (2 * T * H + H) * 2
        k = n_input_sets(nbytes)
        xs = [torch.randn(T, H, device="cuda", dtype=BF16) for _ in range(k)]
        ys = [torch.empty_like(x) for x in xs]
        w = torch.randn(H, device="cuda", dtype=BF16)
        v = {"op": [lambda x=x: lmkernels.rms_norm(x, w) for x in xs],
             "op out= fixed y": [lambda x=x, y=y: lmkernels.rms_norm(x, w, out=y) for x, y in zip(xs, ys)],
             "op pdl off": [lambda x=x: lmkernels.rms_norm(x, w, pdl=False) for x in xs],
             "probe 1-D": [probe(x, w) for x in xs],
             "probe 1-D fixed y": [probe(x, w, y) for x, y in zip(xs, ys)],
             "probe 1-D + rstd store": [probe(x, w, store_rstd=True) for x in xs],
             "probe 1-D x evict_last": [probe(x, w, x_policy="evict_last") for x in xs],
             "probe 1-D x evict_first": [probe(x, w, x_policy="evict_first") for x in xs],
             "probe 1-D y .cs": [probe(x, w, y_mod=".cs") for x in xs],
             "probe 1-D x evict_last, y .cs": [probe(x, w, x_policy="evict_last", y_mod=".cs") for x in xs],
             "copy torch.add": [lambda x=x: torch.add(x, 0) for x in xs]}
        if lrms is not None:
            v["liger function"] = [lambda x=x: lrms.LigerRMSNormFunction.apply(x, w, 1e-6, 0.0, "llama", False)
                                   for x in xs]
            v["liger forward (allocates Y, RSTD)"] = [lambda x=x: lrms.rms_norm_forward(x, w, 1e-6, 0.0, "llama", False)
                                                      for x in xs]
        rot = {n: [] for n in v}
        one = {n: [] for n in v}
        for _ in range(args.rounds):
            for n, calls in v.items():
                rot[n].append(graph_us(calls, reps=30))
                one[n].append(graph_us(calls[:1], reps=30))
        for n in v:
            a, b = statistics.median(rot[n]), statistics.median(one[n])
            print(f"| {T} | {H} | {n} | {a:.2f} | {nbytes / a / 1e3:.0f} | {b:.2f} | {nbytes / b / 1e3:.0f} |",
                  flush=True)
        del xs, ys, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
