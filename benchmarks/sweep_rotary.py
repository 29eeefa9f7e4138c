"""Config sweep behind ops/rotary.py:rope_config (GPU; a developer tool).

Times _rope_kernel through its Launcher with configs the heuristic does not pick (head groups on
grid axis 1, warps), bf16, 32 q + 8 kv heads of 128, NeoX, q/k slices of one qkv tensor.
Prints markdown tables. python benchmarks/sweep_rotary.py [rope|mrope|desc|modes|bench]...
"""
import sys

import torch
import triton

from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.bench.rotary import rope_cache
from lmkernels.ops import rotary as rope_ops

DT = torch.bfloat16
HQ, HKV, D, MAX_POS = 32, 8, 128, 32768
SECTIONS = (16, 24, 24)


def _inputs(T, k, mrope):
    sets = []
    for i in range(k):
        qkv = torch.randn(T, (HQ + 2 * HKV) * D, device="cuda", dtype=DT)
        pos = torch.randint(0, MAX_POS, (3, T) if mrope else (T,), device="cuda")
        sets.append((pos, qkv[:, :HQ * D], qkv[:, HQ * D:(HQ + HKV) * D]))
    return sets


def sweep(copy, mrope, tokens=(1, 16, 64, 256, 4096, 16384)):
    cache = rope_cache(MAX_POS, D, DT)  # a rotation: replays keep the values finite
    print(f"\n{'mrope' if mrope else 'rotary_embedding'}\n"
          "| T | groups | BLOCK_HQ | BLOCK_HK | warps | µs | GB/s | of copy |"
          "\n|---|---|---|---|---|---:|---:|---:|")
    stride_qkv = (HQ + 2 * HKV) * D
    for T in tokens:
        nbytes = 2 * T * (HQ + HKV) * D * 2
        sets = _inputs(T, n_input_sets(nbytes), mrope)
        for groups in (1, 2, 4, 8):
            bhq, bhk = triton.next_power_of_2(-(-HQ // groups)), triton.next_power_of_2(-(-HKV // groups))
            for warps in (1, 2, 4, 8, 16):
                if (bhq + bhk) * D < 32 * warps * 4 or (bhq + bhk) * D > 32 * warps * 128:
                    continue  # fewer than 4 or more than 128 elements a thread
                consts = (HQ, HKV, D, D // 2, True, mrope, False, *SECTIONS, True, bhq, bhk, D // 2, 0)
                calls = [lambda p=p, q=q, k=k, consts=consts, warps=warps: rope_ops._launch(
                    0, (T, groups), (p, q, k, cache, T, MAX_POS, T if mrope else 0, 1, stride_qkv, stride_qkv, D),
                    consts, num_warps=warps) for p, q, k in sets]
                us = graph_us(calls, reps=30)
                gbs = nbytes / us / 1e3
                print(f"| {T} | {groups} | {bhq} | {bhk} | {warps} | {us:.2f} | {gbs:.0f} | {gbs / copy:.3f} |",
                      flush=True)
        del sets
        torch.cuda.empty_cache()


def desc(copy, tokens=(1, 4096)):
    """Descriptor mode (host-made TMA descriptors), groups x warps; each config checked bit-identical
    to the pointer mode once."""
    from triton.tools.tensor_descriptor import TensorDescriptor
    cache = rope_cache(MAX_POS, D, DT)  # a rotation: replays keep the values finite
    stride_qkv = (HQ + 2 * HKV) * D
    print("\n| T | groups | warps | µs | GB/s | of copy | = pointer |\n|---|---|---|---:|---:|---:|---|")
    for T in tokens:
        nbytes = 2 * T * (HQ + HKV) * D * 2
        sets = _inputs(T, n_input_sets(nbytes), False)
        for groups in (1, 4):
            bhq, bhk = triton.next_power_of_2(-(-HQ // groups)), triton.next_power_of_2(-(-HKV // groups))
            dc = TensorDescriptor(cache, [MAX_POS, 2, D // 2], [D, D // 2, 1], [1, 2, D // 2])
            for warps in (1, 2, 4, 8):
                def launch(p, q, k, mode, warps=warps):
                    consts = (HQ, HKV, D, D // 2, True, False, False, *SECTIONS, True, bhq, bhk, D // 2, mode)
                    args = (T, MAX_POS, 0, 1, stride_qkv, stride_qkv, D)
                    if mode == 2:
                        dq = TensorDescriptor(q, [T, HQ, 2, D // 2], [stride_qkv, D, D // 2, 1], [1, bhq, 2, D // 2])
                        dk = TensorDescriptor(k, [T, HKV, 2, D // 2], [stride_qkv, D, D // 2, 1], [1, bhk, 2, D // 2])
                        rope_ops._launch_desc(0, (T, groups), (p, dq, dk, dc, *args), consts, num_warps=warps)
                    else:
                        rope_ops._launch(0, (T, groups), (p, q, k, cache, *args), consts, num_warps=warps)
                p, q, k = sets[0]
                xa, xb = q._base.clone(), q._base.clone()  # the qkv tensor: clones keep the slices' strides
                qa, ka = xa[:, :HQ * D], xa[:, HQ * D:(HQ + HKV) * D]
                qb, kb = xb[:, :HQ * D], xb[:, HQ * D:(HQ + HKV) * D]
                launch(p, qa, ka, 0)
                launch(p, qb, kb, 2)
                same = torch.equal(xa, xb) and not xa.isnan().any()
                us = graph_us([lambda p=p, q=q, k=k: launch(p, q, k, 2) for p, q, k in sets], reps=30)
                gbs = nbytes / us / 1e3
                print(f"| {T} | {groups} | {warps} | {us:.2f} | {gbs:.0f} | {gbs / copy:.3f} | {same} |", flush=True)
        del sets
        torch.cuda.empty_cache()


def bench():
    """`lmkernels bench rotary`'s table (until the CLI knows the family)."""
    from lmkernels.bench import harness, rotary
    table = harness.Table("rotary (H100)", harness.copy_bandwidth_gbs())
    harness.run_cases(table, rotary.cases())
    print(table.markdown())
    table.write_csv("rotary.csv")


def modes(copy, tokens=(1, 16, 4096, 16384)):
    """The ops as shipped (their own config), each access mode, rotary and mrope."""
    import lmkernels
    from lmkernels.runtime.access import available_modes
    cache = rope_cache(MAX_POS, D, DT)  # a rotation: replays keep the values finite
    print("\n| op | T | mode | µs | GB/s | of copy |\n|---|---|---|---:|---:|---:|")
    for T in tokens:
        nbytes = 2 * T * (HQ + HKV) * D * 2
        for mrope in (False, True):
            sets = _inputs(T, n_input_sets(nbytes), mrope)
            for mode in available_modes():
                if mrope:
                    calls = [lambda p=p, q=q, k=k, m=mode: lmkernels.mrope(p, q, k, cache, list(SECTIONS), D, access=m)
                             for p, q, k in sets]
                else:
                    calls = [lambda p=p, q=q, k=k, m=mode: lmkernels.rotary_embedding(p, q, k, D, cache, access=m)
                             for p, q, k in sets]
                us = graph_us(calls, reps=30)
                gbs = nbytes / us / 1e3
                print(f"| {'mrope' if mrope else 'rotary'} | {T} | {mode} | {us:.2f} | {gbs:.0f} | {gbs / copy:.3f} |",
                      flush=True)
            del sets
            torch.cuda.empty_cache()


if __name__ == "__main__":
    which = sys.argv[1:] or ["rope", "mrope", "desc", "modes"]
    copy = copy_bandwidth_gbs()
    print(f"copy bandwidth: {copy:.0f} GB/s")
    if "rope" in which:
        sweep(copy, False)
    if "mrope" in which:
        sweep(copy, True)
    if "desc" in which:
        desc(copy)
    if "modes" in which:
        modes(copy, (1, 16, 256, 4096, 16384))
    if "bench" in which:
        bench()
