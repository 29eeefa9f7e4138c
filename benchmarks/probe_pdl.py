"""Probe (GPU): what the graph's call count and PDL each do to the norm timings at T = 4096.

Same kernel, same K input sets; varies how many calls one graph replay holds (the replay's own
launch is charged over them) and whether the calls are chained with PDL. One markdown table.
python benchmarks/probe_pdl.py
"""
import statistics

import torch

import lmkernels
from lmkernels.bench import harness

DT = torch.bfloat16


def per_call_us(calls, graph_calls, reps=50):
    old = harness.MIN_GRAPH_CALLS
    harness.MIN_GRAPH_CALLS = graph_calls
    try:
        return statistics.median(harness.graph_us(calls, reps=reps) for _ in range(3))
    finally:
        harness.MIN_GRAPH_CALLS = old


print("| case | calls a replay | pdl | µs | TB/s |\n|---|---:|---|---:|---:|")
for T, H in ((1, 4096), (16, 8192), (4096, 4096), (4096, 8192)):
    nbytes = (2 * T * H + H) * 2
    k = harness.n_input_sets(nbytes)
    xs = [torch.randn(T, H, device="cuda", dtype=DT) for _ in range(k)]
    w = torch.randn(H, device="cuda", dtype=DT)
    src = [torch.randn(T * H, device="cuda", dtype=DT) for _ in range(k)]
    dst = [torch.empty_like(s) for s in src]
    for graph_calls in (k, 32, 128):
        for pdl in (False, True):
            us = per_call_us([lambda x=x, p=pdl: lmkernels.rms_norm(x, w, pdl=p) for x in xs], graph_calls)
            print(f"| rms_norm T={T} H={H} | {max(k, graph_calls)} | {pdl} | {us:.2f} | {nbytes / us / 1e6:.3f} |")
        us = per_call_us([lambda s=s, d=d: torch.add(s, 0, out=d) for s, d in zip(src, dst)], graph_calls)
        print(f"| copy, same bytes T={T} H={H} | {max(k, graph_calls)} | - | {us:.2f} | {nbytes / us / 1e6:.3f} |")
