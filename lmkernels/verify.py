"""`lmkernels verify`: every op x access mode x dtype on awkward shapes against the reference.

Runs where the process is: on a GPU, or on the CPU under Triton's interpreter. Outputs are
poisoned with NaN first so an unwritten element fails (in-place ops: their inputs are fresh random
data, which a missed element keeps, unrotated). Tolerance, in units in the last place (ulp) of the
output dtype relative to the fp32 reference rounded once, unless the unit column says otherwise
("bound": error over its derived bound, <= 1 passes):
  exact ops on a GPU (silu_and_mul, the rounded residual sum): 0 ulp
  float32 outputs: 16 ulp (rsqrt.approx is 2 ulp; fp32 sums of up to 5125 squares in another order
    and the 1/H scaling move the result a few more)
  float16/bfloat16 outputs: 1 ulp (a last-bit fp32 difference can round the other way; the
    interpreter truncates fp32 -> bf16/fp16 where the GPU rounds to nearest)
  silu_and_mul under the interpreter: 3 ulp (two truncating casts, and numpy's exp, not expf)
  rotary_embedding / mrope: 1 ulp of the output dtype plus 2^-22 (|x| + |y|) of the element's input
    pair (a GPU may fuse x*c - y*s into one FMA, which no ulp count bounds where the products
    cancel; tests/test_rotary.py derives it)
  token_logprobs (fp32 out): an absolute error against a float64 reference, 2^-22 |want| + 3e-6
    (tests/test_sampling.py derives it); token_ranks: exact
  pack_seq / unpack_seq: bit-exact (copies of bit patterns), counted as mismatching elements, on
    random bits (NaN and inf patterns included) in every dtype, bfloat16's run adding uint8 and fp8
  reshape_and_cache_flash: bit-exact (copies, and fp8: IEEE division and one round-to-nearest-even
    cast), counted as mismatching cache elements, the caches poisoned (NaN, or 0xFF bytes) so an
    unwritten slot or a write to a skipped one counts; NHD and HND, fp8 e4m3 (per-head scale) and
    e5m2 (per-tensor scale, uint8 cache), negative and out-of-range slots, n < T
  merge_attn_states / correct_attn_out: against a float64 reference of the same inputs, as an
    error over its bound (<= 1 passes): 1 ulp of the output dtype plus 2^-20 (N + 4 + spread) of
    the element's share of the inputs (N = 2 for a merge; spread: the LSEs' largest difference; the
    fp32 weights' exp/log error, tests/test_context_parallel.py derives it); LSEs ~10 % +inf and
    -inf, NaN in the outputs of states without keys (which must contribute exactly 0)
  scaled_mm (the dtype column is out_dtype; a row-major or column-major b, per-token x per-channel
    scales and a bias): int8 bit-exact on a GPU (exact int32 sums, the reference's fp32 order, no
    FMA), 1 ulp under the interpreter for bfloat16 (its truncating cast), counted in ulps; fp8 e4m3
    as an error over its bound against float64 (<= 1 passes): |sa sb| sum|a b| (K 2^-24 + 2^-10
    on a GPU for the tensor cores' accumulator, + 4 2^-24) + 2^-23 |bias| + 1 ulp of the output
    (tests/test_scaled_mm.py derives it); a split-K config and, in descriptor mode, K a multiple of
    16 (TMA's 16-byte rows)
  ll_gemm (pointer mode only: it has no access argument; the dtype column is out_dtype, inputs
    bfloat16, float16 and fp8 e4m3 with scales, a bias): an error over its bound against float64
    (<= 1 passes): (K + 3) 2^-23 (|x_scale w_scale| sum|x w| + |bias|) + 1 ulp of the output (fp32
    sums in any order, 2^-23 for the tensor cores' truncating adds; tests/test_small_gemm.py
    derives it); the heuristic config, and a split-K FMA one
"""
from __future__ import annotations

import dataclasses

import torch

