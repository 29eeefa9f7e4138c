"""lmkernels.reshape_and_cache_flash against lmkernels.reference.kv_cache."""
import itertools
import re

import pytest
import torch

from helpers import DEVICE, ON_GPU, assert_ulps, randn, seed_of, skip_unavailable
from lmkernels import reference as ref
from lmkernels.ops import kv_cache as kv_ops
from lmkernels.ops.kv_cache import reshape_and_cache_flash as cache_op
from lmkernels.runtime import access as access_rt
from lmkernels.runtime import launch

# Allowed error of a cache element against the reference (lmkernels/reference/kv_cache.py), compared
# as bits (NaN compared as NaN where an input is NaN: the GPU's NaN bits need not be torch's):
#   copies (equal dtypes, or widening):  bit-exact everywhere (a copy)
#   fp8 (e4m3fn, e5m2):                  bit-exact everywhere: IEEE division on both sides
#       (tl.math.div_rn on a GPU, numpy's divide in the interpreter; torch's CUDA and CPU `/` are
#       IEEE) and one round-to-nearest-even cast: cvt.rn.satfinite on sm89+, integer arithmetic
#       elsewhere (the interpreter's own fp8 cast rounds half up and loses the exponent carry)
#   narrowing copies (fp32 key into a bf16 cache):  NARROW_ULPS: 0 on a GPU; 1 ulp under the
#       interpreter, which truncates fp32 -> bf16 (fp32 -> fp16 goes through numpy: exact there too)
NARROW_ULPS = 0 if ON_GPU else 1

MODES = list(access_rt.MODES)
POISON_BYTE = 0xFF  # 1-byte caches: -NaN in both fp8 formats, which the op never writes (NaN is 0x7F)
T_VLLM, H_VLLM = 21, 8  # vLLM's test: 21 tokens (42 here for 5000 blocks), 8 heads
CPU_BIG_REASON = "a GPU runs the large shapes; the interpreter would take minutes"


# ---------------------------------------------------------------- helpers

def _cache(nb, bs, H, D, dtype, layout="NHD"):
    """A poisoned logical [nb, bs, H, D] cache: NaN, or 0xFF bytes for 1-byte dtypes; HND is the
    transposed view of a contiguous [nb, H, bs, D]."""
    shape = (nb, H, bs, D) if layout == "HND" else (nb, bs, H, D)
    if dtype.itemsize == 1:
        c = torch.full(shape, POISON_BYTE, dtype=torch.uint8, device=DEVICE).view(dtype)
    else:
        c = torch.full(shape, float("nan"), dtype=dtype, device=DEVICE)
    return c.transpose(1, 2) if layout == "HND" else c


def _bits(t):
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}[t.element_size()])


def _qkv(T, H, D, dtype, seed, spread=False):
    """(key, value): slices of one [T, 3, H, D] qkv tensor, fresh random data. spread: magnitudes
    2^-14 .. 2^12 so that fp8 sees subnormals, every binade and saturation."""
    qkv = randn(T, 3, H, D, seed=seed)
    if spread:
        gen = torch.Generator(device=DEVICE).manual_seed(seed + 1)
        qkv = qkv * torch.exp2(torch.randint(-14, 13, qkv.shape, device=DEVICE, generator=gen).float())
    qkv = qkv.to(dtype)
    return qkv[:, 1], qkv[:, 2]


