"""Probe: pack_seq / unpack_seq tile configs at decode sizes (ops/packing.py copy_config was never swept).

copy_config's sizes are design predictions (16 KB a program, 16-byte vectors): at B = 64, Lmax = 4
and 9216-element bf16 rows it gives [4 tokens, 256 words] tiles with 4 warps, 576 programs in one
wave. The decode rows are latency chains (PDL wait, lengths, data, store), not bandwidth, so the
tile that keeps the most loads in flight per SM is not obviously the 16 KB one. This sweeps BLOCK_T
x BLOCK_D x warps for both ops (and the x-row-indexed pack of probe_pack_scatter.py), rotated and
on one input set, 2 interleaved rounds, the median kept.

Prediction (written before the run): within +-5 % of the committed config at every point; a
1-token tile (programs of pad rows then never wait for data) -0.1 to -0.2 µs on pack.

    python benchmarks/probe_pack_config.py [--rounds 2]
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import torch

import lmkernels
from lmkernels.bench import packing as packing_bench
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.ops import packing as packing_ops
from lmkernels.runtime.device import describe_device

sys.path.insert(0, str(Path(__file__).parent))
import probe_pack_scatter  # noqa: E402

_committed_config = packing_ops.copy_config


def _use(config) -> None:
    """Make every plan take `config` (None: the committed copy_config)."""
    packing_ops.copy_config = _committed_config if config is None else (lambda *a, **k: config)
    packing_ops._plans.clear()
    packing_ops._fast_plans.clear()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    copy = copy_bandwidth_gbs()
    print(f"### pack / unpack tile configs at decode, {describe_device()}\n")
    print(f"copy bandwidth, measured in this run: {copy:.0f} GB/s; CUDA-graph medians a call (PDL on), median of "
          f"{args.rounds} interleaved rounds\n")
    print("| op | shape | BLOCK_T x BLOCK_D (words) | warps | µs rotated | µs one set | committed config |")
    print("|---|---|---|---:|---:|---:|---|")
    configs = [None] + [(t, d, w) for t, d, w in itertools.product((1, 2, 4), (128, 256, 512), (1, 2, 4, 8))
                        if t * d * 8 >= w * 32 * 16]  # at least one 16-byte vector a thread
    for B, L, lo, trailing in packing_bench.CASES[:2]:
        g = torch.Generator(device="cuda").manual_seed(4000 + B + L)
        lengths = torch.randint(lo, L + 1, (B,), device="cuda", generator=g)
        N = int(lengths.sum())
        row_bytes = 2 * torch.Size(trailing).numel()
        shape = f"B={B} Lmax={L} N={N} row={'x'.join(map(str, trailing))}"
        default = _committed_config(row_bytes // 8, 8, L)

        def x_set(i):
            gi = torch.Generator(device="cuda").manual_seed(5000 + i)
            return torch.randn(N, *trailing, device="cuda", generator=gi).to(torch.bfloat16)

        ops = {"pack_seq": ((B * L + N) * row_bytes, lambda x: lambda: lmkernels.pack_seq(x, lengths, max_len=L)),
               "pack_seq scatter": ((B * L + N) * row_bytes, lambda x: lambda: probe_pack_scatter.pack_scatter(x, lengths, L)),
               "unpack_seq": (2 * N * row_bytes, lambda p: lambda: lmkernels.unpack_seq(p, lengths, num_tokens=N))}
        for op, (nbytes, make) in ops.items():
            k = n_input_sets(nbytes)
            xs = [x_set(i) for i in range(k)]
            if op == "unpack_seq":
                _use(None)
                xs = [lmkernels.pack_seq(x, lengths, 0.0, max_len=L) for x in xs]
            times = {c: ([], []) for c in configs}
            for _ in range(args.rounds):
                for c in configs:
                    _use(c)
                    calls = [make(x) for x in xs]
                    times[c][0].append(graph_us(calls))
                    times[c][1].append(graph_us(calls[:1]))
            for c in configs:
                t, d, w = default if c is None else c
                rot, warm = (statistics.median(v) for v in times[c])
                print(f"| {op} | {shape} | {t} x {d} | {w} | {rot:.2f} | {warm:.2f} | "
                      f"{'committed' if c is None else 'yes' if c == default else ''} |", flush=True)
            xs = None
            torch.cuda.empty_cache()
    _use(None)


if __name__ == "__main__":
    main()
