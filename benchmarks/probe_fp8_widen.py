"""A/B probe: the fp8 dot tiles of ll_gemm widened to fp16 instead of bf16. (GPU)

Session 15 (results/h100/probe_fp8_widen.md). Before, _mac widened fp8 e4m3 x and weight tiles to
bf16 for tl.dot; sm90 has no e4m3 -> bf16 conversion, so each element paid e4m3x2 -> f16x2 and then
f16 -> bf16 (PTX of a 16 x 32 x 256 step: 96 cvt.rn.f16x2.e4m3x2 and 192 cvt.bf16.f16 a thread).
fp16 holds every e4m3 value exactly, so the products stay exact and the fp32 sums the same.
Prediction, before the first run: outputs bit-identical to the bf16 widening; the fp8 dot tiles
(the tables' M = 16 entries, and the bf16 tables' one-launch 16 x 16 x 512 split-7 tile tried at
M = 8 and 16) 10-25 % faster; FMA rows untouched.

Each run times this tree's kernels and prints one markdown column; run it once per kernel (an old
tree on PYTHONPATH), alternating, twice each. --dump FILE saves every case's output on input set 0,
--compare FILE checks them bit for bit against another run's dump.
python benchmarks/probe_fp8_widen.py LABEL [--dump FILE] [--compare FILE]
"""
import sys

import torch

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.bench.small_gemm import _router_case

ROUTERS_FP8 = ((7168, 256), (7168, 384), (6144, 256), (4096, 256), (5120, 128), (4096, 8))
# the tables' choice, then the bf16 tables' one-launch dot tile, then a two-launch dot split
CONFIGS = {"table": None,
           "dot 16x16x512 s7 1L": {"USE_DOT": True, "BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 512, "SPLIT_K": 7,
                                   "num_warps": 4, "num_stages": 3, "EARLY_LAUNCH": True, "PREFETCH": True,
                                   "ONE_LAUNCH": True, "PRELOAD": False},
           "dot 16x32x256 s16 2L": {"USE_DOT": True, "BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 256, "SPLIT_K": 16,
                                    "num_warps": 4, "num_stages": 3, "EARLY_LAUNCH": False, "PREFETCH": False,
                                    "ONE_LAUNCH": False, "PRELOAD": False}}


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else "run"
    dump = sys.argv[sys.argv.index("--dump") + 1] if "--dump" in sys.argv else None
    compare = sys.argv[sys.argv.index("--compare") + 1] if "--compare" in sys.argv else None
    ref = torch.load(compare) if compare else None
    outs, differ = {}, []
    print(f"## {label}: {torch.cuda.get_device_name()}\n")
    print("| shape | config | µs (rotated, graph median) |")
    print("|---|---|---:|", flush=True)
    for K, N in ROUTERS_FP8:
        for M in (4, 8, 16):
            for name, cfg in CONFIGS.items():
                if cfg is None and M < 16:
                    continue  # the tables' M < 16 entries are FMA rows: no dot, nothing changed
                _, shape, _, nbytes, _, _ = _router_case(K, N, M, True)
                g = torch.Generator(device="cuda")
                sets = []
                for i in range(n_input_sets(nbytes)):
                    g.manual_seed(7000 + 131 * i + M)
                    x = torch.randn(M, K, device="cuda", generator=g)
                    w = torch.randn(N, K, device="cuda", generator=g)
                    sets.append(((x / 0.05).to(torch.float8_e4m3fn), (w / 0.02).to(torch.float8_e4m3fn),
                                 torch.full((), 0.05, device="cuda"), torch.full((), 0.02, device="cuda")))
                kw = {} if cfg is None else {"config": cfg}
                key = f"{shape} {name}"
                x, w, xs, ws = sets[0]
                y = lmkernels.ll_gemm(x, w, x_scale=xs, w_scale=ws, **kw)
                outs[key] = y.cpu()
                if ref is not None and not torch.equal(ref[key], outs[key]):
                    differ.append(key)
                calls = [lambda s=s: lmkernels.ll_gemm(s[0], s[1], x_scale=s[2], w_scale=s[3], **kw) for s in sets]
                us = graph_us(calls, reps=50, min_calls=max(len(calls), 32))
                print(f"| {shape} | {name} | {us:.2f} |", flush=True)
                del sets, calls
                torch.cuda.empty_cache()
    if dump:
        torch.save(outs, dump)
    if ref is not None:
        print(f"\nbit-identical to {compare}: {len(outs) - len(differ)} of {len(outs)} cases; differ: {differ}")


if __name__ == "__main__":
    main()