def _slots(n, capacity, seed, dtype=torch.int64):
    """n distinct random slots in [0, capacity), as vLLM's test draws them."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randperm(capacity, generator=gen)[:n].to(dtype).to(DEVICE)


def _scales(kind, H, seed):
    if kind is None:
        return None, None
    gen = torch.Generator(device="cpu").manual_seed(seed)
    n = 1 if kind == "tensor" else H
    k, v = (torch.rand(n, generator=gen) * 1.5 + 0.25 for _ in range(2))
    return k.to(DEVICE), v.to(DEVICE)


def _run(key, value, kc0, vc0, slots, kv_cache_dtype="auto", k_scale=None, v_scale=None, **kw):
    """(op's key cache, value cache, reference's key cache, value cache) from copies of kc0, vc0."""
    kc, vc, rk, rv = kc0.clone(), vc0.clone(), kc0.clone(), vc0.clone()
    if kc0.stride() != kc.stride():  # clone keeps HND strides (preserve_format on a dense view)
        raise AssertionError("clone changed the cache's strides")
    assert cache_op(key, value, kc, vc, slots, kv_cache_dtype, k_scale, v_scale, **kw) is None
    ref.reshape_and_cache_flash(key, value, rk, rv, slots, kv_cache_dtype, k_scale, v_scale)
    return kc, vc, rk, rv


def _assert_bits(got, want, what="cache"):
    g, w = _bits(got), _bits(want)
    if not torch.equal(g, w):
        bad = (g != w).nonzero()
        i = tuple(bad[0].tolist())
        raise AssertionError(f"{what}: {bad.shape[0]} of {g.numel()} elements differ; first at {i} "
                             f"(block, offset, head, dim): got bits {g[i].item():#x}, want {w[i].item():#x}")


def _assert_only_slots_written(cache, slots):
    """Every slot outside `slots` (valid ones) still holds the poison in every element; every slot in
    it holds none (with these inputs no written value is NaN or 0xFF)."""
    nb, bs = cache.shape[:2]
    flat = _bits(cache.contiguous()).reshape(nb * bs, -1)  # logical order: a row a slot
    poison = _bits(_cache(1, 1, 1, 1, cache.dtype)).flatten()[0]
    mask = torch.zeros(nb * bs, dtype=torch.bool, device=cache.device)
    s = slots.long()
    s = s[(s >= 0) & (s < nb * bs)]
    mask[s] = True
    untouched = (flat == poison).all(dim=1)
    assert bool(untouched[~mask].all()), f"{int((~untouched[~mask]).sum())} unmapped slots were written"
    assert not bool(untouched[mask].any()), f"{int(untouched[mask].sum())} mapped slots were not written"


def _check(key, value, kc0, vc0, slots, kv_cache_dtype="auto", k_scale=None, v_scale=None, **kw):
    kc, vc, rk, rv = _run(key, value, kc0, vc0, slots, kv_cache_dtype, k_scale, v_scale, **kw)
    _assert_bits(kc, rk, "key_cache")
    _assert_bits(vc, rv, "value_cache")
    _assert_only_slots_written(kc, slots)
    _assert_only_slots_written(vc, slots)
    return kc, vc


# ---------------------------------------------------------------- vLLM's test shapes

HEADS, BLOCKS, NUM_BLOCKS, LAYOUTS = (64, 80, 256), (8, 16, 32), (512, 5000), ("NHD", "HND")
# (key dtype, kv_cache_dtype, cache dtype, scale kind)
KINDS = [(torch.bfloat16, "auto", torch.bfloat16, None), (torch.float32, "auto", torch.float32, None)] + [
    (torch.bfloat16, kv, cdt, sc) for kv, cdt in (("fp8", torch.float8_e4m3fn), ("fp8_e5m2", torch.float8_e5m2))
    for sc in ("tensor", "head")]
VLLM_CASES = list(itertools.product(HEADS, BLOCKS, NUM_BLOCKS, LAYOUTS, range(len(KINDS))))
# The interpreter runs one case per (layout, kind): 12, every head size, block size and block count
# among them; 5000 blocks only where the caches stay small (head 64, block 8: 2 x 41 MB in bf16).
CPU_CASES = [(HEADS[i % 3], BLOCKS[(i // 3) % 3], 5000 if i % 4 == 0 else 512, layout, kind)
             for i, (layout, kind) in enumerate(itertools.product(LAYOUTS, range(len(KINDS))))]
CPU_CASES = [(64, 8, 5000, lay, k) if nb == 5000 else (h, b, nb, lay, k) for h, b, nb, lay, k in CPU_CASES]


def _case_id(case):
    head, block, nb, layout, kind = case
    kdt, kv, cdt, sc = KINDS[kind]
    return f"D{head}-bs{block}-nb{nb}-{layout}-{str(kdt)[6:]}-{kv}" + (f"-{sc}" if sc else "")


@pytest.mark.parametrize("case", VLLM_CASES if ON_GPU else CPU_CASES, ids=_case_id)
def test_vllm_shapes(case):
    head, block, nb, layout, kind = case
    kdt, kv, cdt, sc = KINDS[kind]
    T = T_VLLM if nb == 512 else 2 * T_VLLM
    key, value = _qkv(T, H_VLLM, head, kdt, seed_of("vllm", case), spread=kv != "auto")
    ks, vs = _scales(sc, H_VLLM, seed_of("scale", case))
    c = _cache(nb, block, H_VLLM, head, cdt, layout)
    _check(key, value, c, c, _slots(T, nb * block, seed_of("slots", case)), kv, ks, vs)


def test_cpu_cases_cover_every_value():
    """The interpreter's subset still has every head size, block size, block count, layout and kind."""
    for axis, values in enumerate((HEADS, BLOCKS, NUM_BLOCKS, LAYOUTS, range(len(KINDS)))):
        assert {c[axis] for c in CPU_CASES} == set(values), axis


# ---------------------------------------------------------------- slots: padding, skips, validate

