"""Host µs per eager call (GPU): our ops against a plain torch op, and where the time goes.

python benchmarks/host_overhead.py
"""
import torch

import lmkernels
from lmkernels.bench.harness import host_us, interleaved_host_us
from lmkernels.ops import kv_cache as kv_ops
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime import launch

x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
y = torch.empty_like(x)
g = torch.randn(1, 2 * 14336, device="cuda", dtype=torch.bfloat16)
# reshape_and_cache_flash at T = 1 (issue 4's host row): 8 heads of 128, bf16 NHD caches of 512 blocks of 16
kv = torch.randn(1, 8, 128, device="cuda", dtype=torch.bfloat16)
k_cache = torch.empty(512, 16, 8, 128, device="cuda", dtype=torch.bfloat16)
v_cache = torch.empty_like(k_cache)
slot = torch.tensor([37], device="cuda", dtype=torch.int64)
k_scale = torch.tensor([0.5], device="cuda")
k8 = torch.empty(512, 16, 8, 128, device="cuda", dtype=torch.float8_e4m3fn)
v8 = torch.empty_like(k8)
args = (x, x, w, y, 1, 4096, 4096, 4096, 4096, 1e-6)
lmkernels.rms_norm(x, w, out=y)
plan = norm_ops._plan(4096, x.dtype, 0, False, True, None)
block, warps, _, _, use_pdl = plan[:5]
consts, meta = (plan[6], plan[7]) if 1 <= plan[5] else (plan[2], plan[3])  # the variant a T = 1 call takes
args_key = norm_ops._launch.key(0, args, consts, warps, 1, use_pdl)
assert args_key[0] == meta
key, largs = norm_ops._launch.prep(0, meta, *args)
c_launch, function, packed, coop, pdl, _ = norm_ops._launch.cache[key]
stream = torch._C._cuda_getCurrentRawStream(0)
print(f"fast launch: {launch.FAST_LAUNCH}")
lmkernels.reshape_and_cache_flash(kv, kv, k_cache, v_cache, slot)  # compiles and caches its launch
lmkernels.reshape_and_cache_flash(kv, kv, k8, v8, slot, "fp8", k_scale, k_scale)


def _launched(*args) -> bool:
    return True


rows = {
    "torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
    "torch.empty_like(x)": lambda: torch.empty_like(x),
    "lmkernels.rms_norm(x, w)": lambda: lmkernels.rms_norm(x, w),
    "lmkernels.rms_norm(x, w, out=y)": lambda: lmkernels.rms_norm(x, w, out=y),
    "lmkernels.rms_norm(x, w, access='pointer')": lambda: lmkernels.rms_norm(x, w, access="pointer"),
    "lmkernels.fused_add_rms_norm(x, y, w)": lambda: lmkernels.fused_add_rms_norm(x, y, w),
    "lmkernels.silu_and_mul(g)": lambda: lmkernels.silu_and_mul(g),
    "lmkernels.reshape_and_cache_flash(T = 1)": lambda: lmkernels.reshape_and_cache_flash(kv, kv, k_cache, v_cache, slot),
    "torch.ops.lmkernels.rms_norm(x, w, 1e-6, None)": lambda: torch.ops.lmkernels.rms_norm(x, w, 1e-6, None),
    "kernel[grid] (Triton's launch)": lambda: norm_ops._rms_norm_kernel[(1,)](*args, *consts, num_warps=warps,
                                                                       launch_pdl=use_pdl),
    "Launcher.fast (cached)": lambda: norm_ops._launch.fast(0, meta, 1, 1, *args),
    "  C launch alone": lambda: c_launch(1, 1, 1, stream, function, coop, pdl, None, None, packed, None, None, None,
                                         *largs, *consts),
    "  prep (key + args)": lambda: norm_ops._launch.prep(0, meta, *args),
    "  plan lookup": lambda: norm_ops._plans.get((4096, x.dtype, 0, False, True, None)),
}
# The KV write's launch (20 runtime arguments, 7 of them pointers) against the norm's (10, 4): does
# the C launcher's cost grow with the argument count?
kv_args = (kv, kv, k_cache, v_cache, slot, 1, kv, kv, 512, 16, *kv.stride()[:2], *kv.stride()[:2],
           *k_cache.stride()[:3], 1, 0, 0)
