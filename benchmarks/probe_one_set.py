"""Probe (GPU): what the "one input set" column and the copy ceiling measure at issue 2's and 4's
missed bandwidth points.

Part A, rms_norm T = 4096 H = 4096 bf16 on one input set (x and y are 64 MB against a 50 MB L2).
Session 39's `bench norm` had Liger at 3062 GB/s there and ours at 2812; session 13's probe
(probe_norm_l2.md) had ours at 3192 and Liger at 2984, same kernels. Here every kernel writes into
the same preallocated y, at several placements of y (each a fresh allocation, the earlier ones kept
alive so that none is reused): ours (rms_norm(out=y)), Liger's forward kernel launched into y, and
torch.add(x, 0, out=y), the copy of the same bytes. Also each on rotating sets (4 x L2).
Prediction (before the run): one-set µs moves with y's placement by >= 5 % for all three; at one
placement ours and Liger's kernel are within 2 % (same bytes, same order, one row a program, 8 warps).
If so, the column measures where y landed, not the kernel.

Part B, reshape_and_cache_flash bf16 8 x 128, block 16, NHD, rotating sets, by slot pattern:
"random" (the bench's: a random permutation of all slots, as vLLM's own benchmark samples them),
"blocks" (vLLM's layout in a prefill: 16 consecutive tokens fill a block, blocks in random order),
"sequential" (slot = token). Beside them the fastest Triton PDL copy of the same bytes.
Prediction: random 0.965-0.97x the best copy (the bench's ratio); blocks and sequential >= 0.985x.
If so, the 3 % is the scatter's cost in DRAM, not the kernel's.

python benchmarks/probe_one_set.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics

import torch
import triton
import triton.language as tl

import lmkernels
from lmkernels.bench import copies
from lmkernels.bench.harness import copy_bandwidth_gbs, copy_buffers, graph_us, n_input_sets, reset_persisting_l2
from lmkernels.bench.peers import liger
from lmkernels.runtime.device import describe_device

BF16 = torch.bfloat16
EPS = 1e-6
PAD_MIB = (0, 1, 3, 7, 13, 21, 34, 55)  # a spacer allocated before each y


def liger_into(lg, x, w, y):
    """Liger's rms_norm forward kernel (llama casting, as `bench norm` calls it) writing into y."""
    if lg is None:
        return None
    from liger_kernel.ops import rms_norm as lr
    T, H = x.shape
    rstd = torch.empty(T, device=x.device, dtype=torch.float32)
    block = triton.next_power_of_2(H)
    warps = lr.calculate_settings(H)[1]

    def call():
        lr._rms_norm_forward_kernel[(T,)](y, y.stride(0), x, x.stride(0), w, w.stride(0), rstd, rstd.stride(0), H,
                                          EPS, 0.0, lr._CASTING_MODE_LLAMA, elementwise_affine=True,
                                          BLOCK_SIZE=block, num_warps=warps)
    return call


def variants(lg, x, w, y) -> dict:
    v = {"ours rms_norm(out=y)": lambda: lmkernels.rms_norm(x, w, EPS, out=y),
         "Liger kernel into y": liger_into(lg, x, w, y),
         "copy torch.add(x, 0, out=y)": lambda: torch.add(x, 0, out=y)}
    return {k: c for k, c in v.items() if c is not None}


