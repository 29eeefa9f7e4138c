"""Config sweep behind the heuristics in ops/norm.py and ops/activation.py (GPU; a developer tool).

Times the kernels directly through their Launcher with configs the heuristics do not pick, so that
the choice in norm_config / act_config is a measured one. Prints markdown tables.
python benchmarks/sweep.py [norm|activation]...
"""
import sys

import torch
import triton

from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.ops import activation as act_ops
from lmkernels.ops import norm as norm_ops
from lmkernels.ops._common import balanced_programs, resident_programs
DT = torch.bfloat16


def sweep_norm(copy):
    print("\n| H | T | mode | warps | waves | stages | µs | GB/s | of copy |\n|---|---|---|---|---|---|---:|---:|---:|")
    for H in (4096, 8192):
        for T in (1, 16, 4096, 32768):
            nbytes = (2 * T * H + H) * 2
            k = n_input_sets(nbytes)
            xs = [torch.randn(T, H, device="cuda", dtype=DT) for _ in range(k)]
            w = torch.randn(H, device="cuda", dtype=DT)
            ys = [torch.empty_like(x) for x in xs]
            block = triton.next_power_of_2(H)
            for mode in (0, 1):  # descriptors take host-made descriptor args: timed by `lmkernels bench`
                for warps in (4, 8, 16):
                    for waves in (0.5, 1, 2, 1000):
                        for stages in (1, 2, 3):
                            if T <= 16 and (waves != 1 or stages != 1):
                                continue  # one row a program: neither matters
                            grid = (balanced_programs(T, resident_programs(0, warps, waves)),)
                            calls = [lambda x=x, y=y: norm_ops._launch(0, grid, (x, x, w, y, T, H, H, H, H, 1e-6),
                                                                        (False, True, block, True, stages, mode), num_warps=warps)
                                     for x, y in zip(xs, ys)]
                            us = graph_us(calls, reps=20)
                            gbs = nbytes / us / 1e3
                            print(f"| {H} | {T} | {mode} | {warps} | {waves} | {stages} | {us:.2f} | {gbs:.0f} | {gbs / copy:.3f} |")


def sweep_act(copy):
    print("\n| d | T | mode | BLOCK_D | warps | waves | stages | µs | GB/s | of copy |\n|---|---|---|---|---|---|---|---:|---:|---:|")
    for d in (14336,):
        for T in (1, 16, 256, 4096, 16384):
            nbytes = 3 * T * d * 2
            k = n_input_sets(nbytes)
            xs = [torch.randn(T, 2 * d, device="cuda", dtype=DT) for _ in range(k)]
            ys = [torch.empty(T, d, device="cuda", dtype=DT) for _ in range(k)]
            for mode in (0, 1):
                for bd, warps in ((256, 1), (512, 2), (1024, 4), (2048, 4), (2048, 8)):
                    for waves in (1, 2, 4, 1000):
                        for stages in (1, 2, 3):
                            cols = triton.cdiv(d, bd)
                            if T * cols <= 132 and (waves != 1 or stages != 1):
                                continue
                            grid = (balanced_programs(T, max(1, resident_programs(0, warps, waves) // cols)), cols)
                            calls = [lambda x=x, y=y: act_ops._launch(0, grid, (x, x, y, T, d, 2 * d, d, 0.0),
                                                                       (0, 1, bd, True, True, stages, mode), num_warps=warps)
                                     for x, y in zip(xs, ys)]
                            us = graph_us(calls, reps=20)
                            gbs = nbytes / us / 1e3
                            print(f"| {d} | {T} | {mode} | {bd} | {warps} | {waves} | {stages} | {us:.2f} | {gbs:.0f} | {gbs / copy:.3f} |")


if __name__ == "__main__":
    copy = copy_bandwidth_gbs()
    print(f"copy bandwidth {copy:.0f} GB/s")
    which = sys.argv[1:] or ["norm", "activation"]
    if "norm" in which:
        sweep_norm(copy)
    if "activation" in which:
        sweep_act(copy)