kv_plan = kv_ops._plans[(8, 128, kv.dtype, k_cache.dtype, slot.dtype, "auto", False, None, 0)]
kv_meta = kv_plan[1][4]
kv_key, kv_largs = kv_ops._launch.prep(0, kv_meta, *kv_args)
kv_entry = kv_ops._launch.cache[kv_key]
rows.update({
    "Launcher.fast (cached), KV write": lambda: kv_ops._launch.fast(0, kv_meta, 1, 1, *kv_args),
    "  C launch alone, KV write": lambda: kv_entry[0](1, 1, 1, stream, kv_entry[1], kv_entry[3], kv_entry[4], None,
                                                      None, kv_entry[2], None, None, None, *kv_largs, *kv_entry[5]),
    "  prep (key + args), KV write": lambda: kv_ops._launch.prep(0, kv_meta, *kv_args),
})
for name, fn in rows.items():
    print(f"{name:50s} {host_us(fn, 2000):6.2f} µs")

# The ops' own Python: each op with its launcher's fast() replaced by a stand-in that launches
# nothing and reports success (what is left is the op's checks, plan lookup and call overhead).
print("\nPython of the op alone (Launcher.fast stubbed, nothing launched):")
# The norms and the KV write launch from their memos (ops/norm.py, ops/kv_cache.py): the bound
# launches are stubbed too (an entry's slots named here).
memo_slots = [(m, (2, 3)) for m in norm_ops._memo.entries.values()] + [(m, (5, 7)) for m in kv_ops._memo.entries.values()]
for name, module, fn in (("lmkernels.rms_norm(x, w, out=y)", norm_ops, lambda: lmkernels.rms_norm(x, w, out=y)),
                         ("lmkernels.rms_norm(x, w)", norm_ops, lambda: lmkernels.rms_norm(x, w)),
                         ("lmkernels.fused_add_rms_norm(x, y, w)", norm_ops, lambda: lmkernels.fused_add_rms_norm(x, y, w)),
                         ("lmkernels.reshape_and_cache_flash(T = 1)", kv_ops,
                          lambda: lmkernels.reshape_and_cache_flash(kv, kv, k_cache, v_cache, slot))):
    real = module._launch.fast
    bound = [[m[i] for i in slots] for m, slots in memo_slots]
    module._launch.fast = _launched
    for m, slots in memo_slots:
        for i in slots:
            m[i] = _launched if m[i] is not None else None
    try:
        print(f"{name:50s} {host_us(fn, 2000):6.2f} µs")
    finally:
        module._launch.fast = real
        for (m, slots), saved in zip(memo_slots, bound):
            for i, b in zip(slots, saved):
                m[i] = b

_get_stream = torch._C._cuda_getCurrentRawStream


# Floors: an eager call that asks each operand only the facts the kernel depends on (device, dtype,
# shape, strides; no comparisons, no plan lookup), takes the pointers and the stream, and calls the
# cached C launch: what any call that checks its operands fully must pay on this host.
def rms_floor():
    for t in (x, y, w):
        t.get_device(), t.dtype, t.shape, t.stride()
    px, pw, py = x.data_ptr(), w.data_ptr(), y.data_ptr()
    c_launch(1, 1, 1, _get_stream(0), function, coop, pdl, None, None, packed, None, None, None,
             px, px, pw, py, 1, 4096, 4096, 4096, 4096, 1e-6, *consts)


def rms_alloc_floor():  # the allocating call's: x's and w's facts, empty_like and the C launch
    for t in (x, w):
        t.get_device(), t.dtype, t.shape, t.stride()
    out = torch.empty_like(x)
    px, pw, po = x.data_ptr(), w.data_ptr(), out.data_ptr()
    c_launch(1, 1, 1, _get_stream(0), function, coop, pdl, None, None, packed, None, None, None,
             px, px, pw, po, 1, 4096, 4096, 4096, 4096, 1e-6, *consts)
    return out


lmkernels.rms_norm(x, w, out=y)
norm_go = norm_ops._memo.last[1][2]  # the memo's bound launch of that call (one row: the prefetching config)


def kv_floor():
    for t in (kv, kv, k_cache, v_cache, slot):
        t.get_device(), t.dtype, t.shape, t.stride()
    pk, pv, pkc, pvc, ps = kv.data_ptr(), kv.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), slot.data_ptr()
    kv_entry[0](1, 1, 1, _get_stream(0), kv_entry[1], kv_entry[3], kv_entry[4], None, None, kv_entry[2], None, None,
                None, pk, pv, pkc, pvc, ps, 1, pk, pk, *kv_args[8:], *kv_entry[5])


