"""Probe (GPU): does the bench time a cold GPU? Issue 2's and 4's remaining device misses, timed as
`lmkernels bench` does (graph_us right after the inputs are built, after a 1 s pause when the case
before ran calls over 50 µs) and after the same graph has replayed for WARMUP_MS first.

Why: session 13's probe_norm_l2 timed rms_norm T = 4096 H = 4096 at 2.88 TB/s rotated where
`bench norm` gives 2.78 (both use harness.graph_us; the probe interleaves rounds and never pauses).
Prediction (written before the run): if the gap is clocks ramping after an idle spell, the warm
column gains 2-4 % on the 24 µs norm and the 12 µs KV write and under 1 % on the 3 µs decode
pack/unpack (latency, not clocks); the copy rows gain with them, so our fraction of the same-bytes
copy stays where it is. If it is machine placement (session 13's other reading), cold and warm agree
within 1 %.

python benchmarks/probe_warmup.py [--rounds 3] [--warmup-ms 300]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from lmkernels.bench import kv_cache, norm, packing
from lmkernels.bench.harness import COOL_S, copy_bandwidth_gbs, graph_us, n_input_sets, same_bytes_copy
from lmkernels.bench.peers import liger
from lmkernels.runtime.device import describe_device


def _cases():
    bf16 = torch.bfloat16
    rms = norm._shape_cases(4096, 4096, bf16, liger())[0]
    kv = kv_cache._case(4096, "NHD", "auto", bf16)
    pk, upk = packing.cases(bf16, packing.CASES[:1])
    out = []
    for op, shape, _, nbytes, providers, *_ in (rms, kv, pk, upk):
        keep = {k: v for k, v in providers.items() if k in ("lmkernels-pointer", "liger")}
        keep["copy, same bytes"] = same_bytes_copy(nbytes)
        out.append((f"{op} {shape}", nbytes, keep))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup-ms", type=float, default=300.0)
    args = ap.parse_args()
    copy = copy_bandwidth_gbs()
    print(f"### cold (as the bench) vs warmed graphs; {describe_device()}\n")
    print(f"copy bandwidth (1 GiB): {copy:.0f} GB/s; µs: CUDA-graph medians a call, median of {args.rounds} "
          f"rounds; cold: graph_us after a {COOL_S:.0f} s pause; warm: after {args.warmup_ms:.0f} ms of replays\n")
    print("| case | provider | µs cold | µs warm | warm / cold | GB/s cold | GB/s warm |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, nbytes, providers in _cases():
        k = n_input_sets(nbytes)
        res = {p: ([], []) for p in providers}
        for _ in range(args.rounds):
            for p, make in providers.items():
                calls = [make(i) for i in range(k)]
                time.sleep(COOL_S)
                res[p][0].append(graph_us(calls))
                time.sleep(COOL_S)
                res[p][1].append(graph_us(calls, warmup_ms=args.warmup_ms))
                calls = None
                torch.cuda.empty_cache()
        for p, (cold, warm) in res.items():
            c, w = statistics.median(cold), statistics.median(warm)
            print(f"| {name} | {p} | {c:.2f} | {w:.2f} | {w / c:.3f} | {nbytes / c / 1e3:.0f} | {nbytes / w / 1e3:.0f} |")


if __name__ == "__main__":
    main()