@pytest.mark.parametrize("multi", [False, True], ids=["one-token-programs", "multi-token-programs"])
def test_padding_tokens_untouched(multi):
    """n < T (CUDA-graph padding): only the first n tokens are written. multi: n just past the
    small-config limit (the interpreter's: 131 tokens of 512 bytes, 8 a program), so the
    many-tokens-a-program config runs, with a ragged last program."""
    H, D = 4, 64
    n = 13
    if multi:
        plan = kv_ops._plan((H, D, torch.bfloat16, torch.bfloat16, torch.int64, "auto", False, None,
                             torch.empty(0, device=DEVICE).get_device()))
        block_t = plan[2][0]
        n = plan[0] + 3
        assert block_t > 1 and n % block_t, plan[:3]
    T = n + 8
    nb, bs = -(-n // 8), 16
    key, value = _qkv(T, H, D, torch.bfloat16, seed_of("pad", n))
    slots = _slots(n, nb * bs, seed_of("pad slots", n))
    _check(key, value, _cache(nb, bs, H, D, torch.bfloat16), _cache(nb, bs, H, D, torch.bfloat16), slots)


@pytest.mark.parametrize("slot_dtype", [torch.int64, torch.int32], ids=["int64", "int32"])
@pytest.mark.parametrize("mode", MODES)
def test_skipped_slots(mode, slot_dtype):
    """Negative slots and slots at or beyond the capacity write nothing, in every mode."""
    skip_unavailable(mode)
    nb, bs, H, D = 8, 16, 4, 64
    cap = nb * bs
    # int64: a block index whose low 32 bits are 3 (slot 53 if it were truncated, which is unmapped)
    big = 2**40 + 3 * bs + 5 if slot_dtype == torch.int64 else 2**31 - 1
    slots = torch.tensor([5, -1, cap, 17, cap + 7, -(2**31), big, cap - 1, 1, -7], dtype=slot_dtype, device=DEVICE)
    key, value = _qkv(slots.numel(), H, D, torch.bfloat16, seed_of("skip", mode))
    for layout in LAYOUTS:
        c = _cache(nb, bs, H, D, torch.bfloat16, layout)
        _check(key, value, c, c, slots, access=mode)


def test_all_slots_skipped_and_zero_capacity():
    key, value = _qkv(3, 2, 64, torch.bfloat16, 1)
    c = _cache(4, 8, 2, 64, torch.bfloat16)
    _check(key, value, c, c, torch.tensor([-1, 32, 99], device=DEVICE))
    empty = _cache(0, 8, 2, 64, torch.bfloat16)
    cache_op(key, value, empty, empty.clone(), torch.tensor([0, 1, -1], device=DEVICE))  # nowhere to write


def test_one_block_cache_and_block_size_one():
    """Sizes of 1 (Triton compiles an int argument equal to 1 as a constant: once a compile error)."""
    key, value = _qkv(3, 1, 64, torch.bfloat16, 38)
    c = _cache(1, 4, 1, 64, torch.bfloat16)
    _check(key, value, c, c, torch.tensor([2, 4, 0], dtype=torch.int32, device=DEVICE)[:2])
    c = _cache(6, 1, 1, 64, torch.bfloat16, "HND")
    _check(key, value, c, c, torch.tensor([5, 0, -1], device=DEVICE))


def test_validate_raises_and_writes_nothing():
    nb, bs = 4, 8
    key, value = _qkv(4, 2, 64, torch.bfloat16, 2)
    c = _cache(nb, bs, 2, 64, torch.bfloat16)
    kc, vc = c.clone(), c.clone()
    with pytest.raises(ValueError, match=re.escape("slot_mapping holds 2 slot(s) >= the caches' capacity 4 blocks "
                                                   "x 8 = 32 (largest 40)")):
        cache_op(key, value, kc, vc, torch.tensor([3, 32, -1, 40], device=DEVICE), validate=True)
    _assert_bits(kc, c)
    _assert_bits(vc, c)
    slots = torch.tensor([3, 31, -1, 0], device=DEVICE)  # negative: skipped, not refused
    _check(key, value, c, c, slots, validate=True)


def test_int32_and_int64_slots_agree():
    key, value = _qkv(9, 4, 80, torch.float16, 3)
    c = _cache(16, 8, 4, 80, torch.float16, "HND")
    slots = _slots(9, 128, 4)
    a = _check(key, value, c, c, slots)
    b = _check(key, value, c, c, slots.int())
    _assert_bits(a[0], b[0])
    _assert_bits(a[1], b[1])


def test_strided_slot_mapping_and_distinct_key_value_strides():
    H, D = 4, 64
    key = randn(6, H, D, dtype=torch.bfloat16, seed=5)  # contiguous
    value = _qkv(6, H, D, torch.bfloat16, 6)[1]  # a qkv slice: another token stride
    slots = _slots(12, 64, 7)[::2]
    c = _cache(8, 8, H, D, torch.bfloat16)
    _check(key, value, c, c, slots)


# ---------------------------------------------------------------- dtypes and fp8

@pytest.mark.parametrize("kv", ["fp8", "fp8_e4m3", "fp8_e5m2"])
def test_uint8_cache_holds_the_fp8_bits(kv):
    fp8 = ref.kv_cache.FP8_DTYPES[kv]
    key, value = _qkv(5, 4, 64, torch.bfloat16, seed_of("u8", kv), spread=True)
    ks, vs = _scales("head", 4, 8)
    slots = _slots(5, 64, 9)
    a = _check(key, value, _cache(8, 8, 4, 64, fp8), _cache(8, 8, 4, 64, fp8), slots, kv, ks, vs)
    b = _check(key, value, _cache(8, 8, 4, 64, torch.uint8), _cache(8, 8, 4, 64, torch.uint8), slots, kv, ks, vs)
    _assert_bits(a[0], b[0])
    _assert_bits(a[1], b[1])


def _edge_values(fp8):
    """Every finite fp8 value, every midpoint between neighbours (ties: round to even), the fp32
    values either side of each midpoint, zeros, values past the range, inf, NaN and fp32 extremes."""
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(fp8).float()
    fin = codes[torch.isfinite(codes)].unique()
    mids = (fin[1:] + fin[:-1]) / 2  # exact in fp32
    inf = torch.tensor(float("inf"))
    m = float(fin.max())
    extra = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, m * 1.03, -m * 1.03, m * 1.2,
                          1e30, -1e30, 1e-30, -1e-30, 1e-45, -1e-45])
    return torch.cat([fin, mids, torch.nextafter(mids, inf), torch.nextafter(mids, -inf), extra])


