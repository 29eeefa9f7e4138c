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

Both runs (results/h100/probe_pack_config.md, probe_pack_rule.md) were on the tree before pack's
row-indexed kernel landed (ops/packing.py then had copy_config only): their "committed" rows are
the tile-indexed kernels with copy_config's tiles. On later trees "committed" is pack_seq as it is.

--rule (second run, after the sweep): the sweep's winner at both decode rows, one token of at most
512 words (4 KB) a program and one warp (the scatter pack 2.96 / 2.88 µs rotated / one set at
9216-element rows, against 3.42 / 2.98 committed), at sizes past decode, to decide where it should
stop: more sequences (B = 512), longer Lmax (16, 64) and the bench's B = 64 Lmax = 512 case.
Prediction: the small tiles keep their lead while the call is one wave of programs (decode) and
lose 5-15 % at B = 64 Lmax = 512 (32 resident 1-warp programs an SM, 4 KB each, under the bytes in
flight a 120 MB copy needs); the unpack's speculative load loses wherever it reads pad rows from HBM.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

import lmkernels
from lmkernels.bench import packing as packing_bench
from lmkernels.bench.harness import copy_bandwidth_gbs, n_input_sets
from lmkernels.ops import packing as packing_ops
from lmkernels.runtime.device import describe_device

sys.path.insert(0, str(Path(__file__).parent))
import probe_pack_scatter  # noqa: E402

_committed = packing_ops.copy_config, packing_ops.small_config


def _use(config) -> None:
    """Make every plan take `config` (None: the committed copy_config / small_config)."""
    if config is None:
        packing_ops.copy_config, packing_ops.small_config = _committed
    else:
        packing_ops.copy_config = packing_ops.small_config = lambda *a, **k: config
    packing_ops._plans.clear()
    packing_ops._fast_plans.clear()


RULE_CASES = [(64, 4, 1, (72, 128)), (64, 4, 1, (36, 128)), (512, 4, 1, (72, 128)), (64, 16, 1, (72, 128)),
              (256, 64, 1, (1024,)), (64, 512, 256, (1024,))]


def rule(rounds: int) -> None:
    copy = copy_bandwidth_gbs()
    print(f"### pack / unpack: small one-warp tiles past decode, {describe_device()}\n")
    print(f"copy bandwidth, measured in this run: {copy:.0f} GB/s; CUDA-graph medians a call (PDL on), median of "
          f"{rounds} interleaved rounds; small = 1 token x min(512, row) words, 1 warp\n")
    print("| op | shape | provider | µs rotated | µs one set | GB/s rotated | of copy |")
    print("|---|---|---|---:|---:|---:|---:|")
    for B, L, lo, trailing in RULE_CASES:
        lengths, N, row_bytes, shape, x_set = probe_pack_scatter.decode_case(B, L, lo, trailing)
        small = packing_ops.small_config(row_bytes // 8, 8)

        pack = {"committed": (None, lambda x: lambda: lmkernels.pack_seq(x, lengths, max_len=L)),
                "scatter, committed tiles": (None, lambda x: lambda: probe_pack_scatter.pack_scatter(x, lengths, L)),
                "scatter, small": (None, lambda x: lambda: probe_pack_scatter.pack_scatter(x, lengths, L,
                                                                                             config=small))}
        unpack = {"committed": (None, lambda p: lambda: lmkernels.unpack_seq(p, lengths, num_tokens=N)),
                  "committed kernel, small": (small, lambda p: lambda: lmkernels.unpack_seq(p, lengths, num_tokens=N)),
                  "speculative load, small": (None, lambda p: lambda: probe_pack_scatter.unpack_spec(p, lengths, N,
                                                                                                  config=small))}
        for op, nbytes, providers in (("pack_seq", (B * L + N) * row_bytes, pack),
                                      ("unpack_seq", 2 * N * row_bytes, unpack)):
            k = n_input_sets(nbytes)
            xs = [x_set(i) for i in range(k)]
            if op == "unpack_seq":
                _use(None)
                xs = [lmkernels.pack_seq(x, lengths, 0.0, max_len=L) for x in xs]
            med = probe_pack_scatter.interleaved({name: make for name, (_, make) in providers.items()}, xs, rounds,
                                                 setup=lambda name, p=providers: _use(p[name][0]))
            for name in providers:
                rot, warm = med[name]
                gbs = nbytes / rot / 1e3
                print(f"| {op} | {shape} | {name} | {rot:.2f} | {warm:.2f} | {gbs:.0f} | {gbs / copy:.3f} |",
                      flush=True)
            xs = None
            torch.cuda.empty_cache()
    _use(None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rule", action="store_true")
    args = ap.parse_args()
    if args.rule:
        return rule(args.rounds)
    copy = copy_bandwidth_gbs()
    print(f"### pack / unpack tile configs at decode, {describe_device()}\n")
    print(f"copy bandwidth, measured in this run: {copy:.0f} GB/s; CUDA-graph medians a call (PDL on), median of "
          f"{args.rounds} interleaved rounds\n")
    print("| op | shape | BLOCK_T x BLOCK_D (words) | warps | µs rotated | µs one set | committed config |")
    print("|---|---|---|---:|---:|---:|---|")
    configs = [None] + [(t, d, w) for t, d, w in itertools.product((1, 2, 4), (128, 256, 512), (1, 2, 4, 8))
                        if t * d * 8 >= w * 32 * 16]  # at least one 16-byte vector a thread
    for B, L, lo, trailing in packing_bench.CASES[:2]:
        lengths, N, row_bytes, shape, x_set = probe_pack_scatter.decode_case(B, L, lo, trailing)
        default = _committed[0](row_bytes // 8, 8, L)

        ops = {"pack_seq": ((B * L + N) * row_bytes, lambda x: lambda: lmkernels.pack_seq(x, lengths, max_len=L)),
               "pack_seq scatter": ((B * L + N) * row_bytes, lambda x: lambda: probe_pack_scatter.pack_scatter(x, lengths, L)),
               "unpack_seq": (2 * N * row_bytes, lambda p: lambda: lmkernels.unpack_seq(p, lengths, num_tokens=N))}
        for op, (nbytes, make) in ops.items():
            k = n_input_sets(nbytes)
            xs = [x_set(i) for i in range(k)]
            if op == "unpack_seq":
                _use(None)
                xs = [lmkernels.pack_seq(x, lengths, 0.0, max_len=L) for x in xs]
            med = probe_pack_scatter.interleaved({c: make for c in configs}, xs, args.rounds, setup=_use)
            for c in configs:
                t, d, w = default if c is None else c
                rot, warm = med[c]
                print(f"| {op} | {shape} | {t} x {d} | {w} | {rot:.2f} | {warm:.2f} | "
                      f"{'committed' if c is None else 'yes' if c == default else ''} |", flush=True)
            xs = None
            torch.cuda.empty_cache()
    _use(None)


if __name__ == "__main__":
    main()