from . import reference as ref
from .ops import (fused_add_rms_norm, mrope, rms_norm, rotary_embedding, silu_and_mul, swiglustep_and_mul,
                  token_logprobs, token_ranks)
from .ops import pack_seq, unpack_seq
from .ops import correct_attn_out, merge_attn_states
from .ops import reshape_and_cache_flash
from .ops.scaled_mm import scaled_mm
from .reference.scaled_mm import broadcast_scales, scaled_mm_float64
from .ops.small_gemm import ll_gemm
from .reference.small_gemm import ll_gemm_float64
from .runtime.access import available_modes
from .runtime.device import is_interpreter

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MANTISSA = {torch.float32: 23, torch.float16: 10, torch.bfloat16: 7}
NORM_SHAPES = [(1, 8), (3, 769), (5, 1024), (2, 5125)]
ACT_SHAPES = [(1, 7), (3, 769), (4, 1024)]
# rotary: (T, head size); 4 q heads and 2 kv heads, q and k column slices of one qkv tensor
ROPE_SHAPES = [(1, 64), (5, 80), (3, 128)]
# sampling: (B, V); 5 ids a row
SAMPLING_SHAPES = [(1, 111), (3, 4000), (2, 32000)]
# packing: (B sequences, row elements); lengths 0..5 and one of 7 (max_len 6 truncates it), rows strided
PACK_SHAPES = [(1, 7), (5, 64), (3, 1024)]

# kv cache: (T, head size); 4 heads, key/value slices of one qkv tensor, 6 blocks of 8
KV_SHAPES = [(1, 64), (21, 80), (5, 256)]
# context parallel: (rows, head size); merge: 5 heads, correct: 3 ranks x 5 heads
CP_SHAPES = [(1, 64), (7, 100), (3, 128)]
# scaled_mm: (M, N, K); K % 16 == 0 where descriptors must address a and w (w [N, K] as b = w.t())
SCALED_MM_SHAPES = [(1, 97, 80), (33, 971, 496), (5, 256, 1040)]
# ll_gemm: (M, N, K); odd K, N = 1, M = 1 and 16
LL_GEMM_SHAPES = [(1, 1, 17), (16, 100, 1001), (5, 256, 2048)]


@dataclasses.dataclass
class Result:
    op: str
    access: str
    dtype: str
    shape: str
    error: float
    allowed: float
    unit: str = "ulp"

    @property
    def ok(self) -> bool:
        return self.error <= self.allowed


def ulp_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| in ulps of expected's dtype; NaN where exactly one side is NaN -> inf."""
    a, e = actual.double(), expected.double()
    both_nan = a.isnan() & e.isnan()
    if (a.isnan() ^ e.isnan()).any():
        return float("inf")
    same_inf = (a == e)
    ulp = torch.ldexp(torch.ones_like(e), torch.frexp(e.abs().clamp_min(torch.finfo(expected.dtype).tiny)).exponent
                      - 1 - MANTISSA[expected.dtype])
    err = ((a - e).abs() / ulp).masked_fill(both_nan | same_inf, 0.0)
    return float(err.max()) if err.numel() else 0.0


def _allowed(dtype, exact_on_gpu: bool, interpreted_ulp: float = 1) -> float:
    if exact_on_gpu and not is_interpreter():
        return 0
    if dtype == torch.float32:
        return 16
    return interpreted_ulp if is_interpreter() else 1


def _poisoned(shape, dtype, device):
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