@pytest.mark.parametrize("kv", ["fp8", "fp8_e5m2"])
def test_fp8_rounding_saturation_nan_and_signed_zero(kv):
    """fp32 keys, no scale: the cast alone. Bit-exact against torch's saturated .to(), except NaN,
    compared as NaN (torch writes 0x7F; so does the op, but the GPU's NaN need not be that one)."""
    fp8 = ref.kv_cache.FP8_DTYPES[kv]
    v = _edge_values(fp8)
    D = 64
    n = -(-v.numel() // D)
    x = torch.cat([v, torch.randn(n * D - v.numel()) * 100]).reshape(n, 1, D).to(DEVICE)
    c = _cache(n, 1, 1, D, fp8)
    kc, vc, rk, rv = _run(x, -x, c, c, torch.arange(n, device=DEVICE), kv)
    for got, want in ((kc, rk), (vc, rv)):
        g, w = got.float(), want.float()
        assert torch.equal(g.isnan(), w.isnan())
        ok = g.isnan() | ((g == w) & (torch.signbit(g) == torch.signbit(w)))
        assert bool(ok.all()), [(x.flatten()[i].item(), g.flatten()[i].item(), w.flatten()[i].item())
                                for i in (~ok).flatten().nonzero().flatten()[:5].tolist()]
    m = ref.kv_cache.FP8_MAX[fp8]
    assert kc.float().abs().nan_to_num(0).max() == m and not kc.float().isinf().any()  # saturated, never inf


def test_fp8_division_is_ieee():
    """Quotients at and next to fp8 midpoints (x = midpoint * scale in fp32, and its neighbours), for
    scales whose reciprocal is inexact: a quotient 1 fp32 ulp off (x * (1 / scale), or an approximate
    divide) rounds to the other fp8 neighbour for some of them; IEEE division matches torch's `/`."""
    fp8 = torch.float8_e4m3fn
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(fp8).float()
    fin = codes[torch.isfinite(codes) & (codes > 0)].unique()
    mids = (fin[1:] + fin[:-1]) / 2
    scales = torch.tensor([3.0, 0.1, 1 / 3, 7.7, 0.37, 1.3, 0.011, 5.9])
    x = mids[None, :] * scales[:, None]
    inf = torch.tensor(float("inf"))
    x = torch.stack([x, torch.nextafter(x, inf), torch.nextafter(x, -inf)], dim=1)  # [H, 3, mids]
    H = scales.numel()
    x = x.reshape(H, -1)
    D = 64
    n = -(-x.shape[1] // D)
    x = torch.cat([x, torch.ones(H, n * D - x.shape[1])], dim=1).reshape(H, n, D).transpose(0, 1).contiguous()
    c = _cache(n, 1, H, D, fp8)
    s = scales.to(DEVICE)
    x = x.to(DEVICE)
    _check(x, -x, c, c, torch.arange(n, device=DEVICE), "fp8", s, s)


@pytest.mark.parametrize("scale_shape", ["0-d", "[1]", "[H] strided"])
def test_fp8_scale_shapes(scale_shape):
    """vLLM's layer scales are 0-d tensors; a per-head scale may be a strided view."""
    H = 4
    gen = torch.Generator(device="cpu").manual_seed(10)
    base = (torch.rand(2 * H, generator=gen) + 0.1).to(DEVICE)
    s = {"0-d": base[0].clone().reshape(()), "[1]": base[:1].clone(), "[H] strided": base[::2]}[scale_shape]
    key, value = _qkv(7, H, 64, torch.float16, 11, spread=True)
    c = _cache(8, 16, H, 64, torch.float8_e4m3fn)
    _check(key, value, c, c, _slots(7, 128, 12), "fp8", s, s)


@pytest.mark.parametrize("key_dtype,kv,cache_dtype", [
    (torch.float32, "bfloat16", torch.bfloat16), (torch.float32, "float16", torch.float16),
    (torch.bfloat16, "float32", torch.float32), (torch.float16, "float16", torch.float16)],
    ids=["fp32-to-bf16", "fp32-to-fp16", "bf16-to-fp32", "fp16-named"])
def test_named_cache_dtypes(key_dtype, kv, cache_dtype):
    """kv_cache_dtype naming a float dtype: the cache holds it, key rounded once (see NARROW_ULPS)."""
    key, value = _qkv(6, 4, 64, key_dtype, seed_of("named", kv), spread=True)
    c = _cache(8, 8, 4, 64, cache_dtype)
    slots = _slots(6, 64, 13)
    kc, vc, rk, rv = _run(key, value, c, c, slots, kv)
    if key_dtype == torch.float32 and cache_dtype == torch.bfloat16:
        assert_ulps(kc, rk, NARROW_ULPS)
        assert_ulps(vc, rv, NARROW_ULPS)
    else:
        _assert_bits(kc, rk)
        _assert_bits(vc, rv)
    _assert_only_slots_written(kc, slots)


def test_many_heads_split_over_programs():
    """64 heads of 128: more than one program's tile (MAX_TILE), so the heads split over grid axis 1."""
    H, D = 64, 128
    assert kv_ops.kv_config(H, D, 2, True)[2] > 1
    key, value = _qkv(3, H, D, torch.bfloat16, 14, spread=True)
    for kv, cdt, sc in (("auto", torch.bfloat16, None), ("fp8", torch.float8_e4m3fn, "head")):
        ks, vs = _scales(sc, H, 15)
        c = _cache(4, 4, H, D, cdt, "HND")
        _check(key, value, c, c, _slots(3, 16, 16), kv, ks, vs)


# ---------------------------------------------------------------- access modes, fast path, PDL

MODE_CASES = {  # (head, key dtype, kv_cache_dtype, cache dtype, scale, layout)
    "bf16-NHD": (128, torch.bfloat16, "auto", torch.bfloat16, None, "NHD"),
    "fp32-HND-d80": (80, torch.float32, "auto", torch.float32, None, "HND"),
    "e4m3-head-HND": (64, torch.bfloat16, "fp8", torch.float8_e4m3fn, "head", "HND"),
    "e5m2-u8-tensor": (128, torch.float16, "fp8_e5m2", torch.uint8, "tensor", "NHD"),
}


@pytest.mark.parametrize("case", list(MODE_CASES))
@pytest.mark.parametrize("mode", [m for m in MODES if m != "pointer"])
def test_access_modes_bit_identical(mode, case):
    skip_unavailable(mode)
    head, kdt, kv, cdt, sc, layout = MODE_CASES[case]
    key, value = _qkv(5, 4, head, kdt, seed_of("modes", case), spread=kv != "auto")
    ks, vs = _scales(sc, 4, 17)
    c = _cache(8, 16, 4, head, cdt, layout)
    slots = torch.tensor([3, -1, 100, 128, 64], device=DEVICE)
    a = _check(key, value, c, c, slots, kv, ks, vs, access="pointer")
    b = _check(key, value, c, c, slots, kv, ks, vs, access=mode)
    _assert_bits(a[0], b[0])
    _assert_bits(a[1], b[1])


def test_default_access_never_fails_for_addressing(default_access):
    H, D = 2, 64
    qkv = randn(3, 3 * H * D + 1, dtype=torch.bfloat16, seed=18)[:, 1:].reshape(3, 3, H, D)  # 2 bytes off 16
    key, value = qkv[:, 1], qkv[:, 2]
    c = _cache(4, 8, H, D, torch.bfloat16)
    with pytest.raises(ValueError, match="descriptor"):
        cache_op(key, value, c.clone(), c.clone(), torch.tensor([0, 5, 9], device=DEVICE), access="descriptor")
    default_access("descriptor")
    _check(key, value, c, c, torch.tensor([0, 5, 9], device=DEVICE))  # falls back to pointer


def test_cache_block_dim_not_outermost(default_access):
    """Caches stored [block_size, num_blocks, H, D] (block stride not the largest): pointer mode
    writes them; TMA cannot describe them outermost stride first, so an explicit descriptor mode
    refuses and the default falls back to pointer."""
    H, D, nb, bs = 2, 64, 4, 8
    key, value = _qkv(5, H, D, torch.bfloat16, 32)
    c = _cache(bs, nb, H, D, torch.bfloat16).transpose(0, 1)
    slots = _slots(5, nb * bs, 33)
    want = _check(key, value, c, c, slots)
    with pytest.raises(ValueError, match=re.escape("access='descriptor' cannot serve this call")):
        cache_op(key, value, c.clone(), c.clone(), slots, access="descriptor")
    default_access("descriptor")
    got = _check(key, value, c, c, slots)
    _assert_bits(got[0], want[0])


def test_common_calls_take_the_fast_path(monkeypatch):
    def forbid(*_a, **_k):
        raise AssertionError("the careful path ran for a call the fast path should take")
    monkeypatch.setattr(kv_ops, "check_reshape_and_cache", forbid)
    key, value = _qkv(3, 2, 64, torch.bfloat16, 19)
    c = _cache(4, 8, 2, 64, torch.bfloat16, "HND")
    ks, vs = _scales("tensor", 2, 20)
    _check(key, value, c, c, _slots(3, 32, 21), "auto", ks, vs)  # scales given, unread
    plan = kv_ops._plan((2, 64, torch.bfloat16, torch.float8_e4m3fn, torch.int64, "fp8", True, None,
                         key.get_device()))
    if not plan[4]:  # (u8 view: a GPU below sm89 sends fp8 caches through the careful path)
        c8 = _cache(4, 8, 2, 64, torch.float8_e4m3fn)
        _check(key, value, c8, c8, _slots(3, 32, 22), "fp8", ks, vs)


@pytest.mark.skipif(not (ON_GPU and launch.FAST_LAUNCH), reason="the launch fast path exists only for compiled kernels "
                                                           "on a GPU")
def test_repeat_calls_skip_tritons_launch(monkeypatch):
    """After a specialisation's first call, calls go through Launcher.fast (T = 1 decode and a fp8
    prefill): Triton's JITFunction.run is never entered again, and the caches stay right."""
    key, value = _qkv(300, 8, 128, torch.bfloat16, 34)
    c, c8 = _cache(64, 16, 8, 128, torch.bfloat16), _cache(64, 16, 8, 128, torch.float8_e4m3fn)
    ks, vs = _scales("tensor", 8, 35)
    calls = [(key[:1], value[:1], c, _slots(1, 1024, 36), "auto", None, None),
             (key, value, c8, _slots(300, 1024, 37), "fp8", ks, vs)]
    if kv_ops._plan((8, 128, torch.bfloat16, torch.float8_e4m3fn, torch.int64, "fp8", True, None, key.get_device()))[4]:
        calls = calls[:1]  # below sm89 fp8 caches go through the careful path (a uint8 view)
    want = [_check(k, v, cc, cc, s, kv, a, b) for k, v, cc, s, kv, a, b in calls]  # compiles, fills the cache
    misses = kv_ops._launch.misses

    def forbid(*_a, **_k):
        raise AssertionError("Triton's launch ran for a call the fast path should take")
    monkeypatch.setattr(kv_ops._reshape_and_cache_kernel, "run", forbid)
    for (k, v, cc, s, kv, a, b), w in zip(calls, want):
        kc, vc = cc.clone(), cc.clone()
        cache_op(k, v, kc, vc, s, kv, a, b)
        _assert_bits(kc, w[0])
    assert kv_ops._launch.misses == misses


def _memo_hits(monkeypatch):
    """Make reshape_and_cache_into (the fast branch and the careful path) count its calls: a memo
    hit never enters it."""
    entered = []
    real = kv_ops.reshape_and_cache_into
    monkeypatch.setattr(kv_ops, "reshape_and_cache_into", lambda *a: (entered.append(1), real(*a))[1])
    return entered


def test_memo_hits_after_the_first_call_and_follows_the_token_count(monkeypatch):
    """The second call with the same operand facts launches from the memo (on the CPU through the
    interpreter, on a GPU through the bound C launch), whatever T and n; each stays bit-exact."""
    entered = _memo_hits(monkeypatch)
    kv_ops.clear_memo()
    H, D = 2, 64
    c = _cache(8, 16, H, D, torch.bfloat16, "HND")
    ks, vs = _scales("tensor", H, 60)
    for i, (T, n) in enumerate([(3, 3), (5, 2), (1, 1), (9, 9), (3, 3)]):
        key, value = _qkv(T, H, D, torch.bfloat16, 61 + i)
        _check(key, value, c, c, _slots(n, 128, 70 + i), "auto", ks, vs)
    assert len(kv_ops._memo) == 1
    assert len(entered) < 5, "every call took the slow path: the memo never hit"


MEMO_VARIANTS = ["contiguous key", "4 of 8 heads", "value with fewer tokens", "int32 slots", "strided slots",
                 "other cache", "fp32 cache", "fp8 per head", "fp8 per tensor", "fp8 no scales", "pdl off",
                 "k_scale only"]


@pytest.mark.parametrize("variant", MEMO_VARIANTS)
def test_memo_never_serves_other_facts(variant):
    """A call that differs from a memoised one in one fact gets that fact's result (or its error),
    never the memoised launch: the memo is filled first by a qkv-slice call on 8 heads."""
    H, D, nb, bs = 8, 64, 8, 16
    base_key, base_value = _qkv(4, H, D, torch.bfloat16, 80)
    c = _cache(nb, bs, H, D, torch.bfloat16)
    ks, vs = _scales("head", H, 81)
    slots = _slots(4, nb * bs, 82)
    c8 = _cache(nb, bs, H, D, torch.float8_e4m3fn)
    fp8 = variant in ("fp8 per tensor", "fp8 no scales")  # filled by an fp8 call with per-head scales
    kv_ops.clear_memo()
    for _ in range(2):  # fill, then hit
        _check(base_key, base_value, c8 if fp8 else c, c8 if fp8 else c, slots, "fp8" if fp8 else "auto", ks, vs)
    key, value, kc, kv, a, b = base_key, base_value, c, "auto", ks, vs
    if variant == "contiguous key":
        key, value = base_key.contiguous(), base_value.contiguous()
    elif variant == "4 of 8 heads":  # same strides as the memoised key, another head count
        with pytest.raises(ValueError, match=r"key_cache.shape"):
            cache_op(base_key[:, :4], base_value[:, :4], c.clone(), c.clone(), slots)
        return
    elif variant == "value with fewer tokens":
        with pytest.raises(ValueError, match=r"value.shape"):
            cache_op(base_key, base_value[:3], c.clone(), c.clone(), slots[:3])
        return
    elif variant == "int32 slots":
        slots = slots.int()
    elif variant == "strided slots":
        slots = torch.stack([slots, -slots - 1], 1).flatten()[::2]
        assert slots.stride() == (2,)
    elif variant == "other cache":
        kc = _cache(nb, bs, H, D, torch.bfloat16, "HND")
    elif variant == "fp32 cache":
        kv, kc = "float32", _cache(nb, bs, H, D, torch.float32)
    elif variant.startswith("fp8"):
        kv, kc = "fp8", _cache(nb, bs, H, D, torch.float8_e4m3fn)
        if variant == "fp8 per tensor":
            a, b = _scales("tensor", H, 83)
        elif variant == "fp8 no scales":
            a = b = None
    elif variant == "pdl off":
        _check(key, value, kc, kc, slots, kv, a, b, pdl=False)
        return
    elif variant == "k_scale only":
        kv, kc = "fp8", _cache(nb, bs, H, D, torch.float8_e4m3fn)
        with pytest.raises(ValueError, match="both be tensors"):
            cache_op(key, value, kc.clone(), kc.clone(), slots, kv, a, None)
        return
    _check(key, value, kc, kc, slots, kv, a, b)


def test_memo_refuses_what_the_fast_branch_refuses(monkeypatch):
    """After a hit, a call with tensors the fast branch never takes (meta tensors, validate=True,
    a descriptor request) still goes through the checks."""
    H, D = 2, 64
    key, value = _qkv(3, H, D, torch.bfloat16, 90)
    c = _cache(4, 8, H, D, torch.bfloat16)
    slots = _slots(3, 32, 91)
    kv_ops.clear_memo()
    for _ in range(2):
        _check(key, value, c, c, slots)
    entered = _memo_hits(monkeypatch)
    with pytest.raises(ValueError, match="validate=True refuses"):
        cache_op(key, value, c.clone(), c.clone(), torch.tensor([0, 5, 999], device=DEVICE), validate=True)
    assert entered
    m = [t.to("meta") for t in (key, value, c, c, slots)]
    with pytest.raises((ValueError, RuntimeError, NotImplementedError)):
        cache_op(*m)


@pytest.mark.skipif(not (ON_GPU and launch.FAST_LAUNCH), reason="bound launches exist only for compiled kernels on a "
                                                           "GPU (the interpreter ignores alignment)")
def test_memo_with_unaligned_pointers():
    """The memo binds aligned pointers; a call whose key is 2 bytes off 16 (same strides, so the same
    facts) must not launch the aligned specialisation: it is refused by the bound launch, takes the
    fast branch and is right."""
    H, D = 2, 64
    qkv = randn(6, 3 * H * D + 8, dtype=torch.bfloat16, seed=92)
    aligned = qkv[:, :3 * H * D].reshape(6, 3, H, D)
    shifted = qkv[:, 1:3 * H * D + 1].reshape(6, 3, H, D)
    c = _cache(4, 8, H, D, torch.bfloat16)
    slots = _slots(6, 32, 93)
    kv_ops.clear_memo()
    for k in (aligned, aligned, shifted, aligned, shifted):
        _check(k[:, 1], k[:, 2], c, c, slots)


@pytest.mark.skipif(not ON_GPU, reason="PDL needs a GPU (sm90+); elsewhere pdl=True launches plainly")
def test_pdl_changes_nothing():
    key, value = _qkv(300, 8, 128, torch.bfloat16, 23)
    c = _cache(64, 16, 8, 128, torch.bfloat16)
    slots = _slots(300, 1024, 24)
    a = _check(key, value, c, c, slots, pdl=True)
    b = _check(key, value, c, c, slots, pdl=False)
    _assert_bits(a[0], b[0])


@pytest.mark.skipif(not ON_GPU, reason=CPU_BIG_REASON)
@pytest.mark.parametrize("kv,cdt", [("auto", torch.bfloat16), ("fp8", torch.float8_e4m3fn)], ids=["bf16", "e4m3"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_large_token_counts(layout, kv, cdt):
    """T = 8192 over 5000 blocks of 16: the many-tokens-a-program config, ragged n = 8189."""
    T, H, D, nb, bs = 8192, 8, 128, 5000, 16
    key, value = _qkv(T, H, D, torch.bfloat16, 25, spread=kv != "auto")
    ks, vs = _scales("tensor" if kv != "auto" else None, H, 26)
    c = _cache(nb, bs, H, D, cdt, layout)
    _check(key, value, c, c, _slots(T - 3, nb * bs, 27), kv, ks, vs)


def test_reference_under_torch_compile():
    """The benchmark's torch-compile peer: the reference compiled writes what it writes eagerly (an
    int16 view of the cache once made Inductor convert values instead of moving bits)."""
    key, value = _qkv(6, 2, 64, torch.bfloat16, 30, spread=True)
    slots = torch.tensor([3, -1, 40, 17, 64, 0], device=DEVICE)
    fn = torch.compile(ref.reshape_and_cache_flash, fullgraph=True, dynamic=False)
    for kv, cdt, sc in (("auto", torch.bfloat16, None), ("fp8_e5m2", torch.uint8, "head")):
        ks, vs = _scales(sc, 2, 31)
        c = _cache(8, 8, 2, 64, cdt, "HND")
        kc, vc, rk, rv = c.clone(), c.clone(), c.clone(), c.clone()
        fn(key, value, kc, vc, slots, kv, ks, vs)
        ref.reshape_and_cache_flash(key, value, rk, rv, slots, kv, ks, vs)
        _assert_bits(kc, rk)
        _assert_bits(vc, rv)


# ---------------------------------------------------------------- empty and bad inputs

def test_empty_inputs():
    key, value = _qkv(4, 2, 64, torch.bfloat16, 28)
    c = _cache(4, 8, 2, 64, torch.bfloat16)
    kc = c.clone()
    cache_op(key, value, kc, c.clone(), torch.empty(0, dtype=torch.int64, device=DEVICE))
    _assert_bits(kc, c)
    e = torch.empty(0, 2, 64, dtype=torch.bfloat16, device=DEVICE)
    cache_op(e, e, kc, c.clone(), torch.empty(0, dtype=torch.int64, device=DEVICE), validate=True)
    with pytest.raises(ValueError, match="access"):
        cache_op(e, e, kc, c.clone(), torch.empty(0, dtype=torch.int64, device=DEVICE), access="foo")


HB, DB = 2, 64
OTHER_DEVICE = "cpu" if DEVICE == "cuda" else "meta"


def _kv(T=3, dtype=torch.bfloat16):
    return _qkv(T, HB, DB, dtype, 29)


def _c(dtype=torch.bfloat16, layout="NHD", H=HB, D=DB):
    return _cache(4, 8, H, D, dtype, layout)


def _s(n=3, dtype=torch.int64):
    return torch.arange(n, dtype=dtype, device=DEVICE)


def _call(key=None, value=None, kc=None, vc=None, slots=None, kv="auto", ks=None, vs=None, **kw):
    k0, v0 = _kv()
    cache_op(k0 if key is None else key, v0 if value is None else value, _c() if kc is None else kc,
             (_c() if kc is None else kc.clone()) if vc is None else vc, _s() if slots is None else slots, kv, ks, vs,
             **kw)


F32_1 = torch.ones(1, device=DEVICE)
BAD_CALLS = {
    "key_not_tensor": (TypeError, "key must be a torch.Tensor", lambda: cache_op([1.0], *_kv()[1:], _c(), _c(), _s())),
    "value_not_tensor": (TypeError, "value must be a torch.Tensor", lambda: _call(value=1.0)),
    "slots_not_tensor": (TypeError, "slot_mapping must be a torch.Tensor", lambda: _call(slots=[0, 1, 2])),
    "key_int": (TypeError, "key.dtype=torch.int32", lambda: _call(key=_kv()[0].to(torch.int32))),
    "key_2d": (ValueError, "key must be [T, H, D]", lambda: _call(key=_kv()[0].reshape(3, -1), value=_kv()[1].reshape(3, -1))),
    "value_dtype": (TypeError, "value.dtype=torch.float16 must equal key.dtype=torch.bfloat16",
                    lambda: _call(value=_kv(dtype=torch.float16)[1])),
    "value_shape": (ValueError, "value.shape=(4, 2, 64) must equal key.shape=(3, 2, 64)", lambda: _call(value=_kv(4)[1])),
    "cache_heads": (ValueError, "key_cache.shape=(4, 8, 3, 64) must be [num_blocks, block_size, H, D] with [H, D] = [2, 64]",
                    lambda: _call(kc=_c(H=3))),
    "cache_3d": (ValueError, "key_cache.shape=(4, 8, 128)", lambda: _call(kc=_c().reshape(4, 8, -1))),
    "value_cache_dtype": (TypeError, "value_cache.dtype=torch.float16 must equal key_cache.dtype=torch.bfloat16",
                          lambda: _call(vc=_c(torch.float16))),
    "value_cache_shape": (ValueError, "value_cache.shape=(4, 8, 2, 32)", lambda: _call(vc=_c(D=64)[..., :32])),
    "cache_strides_differ": (ValueError, "value_cache.stride()=(1024, 64, 512, 1) must equal key_cache.stride()="
                                         "(1024, 128, 64, 1)", lambda: _call(kc=_c(), vc=_c(layout="HND"))),
    "slots_float": (TypeError, "slot_mapping.dtype=torch.float32 must be torch.int64 or torch.int32",
                    lambda: _call(slots=_s().float())),
    "slots_2d": (ValueError, "slot_mapping.shape=(1, 3) must be [n] with n <= T = key.shape[0] = 3",
                 lambda: _call(slots=_s()[None])),
    "slots_longer_than_key": (ValueError, "slot_mapping.shape=(4,) must be [n] with n <= T = key.shape[0] = 3",
                              lambda: _call(slots=_s(4))),
    "slots_device": (ValueError, "slot_mapping is on", lambda: _call(slots=torch.arange(3, device=OTHER_DEVICE))),
    "cache_device": (ValueError, "key_cache is on",
                     lambda: _call(kc=torch.empty(4, 8, HB, DB, dtype=torch.bfloat16, device=OTHER_DEVICE))),
    "key_last_dim_strided": (ValueError, "key.stride(-1)=2",
                             lambda: _call(key=randn(3, HB, 2 * DB, dtype=torch.bfloat16, seed=1)[..., ::2])),
    "cache_last_dim_strided": (ValueError, "key_cache.stride(-1)=2",
                               lambda: _call(kc=_c(D=2 * DB)[..., ::2], vc=_c(D=2 * DB)[..., ::2])),
    "kv_cache_dtype_unknown": (ValueError, "kv_cache_dtype='fp16' is not supported; expected one of ['auto', ",
                               lambda: _call(kv="fp16")),
    "kv_cache_dtype_not_str": (ValueError, "kv_cache_dtype=torch.bfloat16 is not supported",
                               lambda: _call(kv=torch.bfloat16)),
    "auto_with_uint8_cache": (TypeError, "key_cache.dtype=torch.uint8 must be torch.bfloat16 for kv_cache_dtype='auto'",
                              lambda: _call(kc=_c(torch.uint8))),
    "named_dtype_mismatch": (TypeError, "key_cache.dtype=torch.float16 must be torch.bfloat16 for kv_cache_dtype="
                                        "'bfloat16'", lambda: _call(kc=_c(torch.float16), kv="bfloat16")),
    "fp8_with_bf16_cache": (TypeError, "key_cache.dtype=torch.bfloat16 must be torch.float8_e4m3fn or torch.uint8",
                            lambda: _call(kv="fp8")),
    "e5m2_with_e4m3_cache": (TypeError, "key_cache.dtype=torch.float8_e4m3fn must be torch.float8_e5m2",
                             lambda: _call(kc=_c(torch.float8_e4m3fn), kv="fp8_e5m2")),
    "scale_size": (ValueError, "k_scale.shape=(3,) must hold 1 element (per tensor) or be [H] = [2]",
                   lambda: _call(kc=_c(torch.uint8), kv="fp8", ks=torch.ones(3, device=DEVICE), vs=F32_1)),
    "scale_dtype": (TypeError, "v_scale.dtype=torch.float16 must be torch.float32",
                    lambda: _call(kc=_c(torch.uint8), kv="fp8", ks=F32_1, vs=F32_1.half())),
    "scale_device": (ValueError, "k_scale is on", lambda: _call(kc=_c(torch.uint8), kv="fp8",
                                                                ks=torch.ones(1, device=OTHER_DEVICE), vs=F32_1)),
    "only_one_scale": (ValueError, "k_scale and v_scale must both be tensors or both be None",
                       lambda: _call(kc=_c(torch.uint8), kv="fp8", vs=F32_1)),
    "scale_not_tensor": (TypeError, "k_scale must be a torch.Tensor",
                         lambda: _call(kc=_c(torch.uint8), kv="fp8", ks=1.0, vs=F32_1)),
    "access_unknown": (ValueError, "access='foo' is not an access mode", lambda: _call(access="foo")),
    "descriptor_misaligned": (ValueError, "access='descriptor' cannot serve this call",  # key 2 bytes off 16
                              lambda: _call(key=randn(3 * HB * DB + 1, dtype=torch.bfloat16, seed=2)[1:].view(3, HB, DB),
                                            access="descriptor")),
    "validate_not_bool": (TypeError, "validate must be a bool", lambda: _call(validate=1)),
    "pdl_not_bool": (TypeError, "pdl must be a bool or None", lambda: _call(pdl=1)),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_inputs(name):
    exc, match, call = BAD_CALLS[name]
    with pytest.raises(exc, match=re.escape(match)):
        call()


def test_bad_input_does_not_write():
    key, value = _kv()
    kc, vc = _c(), _c()
    before = kc.clone()
    with pytest.raises(ValueError):
        cache_op(key, value, kc, vc, _s(), access="foo")
    with pytest.raises(ValueError):
        cache_op(key, value, kc, vc, _s(), "fp8_e4m3fn")
    _assert_bits(kc, before)
    _assert_bits(vc, before)


def test_bench_targets():
    """The bench's issue-4 table on made-up rows: GB/s bars at T = 4096 / 32768 and fp8, the T = 1
    latency, the one-set column beside."""
    from lmkernels.bench import kv_cache as fam
    from lmkernels.bench.copies import BEST_COPY_ROW
    from lmkernels.bench.harness import Row, Table
    t = Table("t", 3000.0)
    s4, s32, s1 = "T=4096 H=8 D=128 block=16 NHD", "T=32768 H=8 D=128 block=16 HND", "T=1 H=8 D=128 block=16 NHD"
    t.rows += [Row("reshape_and_cache_flash", s4, "bfloat16", "lmkernels-pointer", 12.0, 2800.0, 0, None,
                   warm_gbs=4500.0),
               Row("reshape_and_cache_flash", s4, "bfloat16", "copy, same bytes (ceiling at this size)", 13.0, 2500.0,
                   0, None),
               Row("reshape_and_cache_flash", s4, "bfloat16", BEST_COPY_ROW, 12.5, 2750.0, 0, None),
               Row("reshape_and_cache_flash", s32, "bfloat16", "lmkernels-pointer", 90.0, 2850.0, 0, None),
               Row("reshape_and_cache_flash", s32, "bfloat16 -> fp8_e4m3 per-tensor scale", "lmkernels-pointer", 70.0,
                   2450.0, 0, None),
               Row("reshape_and_cache_flash", s1, "bfloat16", "lmkernels-pointer", 0.95, 1.0, 0, None),
               Row("reshape_and_cache_flash", s1, "bfloat16", "torch-eager", 9.0, 1.0, 0, None)]
    text = fam.targets(t)
    assert (f"| {s4} | bfloat16 | >= 2900 GB/s | 2800 | one set 4500 (met); same-bytes copy 2500; best copy 2750 "
            f"(1.018x) | MISSED; above every copy of these bytes here (best 2750) |") in text
    assert f"| {s32} | bfloat16 | >= 2700 GB/s | 2850 |  | met |" in text
    assert f"| {s32} | bfloat16 -> fp8_e4m3 per-tensor scale | >= 2500 GB/s | 2450 |  | MISSED |" in text
    assert f"| {s1} | bfloat16 | <= 1.4 µs | 0.95 µs | | met |" in text
    assert text.count("\n| T=") == 4  # the eager peer's row is not a target row
