"""What the open issue-2 and issue-4 targets are up against, measured on the GPU in one run.

1. host: the floor of an eager call through Triton's C launcher. Each op's fast path is spied on to
   capture its cached launch; the bare C call with prebuilt arguments is then timed alone and after
   a torch.empty_like (the least an allocating op can do), interleaved with torch.mul(x, 2, out=y).
2. warm vs cold L2: the bench times each call on its own input set, rotating enough sets to
   overflow the 50 MB L2 4x (harness.graph_us), so every byte comes from HBM. ANCHORS.md timed peers
   with do_bench_cudagraph on one input set, where a 34-64 MB working set is partly L2-resident. Both
   ways here, for our op and for copies of the same bytes (torch.add, and a PDL copy kernel).
3. rms_norm T = 4096 H = 4096 with cache hints (a probe kernel; the same kernel without hints is the
   control that must match lmkernels.rms_norm).
4. swiglustep / silu descriptor tiles at T = 4096.
5. pack/unpack decode tiles (copy_config patched) and a PDL copy of the same bytes.
python benchmarks/probe_limits.py [host] [l2] [hints] [desc] [pack]
"""
import sys
import time

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

import lmkernels
from lmkernels.bench import copies
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.ops import activation as act_ops
from lmkernels.ops import kv_cache as kv_ops
from lmkernels.ops import norm as norm_ops
from lmkernels.ops import packing as pack_ops
from lmkernels.ops._common import halves_descriptor, tile_descriptor

BF16 = torch.bfloat16


# ---------------------------------------------------------------- 1. host floor

def bare_launch(launcher, call):
    """Run call() once with launcher.fast spied on; return a zero-argument C launch of what it launched."""
    rec = {}
    orig = launcher.fast

    def spy(dev, meta, g0, g1, *args):
        rec.update(dev=dev, meta=meta, grid=(g0, g1), args=args)
        return orig(dev, meta, g0, g1, *args)
    launcher.fast = spy
    try:
        call()
    finally:
        launcher.fast = orig
    _, largs = launcher.prep(rec["dev"], rec["meta"], *rec["args"])
    key = launcher.prep(rec["dev"], rec["meta"], *rec["args"])[0]
    c_launch, function, packed, coop, pdl, consts = launcher.cache[key]
    stream = torch.cuda.current_stream().cuda_stream
    g0, g1 = rec["grid"]
    return (lambda: c_launch(g0, g1, 1, stream, function, coop, pdl, None, None, packed, None, None, None,
                             *largs, *consts)), (c_launch, g0, g1, stream, function, coop, pdl, packed, largs, consts)


def interleaved(fns, n=2000, rounds=10):
    best = {k: float("inf") for k in fns}
    for f in fns.values():
        for _ in range(50):
            f()
    for _ in range(rounds):
        for k, f in fns.items():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            torch.cuda.synchronize()
            best[k] = min(best[k], (time.perf_counter() - t0) / n * 1e6)
    return best