def _check_norm(device, mode, dtype, T, H, gen):
    x = torch.randn(T, H + 8, dtype=dtype, device=device, generator=gen)[:, :H]  # strided rows
    w = torch.randn(H, dtype=dtype, device=device, generator=gen)
    out = _poisoned((T, H), dtype, device)
    rms_norm(x, w, 1e-6, out=out, access=mode)
    yield "rms_norm", ulp_error(out, ref.rms_norm(x, w, 1e-6)), _allowed(dtype, False)
    xf = torch.randn(T, H, dtype=dtype, device=device, generator=gen)
    rf = torch.randn(T, H, dtype=dtype, device=device, generator=gen)
    x1, r1 = xf.clone(), rf.clone()
    fused_add_rms_norm(x1, r1, w, 1e-6, access=mode)
    want_r = (xf.float() + rf.float()).to(dtype)
    yield "fused_add_rms_norm:residual", ulp_error(r1, want_r), _allowed(dtype, True)
    yield "fused_add_rms_norm:x", ulp_error(x1, ref.rms_norm(r1, w, 1e-6)), _allowed(dtype, False)


def _check_act(device, mode, dtype, T, d, gen):
    x = torch.randn(T, 2 * d, dtype=dtype, device=device, generator=gen) * 3
    out = _poisoned((T, d), dtype, device)
    silu_and_mul(x, out=out, access=mode)
    yield "silu_and_mul", ulp_error(out, ref.silu_and_mul(x)), _allowed(dtype, True, interpreted_ulp=3)
    out = _poisoned((T, d), dtype, device)
    swiglustep_and_mul(x, 2.5, out=out, access=mode)
    yield "swiglustep_and_mul", ulp_error(out, ref.swiglustep_and_mul(x, 2.5)), _allowed(dtype, False)


def _rope_error(got, want, x_before, pair_slack=2.0**-22):
    """Max over elements of |got - want| / (1 ulp(want) + pair_slack (|x| + |y|)): <= 1 passes.
    |x| + |y| is bounded by twice the largest magnitude in the element's head (a cheap upper bound
    of its input pair), which only loosens the slack term."""
    if (got.isnan() ^ want.isnan()).any():
        return float("inf")
    g, w, xb = got.double(), want.double(), x_before.double()
    ulp = torch.ldexp(torch.ones_like(w), torch.frexp(w.abs().clamp_min(torch.finfo(want.dtype).tiny)).exponent
                      - 1 - MANTISSA[want.dtype])
    pair = 2 * xb.abs().amax(dim=-1, keepdim=True)
    err = ((g - w).abs() / (ulp + pair_slack * pair)).nan_to_num(0.0)
    return float(err.max()) if err.numel() else 0.0