def part_a(lg, rounds: int) -> None:
    T = H = 4096
    nbytes = (2 * T * H + H) * 2
    g = torch.Generator(device="cuda").manual_seed(7)
    x = torch.randn(T, H, device="cuda", dtype=BF16, generator=g)
    w = torch.randn(H, device="cuda", dtype=BF16, generator=g)
    keep, ys = [], []
    for mib in PAD_MIB:
        keep.append(torch.empty(max(1, mib << 20), device="cuda", dtype=torch.uint8))
        ys.append(torch.empty_like(x))
    k = n_input_sets(nbytes)
    xs = [x] + [torch.randn(T, H, device="cuda", dtype=BF16, generator=g) for _ in range(k - 1)]
    rot_ys = [torch.empty_like(x) for _ in range(k)]
    names = list(variants(lg, x, w, ys[0]))
    one = {(p, n): [] for p in range(len(ys)) for n in names}
    rot = {n: [] for n in names}
    for _ in range(rounds):
        for p, y in enumerate(ys):
            for n, c in variants(lg, x, w, y).items():
                one[(p, n)].append(graph_us([c], reps=30))
        for n in names:
            calls = [variants(lg, xi, w, yi)[n] for xi, yi in zip(xs, rot_ys)]
            rot[n].append(graph_us(calls, reps=30))
    print(f"#### A. rms_norm T = {T} H = {H} bf16, one input set, by where y lies (bytes 2 T H 2 + 2 H = "
          f"{nbytes / 1e6:.1f} MB; GB/s = bytes / µs; median of {rounds} interleaved rounds)\n")
    print("| y | y address (MiB, low 32 bits) | " + " | ".join(f"{n} µs | GB/s" for n in names) + " |")
    print("|---|---:|" + "---:|---:|" * len(names))
    for p, y in enumerate(ys):
        cells = []
        for n in names:
            us = statistics.median(one[(p, n)])
            cells.append(f"{us:.2f} | {nbytes / us / 1e3:.0f}")
        print(f"| after a {PAD_MIB[p]} MiB spacer | {(y.data_ptr() & 0xFFFFFFFF) / 2**20:.0f} | " + " | ".join(cells)
              + " |")
    cells = [f"{statistics.median(rot[n]):.2f} | {nbytes / statistics.median(rot[n]) / 1e3:.0f}" for n in names]
    print(f"| rotating {k} sets (each its own y) | | " + " | ".join(cells) + " |")
    for n in names:
        us = [statistics.median(one[(p, n)]) for p in range(len(ys))]
        print(f"\n{n}: one set {min(us):.2f}-{max(us):.2f} µs over {len(ys)} placements "
              f"({max(us) / min(us) - 1:.1%} spread)", end="")
    print("\n")
    del x, xs, ys, rot_ys, keep
    torch.cuda.empty_cache()


def part_e(lg, rounds: int) -> None:
    """As part A with the roles swapped: y fixed, x at several placements (each x a fresh
    allocation after a spacer, the earlier ones kept alive), one set."""
    T = H = 4096
    nbytes = (2 * T * H + H) * 2
    g = torch.Generator(device="cuda").manual_seed(9)
    w = torch.randn(H, device="cuda", dtype=BF16, generator=g)
    y = torch.empty(T, H, device="cuda", dtype=BF16)
    keep, xs = [], []
    for mib in PAD_MIB:
        keep.append(torch.empty(max(1, mib << 20), device="cuda", dtype=torch.uint8))
        xs.append(torch.randn(T, H, device="cuda", dtype=BF16, generator=g))
    names = list(variants(lg, xs[0], w, y))
    one = {(p, n): [] for p in range(len(xs)) for n in names}
    for _ in range(rounds):
        for p, x in enumerate(xs):
            for n, c in variants(lg, x, w, y).items():
                one[(p, n)].append(graph_us([c], reps=30))
    print(f"#### E. rms_norm T = {T} H = {H} bf16, one input set, y fixed, by where x lies (median of {rounds} "
          f"interleaved rounds)\n")
    print("| x | x address (MiB, low 32 bits) | " + " | ".join(f"{n} µs | GB/s" for n in names) + " |")
    print("|---|---:|" + "---:|---:|" * len(names))
    for p, x in enumerate(xs):
        cells = [f"{statistics.median(one[(p, n)]):.2f} | {nbytes / statistics.median(one[(p, n)]) / 1e3:.0f}"
                 for n in names]
        print(f"| after a {PAD_MIB[p]} MiB spacer | {(x.data_ptr() & 0xFFFFFFFF) / 2**20:.0f} | " + " | ".join(cells)
              + " |")
    print()
    del xs, keep, y
    torch.cuda.empty_cache()


