"""Config sweep behind the heuristics in ops/norm.py and ops/activation.py (GPU; a developer tool).

Times the kernels directly through their Launcher with configs the heuristics do not pick, so that
the choice in norm_config / act_config is a measured one. Outputs are allocated per call, as the ops
do (and as `lmkernels bench` times them). Prints markdown tables.
python benchmarks/sweep.py [norm|activation]...
"""
import sys

import torch
import triton

from lmkernels import reference as ref
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.ops import activation as act_ops
from lmkernels.ops import norm as norm_ops
from lmkernels.ops._common import halves_descriptor, tile_descriptor

DT = torch.bfloat16


def _row(cells, us, nbytes, copy):
    gbs = nbytes / us / 1e3
    print("| " + " | ".join(str(c) for c in cells) + f" | {us:.2f} | {gbs:.0f} | {gbs / copy:.3f} |")


def sweep_norm(copy):
    print("\n| op | H | T | mode | warps | µs | GB/s | of copy |\n|---|---|---|---|---|---:|---:|---:|")
    for H in (4096, 8192):
        block = triton.next_power_of_2(H)
        for T in (1, 16, 4096, 32768):
            for fused in (False, True):
                nbytes = ((4 if fused else 2) * T * H + H) * 2
                k = n_input_sets(nbytes)
                xs = [torch.randn(T, H, device="cuda", dtype=DT) for _ in range(k)]
                rs = [torch.randn(T, H, device="cuda", dtype=DT) for _ in range(k)] if fused else xs
                w = torch.randn(H, device="cuda", dtype=DT)
                for mode in (0, 1, 2):
                    for warps in (4, 8, 16) if H == 4096 else (8, 16, 32):
                        def call(x, r, warps=warps, mode=mode):
                            y = x if fused else torch.empty_like(x)
                            consts = (fused, True, block, mode, False)  # no PDL: the kernel alone
                            if mode == 2:
                                norm_ops._launch_desc(0, (T,), (
                                    tile_descriptor(x, T, H, H, 1, block), tile_descriptor(r, T, H, H, 1, block), w,
                                    tile_descriptor(y, T, H, H, 1, block), T, H, H, H, H, 1e-6), consts, num_warps=warps)
                            else:
                                norm_ops._launch(0, (T,), (x, r, w, y, T, H, H, H, H, 1e-6), consts, num_warps=warps)
                        calls = [lambda x=x, r=r, c=call: c(x, r) for x, r in zip(xs, rs)]
                        _row(("fused" if fused else "rms", H, T, mode, warps), graph_us(calls, reps=30), nbytes, copy)
                del xs, rs
                torch.cuda.empty_cache()


def sweep_act(copy):
    d = 14336
    print("\n| T | BLOCK_T | BLOCK_D | warps | µs | GB/s | of copy |\n|---|---|---|---|---:|---:|---:|")
    for T in (1, 4, 16, 64, 256, 4096, 16384):
        nbytes = 3 * T * d * 2
        xs = [torch.randn(T, 2 * d, device="cuda", dtype=DT) * 3 for _ in range(n_input_sets(nbytes))]
        for bt, bd, w in [(1, 256, 4), (1, 256, 8), (1, 512, 2), (1, 512, 4), (1, 512, 8), (1, 1024, 4),
                          (1, 1024, 8), (1, 2048, 4), (1, 2048, 8), (2, 512, 4), (2, 1024, 8)]:
            grid = (triton.cdiv(d, bd), triton.cdiv(T, bt))
            calls = [lambda x=x, bt=bt, bd=bd, w=w, grid=grid: act_ops._launch(
                0, grid, (x, torch.empty(T, d, device="cuda", dtype=DT), T, d, 2 * d, d, 0.0),
                (0, bt, bd, True, 0), num_warps=w) for x in xs]
            _row((T, bt, bd, w), graph_us(calls, reps=30), nbytes, copy)
        fn = torch.compile(ref.silu_and_mul, dynamic=False, fullgraph=True)
        _row((T, "torch.compile", "", ""), graph_us([lambda x=x: fn(x) for x in xs], reps=30), nbytes, copy)
        del xs
        torch.cuda.empty_cache()


def sweep_act_desc(copy, act=0, sizes=((256, 14336), (4096, 14336), (16384, 14336))):
    """Descriptor mode: tile shapes, one tile a program (the persistent prefetching grids this swept
    before ran 4-5 % behind: results/h100/sweep_activation_descriptor.md)."""
    print(f"\nact {act}\n| T | BLOCK_T | BLOCK_D | warps | waves | stages | µs | GB/s | of copy |\n"
          "|---|---|---|---|---|---|---:|---:|---:|")
    for T, d in sizes:
        nbytes = 3 * T * d * 2
        xs = [torch.randn(T, 2 * d, device="cuda", dtype=DT) * 3 for _ in range(n_input_sets(nbytes))]
        for bd, w in ((512, 4), (1024, 4), (1024, 8), (2048, 4), (2048, 8)):  # one tile a program, as pointer mode
            def call(x, bd=bd, w=w):
                y = torch.empty(T, d, device="cuda", dtype=DT)
                act_ops._launch_desc(0, (triton.cdiv(d, bd), T), (halves_descriptor(x, T, d, 2 * d, 1, bd),
                                                                tile_descriptor(y, T, d, d, 1, bd), T, d, 2 * d, d, 7.0),
                                     (act, 1, bd, True, 2), num_warps=w)
            calls = [lambda x=x, c=call: c(x) for x in xs]
            _row((T, 1, bd, w, "one tile a program", ""), graph_us(calls, reps=30), nbytes, copy)
        bt, bd, w = act_ops.act_config(T, d, 132)
        calls = [lambda x=x: act_ops._launch(0, (triton.cdiv(d, bd), triton.cdiv(T, bt)), (
            x, torch.empty(T, d, device="cuda", dtype=DT), T, d, 2 * d, d, 7.0), (act, bt, bd, True, 0),
            num_warps=w) for x in xs]
        _row((T, bt, bd, w, "pointer", ""), graph_us(calls, reps=30), nbytes, copy)
        del xs
        torch.cuda.empty_cache()


if __name__ == "__main__":
    copy = copy_bandwidth_gbs()
    print(f"copy bandwidth {copy:.0f} GB/s")
    which = sys.argv[1:] or ["norm", "activation"]
    if "norm" in which:
        sweep_norm(copy)
    if "activation" in which:
        sweep_act(copy)
    if "activation-descriptor" in which:
        sweep_act_desc(copy)
    if "activation-descriptor-step" in which:  # swiglustep_and_mul
        sweep_act_desc(copy, 1, ((4096, 14336), (16384, 14336), (4096, 4096)))