def kv_facts():  # the memo key of ops/kv_cache.py's public function, as it builds it
    return (kv.get_device(), kv.get_device(), k_cache.get_device(), v_cache.get_device(), slot.get_device(),
            kv.dtype, kv.dtype, k_cache.dtype, v_cache.dtype, slot.dtype, kv.stride(), kv.stride(), k_cache.shape,
            k_cache.stride(), v_cache.shape, v_cache.stride(), slot.stride(), "auto", None, None, 0, None)


kv_go = kv_ops._memo.entries[kv_facts()][5]


# The comparison, interleaved so that a busy spell on the shared host hits both sides:
# ten alternating rounds, the best of each side.
# Allocating against allocating as well: torch.mul(x, 2) pays for its output as rms_norm(x, w) does.
pairs = {"torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
         "lmkernels.rms_norm(x, w, out=y)": lambda: lmkernels.rms_norm(x, w, out=y),
         "torch.mul(x, 2)": lambda: torch.mul(x, 2),
         "lmkernels.rms_norm(x, w)": lambda: lmkernels.rms_norm(x, w),
         "lmkernels.rms_norm(x, w, pdl=False)": lambda: lmkernels.rms_norm(x, w, pdl=False),
         "lmkernels.fused_add_rms_norm(x, y, w)": lambda: lmkernels.fused_add_rms_norm(x, y, w),
         "lmkernels.reshape_and_cache_flash(T = 1)": lambda: lmkernels.reshape_and_cache_flash(kv, kv, k_cache, v_cache,
                                                                                                slot),
         # vLLM's call: the layer's scales always passed (a bf16 cache never reads them)
         "  ... vLLM's call, scales passed": lambda: lmkernels.reshape_and_cache_flash(kv, kv, k_cache, v_cache, slot,
                                                                                      "auto", k_scale, k_scale),
         "  ... fp8 cache, per-tensor scales": lambda: lmkernels.reshape_and_cache_flash(kv, kv, k8, v8, slot, "fp8",
                                                                                        k_scale, k_scale),
         "  floor: rms_norm(out=)'s facts + C launch": rms_floor,
         "  floor: rms_norm(x, w)'s facts + empty_like + C launch": rms_alloc_floor,
         "  norm memo: bound launch alone": lambda: norm_go(1, 1, x, x, w, y, 1),
         "  floor: KV write's facts + C launch": kv_floor,
         "  KV memo: facts tuple": kv_facts,
         "  KV memo: facts tuple + lookup": lambda: kv_ops._memo.entries.get(kv_facts()),
         "  KV memo: bound launch alone": lambda: kv_go(1, 1, kv, kv, k_cache, v_cache, slot, 1)}
best = interleaved_host_us(pairs)
print("\ninterleaved, best of 10 rounds:")
for name, us in best.items():
    print(f"{name:50s} {us:6.2f} µs  ({us / best['torch.mul(x, 2, out=y)']:.2f} x torch.mul)")

# Ways to allocate rms_norm's output (x [1, 4096] bf16): torch.mul(x, 2) allocates its own output for
# ~0.7 µs more than its out= call, while rms_norm(x, w) spends ~2.3 µs more than rms_norm(x, w, out=y).
shape, dt, dev0 = x.shape, x.dtype, x.device
allocs = {"torch.empty_like(x)": lambda: torch.empty_like(x),
          "x.new_empty(shape)": lambda: x.new_empty(shape),
          "torch.empty(shape, dtype=, device=)": lambda: torch.empty(shape, dtype=dt, device=dev0),
          "torch.empty_strided(shape, (H, 1), ...)": lambda: torch.empty_strided(shape, (4096, 1), dtype=dt, device=dev0),
          "x.new_empty_strided(shape, (H, 1))": lambda: x.new_empty_strided(shape, (4096, 1)),
          "torch.mul(x, 2) (allocating torch op)": lambda: torch.mul(x, 2),
          "torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y)}
print("\nallocation, interleaved, best of 10 rounds:")
for name, us in interleaved_host_us(allocs).items():
    print(f"{name:50s} {us:6.2f} µs")