def _check_rope(device, mode, dtype, T, head, gen):
    hq, hkv = 4, 2
    rot = head if head != 128 else 32  # 128: partial rotary, as in the issue (rot_dim 32 of 128)
    cache = torch.randn(16, rot, dtype=torch.float32, device=device, generator=gen)
    pos = torch.randint(0, 16, (T,), device=device, generator=gen)
    qkv = torch.randn(T, (hq + 2 * hkv) * head, dtype=dtype, device=device, generator=gen)
    for is_neox in (True, False):
        got, want = qkv.clone(), qkv.clone()
        rotary_embedding(pos, got[:, :hq * head], got[:, hq * head:(hq + hkv) * head], head, cache, is_neox,
                         access=mode)
        ref.rotary_embedding(pos, want[:, :hq * head], want[:, hq * head:(hq + hkv) * head], head, cache, is_neox)
        pair_err = _rope_error(got.view(T, -1, head), want.view(T, -1, head), qkv.view(T, -1, head))
        yield f"rotary_embedding:{'neox' if is_neox else 'gptj'}", pair_err, 1.0, "bound"
    pos3 = torch.randint(0, 16, (3, T), device=device, generator=gen)
    sections = [rot // 2 - 2 * (rot // 6), rot // 6, rot // 6]
    for interleaved in (False, True):
        got, want = qkv.clone(), qkv.clone()
        mrope(pos3, got[:, :hq * head], got[:, hq * head:(hq + hkv) * head], cache, sections, head,
              interleaved=interleaved, access=mode)
        ref.mrope(pos3, want[:, :hq * head], want[:, hq * head:(hq + hkv) * head], cache, sections, head,
                  interleaved=interleaved)
        pair_err = _rope_error(got.view(T, -1, head), want.view(T, -1, head), qkv.view(T, -1, head))
        yield f"mrope:{'interleaved' if interleaved else 'sections'}", pair_err, 1.0, "bound"


def _check_sampling(device, mode, dtype, B, V, gen):
    logits = (torch.randn(B, V + 8, dtype=torch.float32, device=device, generator=gen) * 4).to(dtype)[:, :V]
    ids = torch.randint(0, V, (B, 5), device=device, generator=gen)
    ids[0, 0] = V  # out of range: NaN, nothing read
    got = token_logprobs(logits, ids, access=mode)
    want = ref.token_logprobs(logits.double(), ids).double()
    if (got.isnan() != want.isnan()).any():
        err = float("inf")
    else:
        err = float(((got.double() - want).abs() / (2.0**-22 * want.abs() + 3e-6)).nan_to_num(0.0).max())
    yield "token_logprobs", err, 1.0, "bound"
    ranks = token_ranks(logits, ids[:, 1], access=mode)
    yield "token_ranks", float((ranks != ref.token_ranks(logits, ids[:, 1])).sum()), 0.0, "mismatches"


def _check_packing(device, mode, dtype, B, D, gen):
    lengths = torch.randint(0, 6, (B,), device=device, generator=gen)
    lengths[0] = 7
    N = int(lengths.sum())
    variants = [(dtype, float("-inf"))]
    if dtype == torch.bfloat16:
        variants += [(torch.uint8, 255), (torch.float8_e4m3fn, float("nan"))]
    for dt, pad in variants:
        e = dt.itemsize
        raw = torch.randint(0, 256, (N + 2, (D + 16) * e), dtype=torch.uint8, device=device, generator=gen)
        x = raw.view(dt)[:, :D]  # random bits (NaN, inf included), strided rows, 2 rows past the sequences
        suffix = "" if dt == dtype else ":" + str(dt).split(".")[-1]
        got = pack_seq(x, lengths, pad, max_len=6, access=mode)
        want = ref.pack_seq(x, lengths, pad, max_len=6)
        yield "pack_seq" + suffix, _bit_mismatches(got, want), 0.0, "mismatches"
        back = unpack_seq(got, lengths, num_tokens=N, access=mode)
        yield "unpack_seq" + suffix, _bit_mismatches(back, ref.unpack_seq(want, lengths, num_tokens=N)), 0.0, "mismatches"


def _bit_mismatches(got, want) -> float:
    if got.shape != want.shape or got.dtype != want.dtype:
        return float("inf")
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[got.element_size()]
    return float((got.view(ints) != want.view(ints)).sum())


def _check_kv(device, mode, dtype, T, D, gen):
    H, nb, bs = 4, 6, 8
    qkv = (torch.randn(T + 1, 3, H, D, device=device, generator=gen) * 8).to(dtype)  # T + 1: one padding token
    key, value = qkv[:, 1], qkv[:, 2]
    slots = torch.randperm(nb * bs, device=device, generator=gen)[:T]
    if T > 2:
        slots[0], slots[1] = -1, nb * bs + 3  # skipped: negative, and past the capacity
    scale = torch.rand(H, device=device, generator=gen) + 0.25
    variants = [("NHD", "auto", dtype, None, False), ("HND", "auto", dtype, None, True),
                ("fp8_e4m3", "fp8", torch.float8_e4m3fn, scale, True), ("fp8_e5m2", "fp8_e5m2", torch.uint8, scale[:1], False)]
    for name, kv, cdt, s, hnd in variants:
        shape = (nb, H, bs, D) if hnd else (nb, bs, H, D)
        if cdt.itemsize == 1:
            cache = torch.full(shape, 0xFF, dtype=torch.uint8, device=device).view(cdt)
        else:
            cache = torch.full(shape, float("nan"), dtype=cdt, device=device)
        cache = cache.transpose(1, 2) if hnd else cache
        got, want = [cache.clone() for _ in range(2)], [cache.clone() for _ in range(2)]
        reshape_and_cache_flash(key, value, got[0], got[1], slots, kv, s, s, access=mode)
        ref.reshape_and_cache_flash(key, value, want[0], want[1], slots, kv, s, s)
        yield (f"reshape_and_cache_flash:{name}", _bit_mismatches(got[0], want[0]) + _bit_mismatches(got[1], want[1]),
               0.0, "mismatches")


def _cp_lses(shape, device, gen):
    """LSEs within ~+-20, about 10 % each +inf and -inf (no keys)."""
    lse = torch.randn(shape, device=device, generator=gen) * 4 + 2
    u = torch.rand(shape, device=device, generator=gen)
    return torch.where(u < 0.1, float("inf"), torch.where(u < 0.2, float("-inf"), lse))


def _bound_error(got, want, share, spread, n) -> float:
    """max |got - want| / (1 ulp(want) + 2^-20 (n + 4 + spread) share); inf where non-finite values differ."""
    g, w = got.double(), want.double()
    special = ~torch.isfinite(w)
    if not torch.equal(g[special].nan_to_num(7.0), w[special].nan_to_num(7.0)):
        return float("inf")
    ulp = torch.ldexp(torch.ones_like(w), torch.frexp(w.abs().clamp_min(torch.finfo(got.dtype).tiny)).exponent
                      - 1 - MANTISSA[got.dtype])
    err = torch.where(special, 0.0, (g - w).abs()) / (ulp + 2.0**-20 * (n + 4 + spread) * share)
    return float(err.nan_to_num(float("inf")).max()) if err.numel() else 0.0


def _finite_spread(lses):
    """Per element: the largest difference between its finite LSEs (over dim 0), 0 where fewer than two."""
    f = torch.isfinite(lses)
    hi = torch.where(f, lses, -torch.inf).amax(0)
    lo = torch.where(f, lses, torch.inf).amin(0)
    return torch.where(f.sum(0) > 1, hi - lo, 0.0).double()


def _check_merge(device, mode, dtype, T, D, gen):
    H = 5
    pl, sl = _cp_lses((H, T), device, gen), _cp_lses((H, T), device, gen)
    p = torch.randn(T, H, D, device=device, generator=gen).to(dtype)
    s = torch.randn(T, H, D, device=device, generator=gen).to(dtype)
    p = torch.where(torch.isfinite(pl).t()[..., None], p, float("nan"))  # no keys: garbage that must not leak
    s = torch.where(torch.isfinite(sl).t()[..., None], s, float("nan"))
    out, olse = _poisoned((T, H, D), dtype, device), _poisoned((H, T), torch.float32, device)
    merge_attn_states(out, p, pl, s, sl, olse, access=mode)
    want = torch.empty(T, H, D, dtype=torch.float64, device=device)
    wlse = torch.empty(H, T, dtype=torch.float64, device=device)
    ref.merge_attn_states(want, p.double(), pl.double(), s.double(), sl.double(), wlse)
    spread = _finite_spread(torch.stack([pl, sl]))
    share = p.double().nan_to_num(0.0).abs() + s.double().nan_to_num(0.0).abs()  # weights <= 1
    yield "merge_attn_states", _bound_error(out, want, share, spread.t()[..., None], 2), 1.0, "bound"
    yield "merge_attn_states:lse", _bound_error(olse, wlse, 1.0, spread, 2), 1.0, "bound"


def _check_correct(device, mode, dtype, B, D, gen):
    N, H = 3, 5
    lses = _cp_lses((N, B, H), device, gen)
    lses[0, 0, 0] = float("nan")
    out = torch.randn(B, H, D, device=device, generator=gen).to(dtype)
    out = torch.where(torch.isfinite(lses[1])[..., None], out, float("nan"))
    before = out.clone()
    got, lse = correct_attn_out(out, lses, 1, access=mode)
    want, wlse = ref.correct_attn_out(before.double(), lses.double(), 1)
    spread = _finite_spread(lses) + wlse.nan_to_num(0.0, posinf=0.0, neginf=0.0).abs()
    share = before.double().nan_to_num(0.0).abs()  # the factor is <= 1
    yield "correct_attn_out", _bound_error(got, want, share, spread[..., None], N), 1.0, "bound"
    yield "correct_attn_out:lse", _bound_error(lse, wlse, 1.0, spread, N), 1.0, "bound"


def fp8_mm_bound(got, a, b, scale_a, scale_b, bias, acc_rel) -> float:
    """max |got - exact| / bound over the elements (<= 1 passes), exact from float64. bound =
    |sa sb| sum_k |a b| (acc_rel + 4u) + 2u |bias| + 1 ulp(exact) of got's dtype, u = 2^-24: the
    accumulation (acc_rel relative to the sum of magnitudes), the epilogue's three fp32 roundings,
    and the final rounding (1 ulp also covers the interpreter's truncating bf16 cast)."""
    want = scaled_mm_float64(a, b, scale_a, scale_b, bias)
    if got.shape != want.shape or bool(got.isnan().any()):
        return float("inf")
    sa, sb = broadcast_scales(a, b, scale_a, scale_b)
    mag = (a.double().abs() @ b.double().abs()) * (sa.double() * sb.double()).abs()
    u = 2.0**-24
    ulp = torch.ldexp(torch.ones_like(want), torch.frexp(want.abs().clamp_min(torch.finfo(got.dtype).tiny)).exponent
                      - 1 - MANTISSA[got.dtype])
    bound = mag * (acc_rel + 4 * u) + ulp + (0.0 if bias is None else 2 * u * bias.double().abs()[None, :])
    err = (got.double() - want).abs() / bound
    return float(err.max()) if err.numel() else 0.0


def fp8_mma_rel(K: int, fast: bool = True) -> float:
    """The sm90 tensor cores' own accumulation error over sum |a b|, no margin: their accumulator keeps
    ~14 bits (DeepSeek-V3, 3.3.2, on H800), ~2^-13 of the running sum lost at each add of a 32-deep
    wgmma step. fast (scaled_mm's default, FP8_FAST_ACCUM): the whole K in that accumulator, K / 32
    such adds; precise: one BLOCK_SIZE_K slice before each fp32 add, counted as one."""
    return (max(1, -(-K // 32)) if fast else 1) * 2.0**-13


def fp8_acc_rel(K: int, fast: bool = True) -> float:
    """The fp8 sum's error over sum |a b| the tests allow: fp32 in any order (K u); on a GPU also the
    tensor cores' accumulator, fp8_mma_rel with 8x spare (tests/test_scaled_mm.py)."""
    if is_interpreter():
        return K * 2.0**-24
    return K * 2.0**-24 + 8 * fp8_mma_rel(K, fast)


def _check_scaled_mm(device, mode, dtype, M, N, K, gen):
    split = {"BLOCK_SIZE_M": 16, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 64, "GROUP_SIZE_M": 4, "num_warps": 4,
             "num_stages": 3, "SPLIT_K": 3}
    sa = torch.rand(M, 1, device=device, generator=gen) + 0.5
    sb = torch.rand(1, N, device=device, generator=gen) * 0.01 + 0.005
    bias = torch.randn(N, device=device, generator=gen)
    fp8_ok = is_interpreter() or torch.cuda.get_device_capability() >= (8, 9)
    for kind in ("int8", "fp8") if fp8_ok else ("int8",):
        if kind == "int8":
            a = torch.randint(-128, 128, (M, K), device=device, generator=gen, dtype=torch.int8)
            w = torch.randint(-128, 128, (N, K), device=device, generator=gen, dtype=torch.int8)
        else:
            a = (torch.randn(M, K, device=device, generator=gen) * 16).to(torch.float8_e4m3fn)
            w = (torch.randn(N, K, device=device, generator=gen) * 16).to(torch.float8_e4m3fn)
        variants = [("", w.t(), None)]
        if dtype == torch.bfloat16:  # the layout and split-K variants once, not for each out_dtype
            variants += [(":row_major_b", w.t().contiguous(), None), (":split_k", w.t(), split)]
        for name, b, cfg in variants:
            if mode == "descriptor" and name == ":row_major_b" and N % 16:
                continue  # TMA needs 16-byte rows of b [K, N]: explicit descriptor refuses it (tested)
            got = scaled_mm(a, b, sa, sb, dtype, bias, access=mode, config=cfg)
            if kind == "int8":
                allowed = 1.0 if dtype == torch.bfloat16 and is_interpreter() else 0.0
                yield f"scaled_mm:int8{name}", ulp_error(got, ref.scaled_mm(a, b, sa, sb, dtype, bias)), allowed
            else:
                yield f"scaled_mm:fp8{name}", fp8_mm_bound(got, a, b, sa, sb, bias, fp8_acc_rel(K)), 1.0, "bound"


def ll_gemm_error(got, x, weight, bias=None, x_scale=None, w_scale=None) -> float:
    """max |got - exact| / bound over the elements (<= 1 passes; inf for a NaN or a wrong shape),
    exact from float64, bound = (K + 3) 2^-23 (|x_scale w_scale| sum_k |x w| + |bias|) + 1 ulp(exact)
    of got's dtype: an fp32 sum of K exact products in any order (split-K and trees included) is
    within (K - 1) u sum|x w|, u = 2^-23 covering the tensor cores' truncating adds; 3 more for the
    scale product, the scaling and the bias add; one rounding to the output (1 ulp also covers the
    interpreter's truncating cast)."""
    want = ll_gemm_float64(x, weight, bias=bias, x_scale=x_scale, w_scale=w_scale)
    if got.shape != want.shape or bool(got.isnan().any()):
        return float("inf")
    mag = x.double().abs() @ weight.double().abs().t()
    if x_scale is not None:
        mag = mag * (x_scale.double() * w_scale.double()).abs().reshape(())
    if bias is not None:
        mag = mag + bias.double().abs()
    ulp = torch.ldexp(torch.ones_like(want), torch.frexp(want.abs().clamp_min(torch.finfo(got.dtype).tiny)).exponent
                      - 1 - MANTISSA[got.dtype])
    err = (got.double() - want).abs() / ((x.shape[1] + 3) * 2.0**-23 * mag + ulp)
    return float(err.max()) if err.numel() else 0.0


def _check_ll_gemm(device, dtype, M, N, K, gen):
    fp8_ok = is_interpreter() or torch.version.hip or torch.cuda.get_device_capability() >= (8, 9)
    for in_dt in (torch.bfloat16, torch.float16) + ((torch.float8_e4m3fn,) if fp8_ok else ()):
        x = (torch.randn(M, K + 3, device=device, generator=gen) * 4).to(in_dt)[:, 1:K + 1]  # strided, odd offset
        w = (torch.randn(N, K, device=device, generator=gen) * 4).to(in_dt)
        fp8 = in_dt == torch.float8_e4m3fn
        s = (torch.rand((), device=device, generator=gen) + 0.5, torch.rand(1, device=device, generator=gen) * 0.1) \
            if fp8 else (None, None)
        bias = torch.randn(N, device=device, generator=gen).to(torch.float32 if fp8 else in_dt)
        name = "ll_gemm:" + str(in_dt).split(".")[-1]
        variants = [("", None)]
        if dtype == torch.float32 and N * K < 2**17:  # split-K FMA once a shape and input (the interpreter
            # took 20 s for a 5 x 256 x 2048 FMA tile)
            variants.append((":split_k_fma", {"SPLIT_K": 3, "BLOCK_K": 256, "BLOCK_N": 2, "USE_DOT": False}))
        for suffix, cfg in variants:
            got = ll_gemm(x, w, bias=bias, out_dtype=dtype, x_scale=s[0], w_scale=s[1], config=cfg)
            yield name + suffix, ll_gemm_error(got, x, w, bias, *s), 1.0, "bound"


CHECKS_OPS = {_check_norm: ("rms_norm", "fused_add_rms_norm"), _check_act: ("silu_and_mul", "swiglustep_and_mul"),
              _check_rope: ("rotary_embedding", "mrope"), _check_sampling: ("token_logprobs", "token_ranks"),
              _check_packing: ("pack_seq", "unpack_seq"), _check_kv: ("reshape_and_cache_flash",),
              _check_merge: ("merge_attn_states",), _check_correct: ("correct_attn_out",),
              _check_scaled_mm: ("scaled_mm",), _check_ll_gemm: ("ll_gemm",)}


def run(ops=None, device=None):
    """All results; `ops` filters by op name prefix (e.g. ["rms_norm", "silu_and_mul"])."""
    device = device or ("cuda" if torch.cuda.is_available() and not is_interpreter() else "cpu")
    gen = torch.Generator(device=device).manual_seed(0)
    results = []
    for mode in available_modes():
        for dtype in DTYPES:
            checks = ([(_check_norm, s) for s in NORM_SHAPES] + [(_check_act, s) for s in ACT_SHAPES]
                      + [(_check_rope, s) for s in ROPE_SHAPES] + [(_check_sampling, s) for s in SAMPLING_SHAPES]
                      + [(_check_packing, s) for s in PACK_SHAPES] + [(_check_kv, s) for s in KV_SHAPES]
                      + [(_check_merge, s) for s in CP_SHAPES] + [(_check_correct, s) for s in CP_SHAPES])
            for check, (T, n) in checks:
                if mode == "descriptor" and n % 8:
                    continue  # TMA needs 16-byte rows: explicit descriptor refuses these (tested)
                if ops and not any(o.startswith(p) or p.startswith(o) for o in ops for p in CHECKS_OPS[check]):
                    continue
                for op, err, allowed, *unit in check(device, mode, dtype, T, n, gen):
                    if ops and not any(op.startswith(o) for o in ops):
                        continue
                    results.append(Result(op, mode, str(dtype).split(".")[-1], f"{T}x{n}", err, allowed,
                                          *unit))
            if mode == "pointer" and (not ops or any(o.startswith("ll_gemm") or "ll_gemm".startswith(o) for o in ops)):
                for M, N, K in LL_GEMM_SHAPES:  # pointer mode only: ll_gemm has no access argument
                    for op, err, allowed, *unit in _check_ll_gemm(device, dtype, M, N, K, gen):
                        if not ops or any(op.startswith(o) for o in ops):
                            results.append(Result(op, mode, str(dtype).split(".")[-1], f"{M}x{N}x{K}", err, allowed,
                                                  *unit))
            scaled = not ops or any(o.startswith("scaled_mm") or "scaled_mm".startswith(o) for o in ops)
            for M, N, K in SCALED_MM_SHAPES if scaled else ():  # (M, N, K): the checks above take (T, n)
                if mode == "descriptor" and K % 16:
                    continue  # TMA needs 16-byte rows of a and w: explicit descriptor refuses these (tested)
                for op, err, allowed, *unit in _check_scaled_mm(device, mode, dtype, M, N, K, gen):
                    if not ops or any(op.startswith(o) for o in ops):
                        results.append(Result(op, mode, str(dtype).split(".")[-1], f"{M}x{N}x{K}", err, allowed,
                                              *unit))
    return results


def table(results) -> str:
    lines = ["| op | access | dtype | shape | max error | allowed | unit | ok |",
             "|---|---|---|---|---:|---:|---|---|"]
    for r in results:
        lines.append(f"| {r.op} | {r.access} | {r.dtype} | {r.shape} | {r.error:.3g} | {r.allowed:g} | {r.unit} | "
                     f"{'yes' if r.ok else 'NO'} |")
    return "\n".join(lines)
