"""Probe: the L2 prefetch before the PDL wait (kernels/access.py prefetch_l2), on and off, in one
process. In the committed code only rms_norm prefetches (grids of at most one program an SM); the
fused_add_rms_norm, reshape_and_cache_flash and pack/unpack rows show what PDL buys and, their two
prefetch columns timing the same kernel, the run's noise. The first run
(benchmarks/results/h100/probe_prefetch_everywhere.md) was on a tree where all of them prefetched.

The cases and input sets are those of `lmkernels bench norm / kv_cache / context_parallel` (inputs
rotating over 4x the L2, CUDA-graph medians of >= 32 calls, each call PDL-launched after the one
before). For each case: the lmkernels pointer provider with the prefetch (the default), without it
(runtime.device.PDL_PREFETCH False, rms_norm's plan cache cleared), and with PDL off. Interleaved: on, off,
on, off over `--rounds`, the median of each kept, so drift between them does not read as a gain.

    python benchmarks/probe_prefetch.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics

import torch

from lmkernels.bench import kv_cache as kv_bench
from lmkernels.bench import norm as norm_bench
from lmkernels.bench import packing as packing_bench
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime import device
from lmkernels.runtime.device import describe_device


def _set_prefetch(on: bool) -> None:
    device.PDL_PREFETCH = on
    norm_ops._plans.clear()  # the only plans that read it


def _selected():
    """(op, shape, bytes, {label: make}) for the cases the prefetch should move."""
    out = []
    for c in norm_bench.cases(shapes=((1, 4096), (16, 4096), (4096, 4096), (4096, 8192))):
        out.append(c)
    out += kv_bench.cases(tokens=(1, 16, 4096))
    out += packing_bench.cases(shapes=packing_bench.CASES[:3])
    picked = []
    for op, shape, _, nbytes, providers, *_ in out:
        mine = {k: v for k, v in providers.items() if k in ("lmkernels-pointer", "lmkernels-pointer, pdl off")}
        if "torch-cat" in providers:
            mine["torch-cat"] = providers["torch-cat"]
        picked.append((op, shape, nbytes, mine))
    return picked


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    copy = copy_bandwidth_gbs()
    print(f"### L2 prefetch before the PDL wait, {describe_device()}\n")
    print(f"copy bandwidth, measured in this run: {copy:.0f} GB/s; µs are CUDA-graph medians a call, the median "
          f"of {args.rounds} interleaved rounds\n")
    print("| op | shape | prefetch on | prefetch off | on / off | pdl off | peer (torch.cat) | on: GB/s | on: of copy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for op, shape, nbytes, providers in _selected():
        k = n_input_sets(nbytes)
        times = {"on": [], "off": [], "pdl off": [], "peer": []}
        for _ in range(args.rounds):
            for label, on in (("on", True), ("off", False)):
                _set_prefetch(on)
                times[label].append(graph_us([providers["lmkernels-pointer"](i) for i in range(k)]))
            _set_prefetch(True)
            times["pdl off"].append(graph_us([providers["lmkernels-pointer, pdl off"](i) for i in range(k)])
                                    if "lmkernels-pointer, pdl off" in providers else float("nan"))
            if "torch-cat" in providers:
                times["peer"].append(graph_us([providers["torch-cat"](i) for i in range(k)]))
        med = {key: statistics.median(v) if v else float("nan") for key, v in times.items()}
        gbs = nbytes / med["on"] / 1e3
        print(f"| {op} | {shape} | {med['on']:.2f} | {med['off']:.2f} | {med['on'] / med['off']:.3f} | "
              f"{med['pdl off']:.2f} | {med['peer']:.2f} | {gbs:.0f} | {gbs / copy:.3f} |", flush=True)
    _set_prefetch(True)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