def host():
    x = torch.randn(1, 4096, device="cuda", dtype=BF16)
    w = torch.randn(4096, device="cuda", dtype=BF16)
    y = torch.empty_like(x)
    for _ in range(3):
        lmkernels.rms_norm(x, w, out=y)
    bare, parts = bare_launch(norm_ops._launch, lambda: lmkernels.rms_norm(x, w, out=y))
    c_launch, g0, g1, stream, function, coop, pdl, packed, largs, consts = parts
    xp, wp = largs[0], largs[2]
    rest = largs[4:]

    def floor_alloc():  # the least an allocating rms_norm can do through Triton's launcher
        out = torch.empty_like(x)
        c_launch(g0, g1, 1, stream, function, coop, pdl, None, None, packed, None, None, None,
                 xp, xp, wp, out.data_ptr(), *rest, *consts)
        return out

    H, D, T = 8, 128, 1
    kc = torch.randn(512, 16, H, D, device="cuda", dtype=BF16)
    vc = torch.randn_like(kc)
    k = torch.randn(T, H, D, device="cuda", dtype=BF16)
    v = torch.randn_like(k)
    slots = torch.tensor([77], device="cuda")
    for _ in range(3):
        lmkernels.reshape_and_cache_flash(k, v, kc, vc, slots)
    kv_bare, _ = bare_launch(kv_ops._launch, lambda: lmkernels.reshape_and_cache_flash(k, v, kc, vc, slots))
    fns = {
        "torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
        "torch.mul(x, 2)": lambda: torch.mul(x, 2),
        "torch.empty_like(x)": lambda: torch.empty_like(x),
        "rms_norm C launch alone (prebuilt args)": bare,
        "empty_like + rms_norm C launch (allocating floor)": floor_alloc,
        "lmkernels.rms_norm(x, w, out=y)": lambda: lmkernels.rms_norm(x, w, out=y),
        "lmkernels.rms_norm(x, w)": lambda: lmkernels.rms_norm(x, w),
        "reshape_and_cache_flash C launch alone": kv_bare,
        "lmkernels.reshape_and_cache_flash T=1": lambda: lmkernels.reshape_and_cache_flash(k, v, kc, vc, slots),
    }
    best = interleaved(fns)
    ref = best["torch.mul(x, 2, out=y)"]
    print("\n## host µs per eager call, interleaved, best of 10 rounds of 2000 (T = 1, bf16)\n")
    print("| call | µs | x torch.mul(out=) |\n|---|---:|---:|")
    for k, v in best.items():
        print(f"| {k} | {v:.2f} | {v / ref:.2f} |")


# ---------------------------------------------------------------- 2. warm vs cold L2