def print_rounds(what: str, names: list, nbytes: int, columns: list) -> None:
    """Markdown: a row per name; for each (label, {name: [µs a round]}) column its median, the rounds,
    and the GB/s of nbytes at the median."""
    print(f"| {what} | " + " | ".join(f"{label} µs (rounds) | GB/s" for label, _ in columns) + " |")
    print("|---|" + "---|---:|" * len(columns))
    for n in names:
        cells = []
        for _, times in columns:
            us = statistics.median(times[n])
            cells.append(f"{us:.2f} ({', '.join(f'{t:.2f}' for t in times[n])}) | {nbytes / us / 1e3:.0f}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print()


def part_c(lg, rounds: int) -> None:
    """The bench's calls: each allocates its output inside the captured graph (ours: empty_like;
    Liger's autograd function: Y and RSTD), on one set and rotating."""
    T = H = 4096
    nbytes = (2 * T * H + H) * 2
    g = torch.Generator(device="cuda").manual_seed(8)
    k = n_input_sets(nbytes)
    xs = [torch.randn(T, H, device="cuda", dtype=BF16, generator=g) for _ in range(k)]
    w = torch.randn(H, device="cuda", dtype=BF16, generator=g)
    v = {"ours rms_norm(x, w) (allocates y)": [lambda x=x: lmkernels.rms_norm(x, w, EPS) for x in xs],
         "copy torch.add(x, 0) (allocates)": [lambda x=x: torch.add(x, 0) for x in xs]}
    if lg is not None:
        v["Liger function (allocates Y, RSTD)"] = [
            lambda x=x: lg.rms_norm.LigerRMSNormFunction.apply(x, w, EPS, 0.0, "llama", False) for x in xs]
    one = {n: [] for n in v}
    rot = {n: [] for n in v}
    for _ in range(rounds):
        for n, calls in v.items():
            one[n].append(graph_us(calls[:1], reps=30))
            rot[n].append(graph_us(calls, reps=30))
    print(f"#### C. the bench's allocating calls, T = {T} H = {H} (each round: one set, then rotating {k} sets)\n")
    print_rounds("call", list(v), nbytes, [("one set", one), ("rotating", rot)])
    del xs, v
    torch.cuda.empty_cache()


@triton.jit
def _touch_kernel(src, out, n, BLOCK: tl.constexpr, EVICT: tl.constexpr):
    """Read BLOCK elements a program with the given L2 eviction policy; one sum a program is stored
    so that the loads stay."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(src + offs, mask=offs < n, other=0.0, eviction_policy=EVICT).to(tl.float32)
    tl.store(out + tl.program_id(0), tl.sum(v, axis=0))


def touch(policy: str, nbytes: int = 64 << 20) -> None:
    """A fresh buffer of nbytes, written, read twice with `policy`, then freed and returned to the
    driver: what the next allocations may reuse. Not timed."""
    buf = torch.randn(nbytes // 2, device="cuda", dtype=BF16)
    block = 8192
    out = torch.empty(triton.cdiv(buf.numel(), block), device="cuda", dtype=torch.float32)
    for _ in range(2):
        _touch_kernel[(out.numel(),)](buf, out, buf.numel(), BLOCK=block, EVICT=policy, num_warps=8)
    torch.cuda.synchronize()
    del buf, out
    torch.cuda.empty_cache()


# Part D's untimed steps: names in --order that are not providers
STEPS = {"reset-l2": reset_persisting_l2, "touch-evict_last": lambda: touch("evict_last"),
         "touch-evict_first": lambda: touch("evict_first"), "touch-normal": lambda: touch("")}


def part_d(lg, rounds: int, order: str, H: int = 4096) -> None:
    """The bench's own providers for rms_norm T = H = 4096 (bench/norm.py's _shape_cases: its
    inputs, its calls), timed as run_cases times them, in the given order (comma-separated provider
    names; the first calls of a provider compile it). Run it in fresh processes with different
    orders to see whether what ran before changes a provider's time. Names in STEPS are untimed
    steps between them (part G: reset the persisting L2 lines; read a freed buffer with an eviction
    policy first). Parts D and G in probe_one_set.md ran before graph_us reset persisting lines
    itself (harness.reset_persisting_l2, added after part G); run now, no order hands the slot on."""
    from lmkernels.bench import norm as bench_norm
    case = bench_norm._shape_cases(4096, H, BF16, lg)[0]
    _, _, _, nbytes, providers, _ = case
    k = n_input_sets(nbytes)
    steps = [n for n in order.split(",") if n in providers or n in STEPS]
    names = [n for n in steps if n in providers]
    one = {n: [] for n in names}
    rot = {n: [] for n in names}
    for _ in range(rounds):
        for n in steps:
            if n in STEPS:
                STEPS[n]()
                continue
            calls = [providers[n](i) for i in range(k)]
            rot[n].append(graph_us(calls))
            one[n].append(graph_us(calls[:1]))
            calls = None
            torch.cuda.empty_cache()
    print(f"#### D. the bench's providers, rms_norm T = 4096 H = {H}, in the order {steps} (rotating {k} sets, then "
          f"one set, each round)\n")
    print_rounds("provider", names, nbytes, [("rotating", rot), ("one set", one)])


def kv_slots(pattern: str, T: int, nb: int, block: int, g) -> torch.Tensor:
    if pattern == "random":
        return torch.randperm(nb * block, device="cuda", generator=g)[:T]
    if pattern == "blocks":
        blocks = torch.randperm(nb, device="cuda", generator=g)[:-(-T // block)]
        return (blocks[:, None] * block + torch.arange(block, device="cuda")).flatten()[:T]
    return torch.arange(T, device="cuda")


def part_b(rounds: int) -> None:
    H, D, block = 8, 128, 16
    print("#### B. reshape_and_cache_flash bf16, 8 heads x 128, block 16, NHD, rotating sets, by slot pattern "
          "(bytes 2 T H D (2 + 2) + 8 T)\n")
    print("| T | slots | µs | GB/s | / best copy | best copy µs (which) |")
    print("|---:|---|---:|---:|---:|---|")
    for T in (4096, 32768):
        nb = max(64, -(-(T * 5 // 4) // block))
        nbytes = 2 * T * H * D * 4 + 8 * T
        k = n_input_sets(nbytes)
        g = torch.Generator(device="cuda").manual_seed(4000 + T)
        sets = []
        for i in range(k):
            key = torch.randn(T, H, D, device="cuda", dtype=BF16, generator=g)
            value = torch.randn(T, H, D, device="cuda", dtype=BF16, generator=g)
            caches = [torch.zeros(nb, block, H, D, device="cuda", dtype=BF16) for _ in range(2)]
            sets.append((key, value, caches, {p: kv_slots(p, T, nb, block, g) for p in ("random", "blocks",
                                                                                       "sequential")}))
        bufs = copy_buffers(nbytes)
        copy_makers = copies.pdl_copy_makers(bufs)
        res = {p: [] for p in ("random", "blocks", "sequential")}
        cps = {n: [] for n in copy_makers}
        for _ in range(rounds):
            for p in res:
                calls = [lambda s=s, p=p: lmkernels.reshape_and_cache_flash(s[0], s[1], s[2][0], s[2][1], s[3][p])
                         for s in sets]
                res[p].append(graph_us(calls, reps=30))
            for n, make in copy_makers.items():
                cps[n].append(graph_us([make(i) for i in range(k)], reps=30))
        best_name = min(cps, key=lambda n: statistics.median(cps[n]))
        best = statistics.median(cps[best_name])
        for p, ts in res.items():
            us = statistics.median(ts)
            print(f"| {T} | {p} | {us:.2f} | {nbytes / us / 1e3:.0f} | {best / us:.3f} | {best:.2f} ({best_name}) |",
                  flush=True)
        del sets
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parts", default="aecb", help="parts to run, in order")
    ap.add_argument("--hidden", type=int, default=4096, help="part d's H")
    ap.add_argument("--order", default="liger,lmkernels-pointer", help="part d's providers, in order")
    args = ap.parse_args()
    lg = liger()
    print(f"### One input set and slot patterns at issue 2's and 4's missed points; {describe_device()}\n")
    print(f"copy bandwidth (1 GiB), measured in this run: {copy_bandwidth_gbs():.0f} GB/s; µs are CUDA-graph "
          f"medians a call; Liger: {'yes' if lg is not None else 'not installed'}\n")
    run = {"a": lambda: part_a(lg, args.rounds), "b": lambda: part_b(args.rounds),
           "c": lambda: part_c(lg, args.rounds), "d": lambda: part_d(lg, args.rounds, args.order, args.hidden),
           "e": lambda: part_e(lg, args.rounds)}
    for part in args.parts:  # in the order given: what ran before is part of what part d asks
        run[part]()


if __name__ == "__main__":
    main()