def copy_makers(nbytes):
    """Same-bytes copies: nbytes/2 read + nbytes/2 written, bf16."""
    n = max(1, nbytes // 4)

    def add(i):
        s = torch.randn(n, device="cuda", dtype=BF16)
        d = torch.empty_like(s)
        return lambda: torch.add(s, 0, out=d)

    def pdl_copy(block, warps):
        def make(i):
            s = torch.randn(n, device="cuda", dtype=BF16)
            d = torch.empty_like(s)
            return lambda: copies.copy(s, d, block, warps, True)
        return make
    return {"copy torch.add": add, "copy triton PDL 2048x4": pdl_copy(2048, 4),
            "copy triton PDL 4096x8": pdl_copy(4096, 8), "copy triton PDL 8192x8": pdl_copy(8192, 8)}


def cold_warm(label, nbytes, makers):
    k = n_input_sets(nbytes)
    for name, make in makers.items():
        calls = [make(i) for i in range(k)]
        cold = graph_us(calls, reps=30)
        warm = graph_us(calls[:1], reps=30)
        print(f"| {label} | {name} | {k} | {cold:.2f} | {nbytes / cold / 1e3:.0f} | {warm:.2f} | "
              f"{nbytes / warm / 1e3:.0f} |")
        del calls
        torch.cuda.empty_cache()


def l2():
    print("\n## one input set per call (cold: sets rotate over 4x L2) vs one set repeated (warm)\n")
    print("| case | provider | sets | cold µs | cold GB/s | warm µs | warm GB/s |\n|---|---|---:|---:|---:|---:|---:|")
    T, H = 4096, 4096
    nb = 2 * T * H * 2 + H * 2  # x read, y written, weight

    def rms(i):
        x = torch.randn(T, H, device="cuda", dtype=BF16)
        w = torch.randn(H, device="cuda", dtype=BF16)
        return lambda: lmkernels.rms_norm(x, w)
    cold_warm("rms_norm T=4096 H=4096", nb, {"lmkernels": rms, **copy_makers(nb)})
    T, Hk, D = 4096, 8, 128
    nb = 4 * T * Hk * D * 2 + T * 8  # key + value read, both written, int64 slots

    def kv(i):
        kc = torch.empty(T // 16 + 64, 16, Hk, D, device="cuda", dtype=BF16)
        vc = torch.empty_like(kc)
        k = torch.randn(T, Hk, D, device="cuda", dtype=BF16)
        v = torch.randn_like(k)
        s = torch.randperm(kc.shape[0] * 16, device="cuda")[:T]
        return lambda: lmkernels.reshape_and_cache_flash(k, v, kc, vc, s)
    cold_warm("reshape_and_cache_flash T=4096 8x128", nb, {"lmkernels": kv, **copy_makers(nb)})


# ---------------------------------------------------------------- 3. rms_norm cache hints

@triton.jit
def _rms_probe(x_ptr, w_ptr, y_ptr, H, stride, eps, BLOCK: tl.constexpr, LOAD_HINT: tl.constexpr,
               STORE_HINT: tl.constexpr):
    gdc_wait()
    gdc_launch_dependents()
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    m = offs < H
    w = tl.load(w_ptr + offs, mask=m).to(tl.float32)
    if LOAD_HINT:
        x = tl.load(x_ptr + row * stride + offs, mask=m, eviction_policy="evict_first").to(tl.float32)
    else:
        x = tl.load(x_ptr + row * stride + offs, mask=m).to(tl.float32)
    ms = tl.sum(x * x, axis=0) / H
    y = (x * tl.math.rsqrt(ms + eps) * w).to(y_ptr.dtype.element_ty)
    if STORE_HINT:
        tl.store(y_ptr + row * stride + offs, y, mask=m, cache_modifier=".cs")
    else:
        tl.store(y_ptr + row * stride + offs, y, mask=m)


def hints():
    print("\n## rms_norm cache hints (probe kernel, PDL on, 8 warps, allocating)\n")
    print("| T | H | variant | µs | GB/s |\n|---|---|---|---:|---:|")
    for T, H in ((4096, 4096), (4096, 8192), (32768, 8192)):
        nb = 2 * T * H * 2 + H * 2
        k = n_input_sets(nb)
        xs = [torch.randn(T, H, device="cuda", dtype=BF16) for _ in range(k)]
        w = torch.randn(H, device="cuda", dtype=BF16)
        variants = {"lmkernels.rms_norm": lambda x: lmkernels.rms_norm(x, w)}
        for lh, sh in ((False, False), (True, False), (False, True), (True, True)):
            def v(x, lh=lh, sh=sh):
                y = torch.empty_like(x)
                _rms_probe[(T,)](x, w, y, H, H, 1e-6, BLOCK=H, LOAD_HINT=lh, STORE_HINT=sh, num_warps=8,
                                 launch_pdl=True)
            variants[f"probe load_evict_first={lh} store_cs={sh}"] = v
        for name, f in variants.items():
            us = graph_us([lambda x=x, f=f: f(x) for x in xs], reps=30)
            print(f"| {T} | {H} | {name} | {us:.2f} | {nb / us / 1e3:.0f} |")
        del xs
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- 4. activation descriptor tiles

def desc():
    print("\n## gated activations, descriptor tiles (one tile a program) vs pointer, T = 4096\n")
    print("| act | d | BLOCK_T | BLOCK_D | warps | µs | GB/s |\n|---|---|---|---|---|---:|---:|")
    T = 4096
    for act in (1, 0):
        for d in (4096, 14336):
            nb = 3 * T * d * 2
            xs = [torch.randn(T, 2 * d, device="cuda", dtype=BF16) * 3 for _ in range(n_input_sets(nb))]
            for bt, bd, w in ((1, 2048, 4), (1, 1024, 4), (2, 1024, 4), (2, 1024, 8), (2, 2048, 8), (4, 512, 4),
                              (4, 1024, 8), (8, 256, 4), (16, 256, 4), (16, 256, 8), (1, 4096, 8)):
                def call(x, bt=bt, bd=bd, w=w):
                    y = torch.empty(T, d, device="cuda", dtype=BF16)
                    act_ops._launch_desc(0, (triton.cdiv(d, bd), triton.cdiv(T, bt)), (
                        halves_descriptor(x, T, d, 2 * d, bt, bd),
                        tile_descriptor(y, T, d, d, bt, bd), T, d, 2 * d, d, 7.0), (act, bt, bd, True, 2), num_warps=w)
                try:
                    us = graph_us([lambda x=x, c=call: c(x) for x in xs], reps=30)
                    print(f"| {act} | {d} | {bt} | {bd} | {w} | {us:.2f} | {nb / us / 1e3:.0f} |")
                except Exception as e:
                    print(f"| {act} | {d} | {bt} | {bd} | {w} | failed: {type(e).__name__} {str(e)[:60]} | |")
            f = lmkernels.swiglustep_and_mul if act else lmkernels.silu_and_mul
            us = graph_us([lambda x=x: f(x, access="pointer") for x in xs], reps=30)
            print(f"| {act} | {d} | pointer (op) | | | {us:.2f} | {nb / us / 1e3:.0f} |")
            del xs
            torch.cuda.empty_cache()


# ---------------------------------------------------------------- 5. pack / unpack at decode

def pack():
    print("\n## pack/unpack decode, B = 64, Lmax = 4, row 9216 bf16 (2304 8-byte words): tile configs\n")
    print("| op | BLOCK_T | BLOCK_D (words) | warps | µs | GB/s |\n|---|---|---|---|---:|---:|")
    B, L, row = 64, 4, 9216
    g = torch.Generator(device="cuda").manual_seed(4000 + B + L)
    lengths = torch.randint(1, L + 1, (B,), device="cuda", generator=g)
    N = int(lengths.sum())
    nb_pack = (N + B * L) * row * 2
    nb_unpack = 2 * N * row * 2
    k = n_input_sets(nb_pack)
    xs = [torch.randn(N, row, device="cuda", dtype=BF16) for _ in range(k)]
    ps = [lmkernels.pack_seq(x, lengths, 0.0, max_len=L) for x in xs]
    orig = pack_ops.copy_config
    for cfg in (None, (4, 256, 4), (4, 256, 2), (4, 512, 4), (4, 512, 8), (4, 128, 2), (2, 256, 2), (1, 256, 1),
                (4, 1024, 8), (1, 1024, 4), (2, 512, 4)):
        pack_ops.copy_config = orig if cfg is None else (lambda *a, cfg=cfg, **kw: cfg)
        pack_ops._plans.clear()
        pack_ops._fast_plans.clear()
        label = ("heuristic",) + orig(2304, 8, 4)[0:3] if cfg is None else ("",) + cfg
        us = graph_us([lambda x=x: lmkernels.pack_seq(x, lengths, 0.0, max_len=L) for x in xs], reps=30)
        print(f"| pack {label[0]} | {label[1]} | {label[2]} | {label[3]} | {us:.2f} | {nb_pack / us / 1e3:.0f} |")
        us = graph_us([lambda p=p: lmkernels.unpack_seq(p, lengths, num_tokens=N) for p in ps], reps=30)
        print(f"| unpack {label[0]} | {label[1]} | {label[2]} | {label[3]} | {us:.2f} | {nb_unpack / us / 1e3:.0f} |")
    pack_ops.copy_config = orig
    pack_ops._plans.clear()
    pack_ops._fast_plans.clear()
    del xs, ps
    torch.cuda.empty_cache()
    print("\n| case | provider | sets | cold µs | cold GB/s | warm µs | warm GB/s |\n|---|---|---:|---:|---:|---:|---:|")
    cold_warm("copy, pack's bytes", nb_pack, copy_makers(nb_pack))
    cold_warm("copy, unpack's bytes", nb_unpack, copy_makers(nb_unpack))


if __name__ == "__main__":
    which = sys.argv[1:] or ["host", "l2", "hints", "desc", "pack"]
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, triton {triton.__version__}; "
          f"copy bandwidth (1 GiB) {copy_bandwidth_gbs():.0f} GB/s")
    for name in which:
        globals()[name]()
        sys.stdout.flush()
