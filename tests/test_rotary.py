"""lmkernels.rotary_embedding and lmkernels.mrope against lmkernels.reference.rotary."""
import re

import pytest
import torch

import lmkernels
from helpers import DEVICE, DTYPES, ON_GPU, capture, dtype_id, randn, seed_of, skip_unavailable
from lmkernels import reference as ref
from lmkernels.ops import rotary as rope_ops
from lmkernels.runtime import access as access_rt
from lmkernels.verify import MANTISSA

# Allowed error of a rotated element against the fp32 reference rounded once:
#   |got - want| <= ULPS[dtype] * ulp(want) + PAIR_SLACK * (|x| + |y|)
# where (x, y) is the element's input pair. The reference rounds x*c, y*s and their difference
# (three fp32 roundings); a GPU may fuse one product into an FMA (two roundings): the fp32 results
# then differ by up to 2^-23 (|x c| + |y s|) <= 2^-23 (|x| + |y|) (|c|, |s| <= 1), which is no
# bounded number of ulps where x c ~ y s cancel. Hence the absolute term beside the ulps:
ULPS = {
    torch.float32: 1,   # the final fp32 rounding may go the other way after that last-bit difference
    torch.float16: 1,   # one rounding; the interpreter truncates fp32 -> fp16 where PyTorch rounds to nearest
    torch.bfloat16: 1,  # as float16
}
PAIR_SLACK = 2.0**-22   # twice the 2^-23 above: margin for cos/sin stored as fp16/bf16 (exact in fp32)

HEAD_SIZES = [64, 80, 128, 256]
MODES = list(access_rt.MODES)  # every mode by name; those the installed Triton lacks skip with its reason
QWEN2VL = dict(sections=[16, 24, 24], interleaved=False, hq=28, hkv=4)  # Qwen2-VL-7B, head 128
QWEN3VL = dict(sections=[24, 20, 20], interleaved=True, hq=32, hkv=4)   # Qwen3-VL, head 128
MAX_POS = 4096
BIG_T_REASON = "T = 8192 is 8192 programs, ~20 ms each under the interpreter (minutes); it runs on a GPU"




def _cache(rot, dtype=torch.float32, max_pos=MAX_POS, seed=0):
    """A real cos/sin cache (base 10000): cos in the first rot/2 columns, sin in the rest."""
    inv = 1.0 / (10000.0 ** (torch.arange(0, rot, 2, dtype=torch.float64, device=DEVICE) / rot))
    ang = torch.arange(max_pos, dtype=torch.float64, device=DEVICE)[:, None] * inv[None, :]
    return torch.cat([ang.cos(), ang.sin()], dim=1).to(dtype)


def _positions(T, max_pos=MAX_POS, seed=0, rows=None):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    shape = (T,) if rows is None else (rows, T)
    return torch.randint(0, max_pos, shape, device=DEVICE, generator=gen)


def _check(got, want, before, head, rot, is_neox):
    """Rotated dims within the tolerance above (NaN exactly where the reference has NaN); the other
    dims of every head bit-identical to their value before the call."""
    T = before.shape[0]
    g, w, b = (t.reshape(T, -1, head) for t in (got, want, before))
    assert torch.equal(g[..., rot:], b[..., rot:]), "a dim past rot_dim was written"
    g, w, b = g[..., :rot].double(), w[..., :rot].double(), b[..., :rot].double().abs()
    if is_neox:
        partner = torch.cat([b[..., rot // 2:], b[..., :rot // 2]], -1)
    else:
        partner = b.reshape(T, -1, rot // 2, 2).flip(-1).reshape(b.shape)
    assert torch.equal(g.isnan(), w.isnan()), "NaN where the reference has none, or the reverse"
    mant = MANTISSA[got.dtype]
    exponent = torch.frexp(w.abs().clamp_min(torch.finfo(got.dtype).tiny)).exponent
    ulp = torch.ldexp(torch.ones_like(w), exponent - 1 - mant)
    allowed = ULPS[got.dtype] * ulp + PAIR_SLACK * (b + partner)
    err = (g - w).abs().nan_to_num(0.0)
    bad = err > allowed
    if bool(bad.any()):
        i = tuple(bad.nonzero()[0].tolist())
        raise AssertionError(f"{int(bad.sum())} elements out of tolerance; first at {i}: got {g[i].item()!r}, "
                             f"want {w[i].item()!r}, allowed error {allowed[i].item():.3g}")


def _run_both(op, ref_op, pos, q, k, *args, **kw):
    """(op's q, k) and (reference's q, k) from the same inputs; returns also the inputs."""
    q0, k0 = q.clone(), None if k is None else k.clone()
    rq, rk = q.clone(), None if k is None else k.clone()
    got = op(pos, q, k, *args, **kw)
    assert got[0] is q and got[1] is k, "the op returns the tensors it rotated in place"
    ref_op(pos, rq, rk, *args, **kw)
    return (q, k), (rq, rk), (q0, k0)


def _rotary_case(dtype, T, hq, hkv, head, rot, is_neox, cache_dtype=None, access=None, seed=0):
    q = randn(T, hq * head, dtype=dtype, seed=seed_of("q", seed, dtype, T, hq, head))
    k = randn(T, hkv * head, dtype=dtype, seed=seed_of("k", seed, dtype, T, hkv, head)) if hkv else None
    cache = _cache(rot, cache_dtype or dtype)
    pos = _positions(T, seed=seed)
    (gq, gk), (wq, wk), (q0, k0) = _run_both(lmkernels.rotary_embedding, ref.rotary_embedding, pos, q, k, head,
                                             cache, is_neox, access=access)
    _check(gq, wq, q0, head, rot, is_neox)
    if k is not None:
        _check(gk, wk, k0, head, rot, is_neox)
    return gq, gk


# ---------------------------------------------------------------- rotary_embedding

@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
@pytest.mark.parametrize("head", HEAD_SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_rotary_matches_reference(dtype, head, is_neox):
    _rotary_case(dtype, 3, 4, 2, head, head, is_neox)


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
@pytest.mark.parametrize("T", [1, 11, 8192])
def test_rotary_token_counts(T, is_neox):
    if T == 8192 and not ON_GPU:
        pytest.skip(BIG_T_REASON)
    hq, hkv = (32, 8) if ON_GPU else (8, 2)
    _rotary_case(torch.bfloat16, T, hq, hkv, 128, 128, is_neox)


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_partial_rotary(dtype, is_neox):
    """rot_dim 32 of head 128: dims 32..127 of every head keep their bits (checked in _check)."""
    _rotary_case(dtype, 5, 4, 2, 128, 32, is_neox)


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
def test_many_heads_split_over_programs(is_neox):
    """More q heads than one tile takes (MAX_TILE): the heads go to several programs a token."""
    hq = 2 * rope_ops.MAX_TILE // 128 + 8
    groups = rope_ops.rope_config(hq, 8, 64, False)[0]
    assert groups > 1
    _rotary_case(torch.float16, 2, hq, 8, 128, 128, is_neox)


@pytest.mark.parametrize("hq,hkv", [(8, 8), (8, 1), (6, 0)], ids=["mha", "mqa", "no_key"])
def test_head_counts_and_key_none(hq, hkv):
    _rotary_case(torch.bfloat16, 3, hq, hkv, 64, 64, True)


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_qkv_slices(dtype, is_neox):
    """q and k as column slices of one qkv tensor (token stride (Hq + 2 Hkv) D); v untouched."""
    T, hq, hkv, head = 4, 4, 2, 80
    qkv = randn(T, (hq + 2 * hkv) * head, dtype=dtype, seed=seed_of("qkv", dtype))
    before = qkv.clone()
    q, k = qkv[:, :hq * head], qkv[:, hq * head:(hq + hkv) * head]
    cache, pos = _cache(head, dtype), _positions(T, seed=1)
    rq, rk = q.clone(), k.clone()
    ref.rotary_embedding(pos, rq, rk, head, cache, is_neox)
    lmkernels.rotary_embedding(pos, q, k, head, cache, is_neox)
    _check(q, rq, before[:, :hq * head], head, head, is_neox)
    _check(k, rk, before[:, hq * head:(hq + hkv) * head], head, head, is_neox)
    assert torch.equal(qkv[:, (hq + hkv) * head:], before[:, (hq + hkv) * head:]), "v was written"


def test_3d_query_and_key():
    T, hq, hkv, head = 3, 4, 2, 64
    q = randn(T, hq, head, dtype=torch.bfloat16, seed=2)
    k = randn(T, hkv, head, dtype=torch.bfloat16, seed=3)
    cache, pos = _cache(head, torch.bfloat16), _positions(T, seed=2)
    (gq, gk), (wq, wk), (q0, k0) = _run_both(lmkernels.rotary_embedding, ref.rotary_embedding, pos, q, k, head, cache)
    assert gq.shape == (T, hq, head)
    _check(gq, wq, q0, head, head, True)
    _check(gk, wk, k0, head, head, True)


@pytest.mark.parametrize("q_dtype,cache_dtype", [(torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16),
                                                 (torch.float16, torch.bfloat16)], ids=lambda d: dtype_id(d))
def test_cache_dtype_differs(q_dtype, cache_dtype):
    _rotary_case(q_dtype, 3, 4, 2, 128, 128, True, cache_dtype=cache_dtype)


def test_int32_positions():
    T, head = 3, 64
    q = randn(T, 2 * head, dtype=torch.float32, seed=4)
    cache, pos = _cache(head), _positions(T, seed=3)
    q64 = q.clone()
    lmkernels.rotary_embedding(pos, q64, None, head, cache)
    lmkernels.rotary_embedding(pos.int(), q, None, head, cache)
    assert torch.equal(q, q64)


# ---------------------------------------------------------------- out-of-range positions

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
def test_out_of_range_positions_give_nan(mode, is_neox):
    skip_unavailable(mode)
    head, rot = 128, 64
    bad = [-1, MAX_POS, 2**40, -(2**40), 2**63 - 1]
    pos = torch.tensor([5] + bad + [MAX_POS - 1], device=DEVICE)
    T = pos.numel()
    q = randn(T, 2 * head, dtype=torch.bfloat16, seed=5)
    k = randn(T, head, dtype=torch.bfloat16, seed=6)
    cache = _cache(rot, torch.bfloat16)
    (gq, gk), (wq, wk), (q0, k0) = _run_both(lmkernels.rotary_embedding, ref.rotary_embedding, pos, q, k, head, cache,
                                             is_neox, access=mode)
    rows = gq.view(T, -1, head)[..., :rot].isnan().flatten(1).all(1)
    assert rows.tolist() == [False] + [True] * len(bad) + [False], "rotated dims of bad positions must be NaN"
    _check(gq, wq, q0, head, rot, is_neox)  # NaN where the reference has NaN; dims past rot untouched
    _check(gk, wk, k0, head, rot, is_neox)


def test_out_of_range_mrope_positions():
    head, sec = 128, [16, 24, 24]
    pos = _positions(4, seed=7, rows=3)
    pos[1, 1] = -3            # height of token 1: frequencies 16..39 NaN
    pos[2, 2] = MAX_POS       # width of token 2: frequencies 40..63 NaN
    pos[0, 3] = 2**40         # temporal of token 3: frequencies 0..15 NaN
    q = randn(4, 2 * head, dtype=torch.float32, seed=8)
    (gq, _), (wq, _), (q0, _) = _run_both(lmkernels.mrope, ref.mrope, pos, q, None, _cache(head), sec, head)
    _check(gq, wq, q0, head, head, True)
    nan = gq.view(4, 2, head)[:, 0, :64].isnan()
    assert not nan[0].any() and nan[1, 16:40].all() and not nan[1, :16].any() and nan[2, 40:].all()
    assert nan[3, :16].all() and not nan[3, 16:].any()


# ---------------------------------------------------------------- mrope

@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
@pytest.mark.parametrize("cfg", [QWEN2VL, QWEN3VL], ids=["qwen2vl", "qwen3vl"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_mrope_matches_reference(dtype, cfg, is_neox):
    T, head = 11 if dtype == torch.bfloat16 else 3, 128
    q = randn(T, cfg["hq"] * head, dtype=dtype, seed=seed_of("mq", dtype, T))
    k = randn(T, cfg["hkv"] * head, dtype=dtype, seed=seed_of("mk", dtype, T))
    pos = _positions(T, seed=9, rows=3)
    (gq, gk), (wq, wk), (q0, k0) = _run_both(lmkernels.mrope, ref.mrope, pos, q, k, _cache(head, dtype),
                                             cfg["sections"], head, interleaved=cfg["interleaved"], is_neox=is_neox)
    _check(gq, wq, q0, head, head, is_neox)
    _check(gk, wk, k0, head, head, is_neox)


def test_mrope_partial_rotary_and_slices():
    """rot 64 of head 128 ([8, 12, 12]), q/k slices of qkv, 3-row positions as a strided view."""
    T, hq, hkv, head, rot = 5, 4, 2, 128, 64
    qkv = randn(T, (hq + 2 * hkv) * head, dtype=torch.bfloat16, seed=10)
    before = qkv.clone()
    q, k = qkv[:, :hq * head], qkv[:, hq * head:(hq + hkv) * head]
    pos = _positions(2 * T, seed=11, rows=3)[:, ::2]  # token stride 2
    cache = _cache(rot)
    rq, rk = q.clone(), k.clone()
    ref.mrope(pos, rq, rk, cache, [8, 12, 12], head, rot)
    lmkernels.mrope(pos, q, k, cache, [8, 12, 12], head, rot)
    _check(q, rq, before[:, :hq * head], head, rot, True)
    _check(k, rk, before[:, hq * head:(hq + hkv) * head], head, rot, True)
    assert torch.equal(qkv[:, (hq + hkv) * head:], before[:, (hq + hkv) * head:]), "v was written"


def test_mrope_selects_the_right_position_per_frequency():
    """Equal t/h/w positions give rotary_embedding's result: the selection alone is what differs."""
    T, head = 3, 128
    p = _positions(T, seed=12)
    q = randn(T, 2 * head, dtype=torch.float32, seed=13)
    a, b = q.clone(), q.clone()
    lmkernels.mrope(p.expand(3, T), a, None, _cache(head), [24, 20, 20], head, interleaved=True)
    lmkernels.rotary_embedding(p, b, None, head, _cache(head))
    assert torch.equal(a, b)


@pytest.mark.parametrize("is_neox", [True, False], ids=["neox", "gptj"])
def test_mrope_text_only_is_rotary_embedding(is_neox):
    T, head = 4, 128
    pos = _positions(T, seed=14)
    q = randn(T, 4 * head, dtype=torch.bfloat16, seed=15)
    k = randn(T, 2 * head, dtype=torch.bfloat16, seed=16)
    cache = _cache(head, torch.bfloat16)
    q1, k1, q2, k2 = q.clone(), k.clone(), q.clone(), k.clone()
    lmkernels.mrope(pos, q1, k1, cache, [16, 24, 24], head, is_neox=is_neox)
    lmkernels.rotary_embedding(pos, q2, k2, head, cache, is_neox)
    assert torch.equal(q1, q2) and torch.equal(k1, k2)


# ---------------------------------------------------------------- access modes

MODE_CASES = {  # (op, head, rot, is_neox)
    "rotary-neox-128": ("rotary", 128, 128, True),
    "rotary-gptj-80": ("rotary", 80, 80, False),
    "rotary-neox-rot32": ("rotary", 128, 32, True),
    "mrope-neox-128": ("mrope", 128, 128, True),
}


@pytest.mark.parametrize("case", list(MODE_CASES))
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mode", [m for m in MODES if m != "pointer"])
def test_access_modes_bit_identical(mode, dtype, case):
    skip_unavailable(mode)
    op, head, rot, is_neox = MODE_CASES[case]
    T = 3
    q = randn(T, 4 * head, dtype=dtype, seed=seed_of("modes q", dtype, case))
    k = randn(T, 2 * head, dtype=dtype, seed=seed_of("modes k", dtype, case))
    cache = _cache(rot, dtype)
    outs = []
    for m in ("pointer", mode):
        qm, km = q.clone(), k.clone()
        if op == "rotary":
            lmkernels.rotary_embedding(_positions(T, seed=17), qm, km, head, cache, is_neox, access=m)
        else:
            lmkernels.mrope(_positions(T, seed=17, rows=3), qm, km, cache, [16, 24, 24], head, access=m)
        outs.append((qm, km))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1]), f"access={mode!r} differs"


def test_default_access_never_fails_for_addressing(default_access):
    T, head = 3, 64
    q = randn(T, 2 * head + 1, dtype=torch.float16, seed=18)[:, 1:]  # base 2 bytes off 16: TMA cannot
    cache = _cache(head, torch.float16)
    pos = _positions(T, seed=19)
    want = q.clone()
    lmkernels.rotary_embedding(pos, want, None, head, cache, access="pointer")
    default_access("descriptor")
    lmkernels.rotary_embedding(pos, q, None, head, cache)  # falls back to pointer instead of raising
    assert torch.equal(q, want)


def test_common_call_takes_the_fast_path(monkeypatch):
    def forbid(*_a, **_k):
        raise AssertionError("the careful path ran for a call the fast path should take")
    monkeypatch.setattr(rope_ops, "check_rotary", forbid)
    _rotary_case(torch.bfloat16, 2, 4, 2, 64, 64, True, seed=20)


# ---------------------------------------------------------------- empty and bad inputs

def test_empty_tokens():
    head = 64
    q = torch.empty(0, 4 * head, dtype=torch.bfloat16, device=DEVICE)
    k = torch.empty(0, 2 * head, dtype=torch.bfloat16, device=DEVICE)
    pos = torch.empty(0, dtype=torch.int64, device=DEVICE)
    cache = _cache(head, torch.bfloat16)
    gq, gk = lmkernels.rotary_embedding(pos, q, k, head, cache)
    assert gq is q and gk is k
    gq, gk = lmkernels.mrope(torch.empty(3, 0, dtype=torch.int64, device=DEVICE), q, k, cache, [8, 12, 12], head)
    assert gq is q and gk is k
    with pytest.raises(ValueError, match="access"):
        lmkernels.rotary_embedding(pos, q, k, head, cache, access="foo")


HB = 64


def _q(T=3, heads=4, dtype=torch.bfloat16):
    return randn(T, heads * HB, dtype=dtype, seed=21)


def _p(T=3):
    return _positions(T, seed=22)


def _c(rot=HB, dtype=torch.bfloat16):
    return _cache(rot, dtype, max_pos=64)


OTHER_DEVICE = "cpu" if DEVICE == "cuda" else "meta"
rot_emb, mrope_op = lmkernels.rotary_embedding, lmkernels.mrope

BAD_CALLS = {
    "query_not_tensor": (TypeError, "query must be a torch.Tensor", lambda: rot_emb(_p(), [1.0], None, HB, _c())),
    "query_int": (TypeError, "query.dtype", lambda: rot_emb(_p(), _q().to(torch.int32), None, HB, _c())),
    "query_1d": (ValueError, "query must be", lambda: rot_emb(_p(), _q()[0], None, HB, _c())),
    "head_size_not_dividing": (ValueError, "query.shape[1]=256 is not a multiple of head_size=48",
                               lambda: rot_emb(_p(), _q(), None, 48, _c(32))),
    "head_size_type": (TypeError, "head_size", lambda: rot_emb(_p(), _q(), None, 64.0, _c())),
    "query_3d_head": (ValueError, "query.shape[2]", lambda: rot_emb(_p(), _q().view(3, 2, 128), None, HB, _c())),
    "query_last_dim_strided": (ValueError, "query.stride(-1)",
                               lambda: rot_emb(_p(), randn(4 * HB, 3, dtype=torch.bfloat16, seed=23).t(), None, HB,
                                               _c())),
    "query_3d_head_stride": (ValueError, "query.stride(1)",
                             lambda: rot_emb(_p(), _q(heads=8).view(3, 4, 128)[..., :HB], None, HB, _c())),
    "query_no_heads": (ValueError, "query has no heads",
                       lambda: rot_emb(_p(), torch.empty(3, 0, dtype=torch.bfloat16, device=DEVICE), None, HB, _c())),
    "key_dtype": (TypeError, "key.dtype", lambda: rot_emb(_p(), _q(), _q(dtype=torch.float16), HB, _c())),
    "key_tokens": (ValueError, "key.shape", lambda: rot_emb(_p(), _q(), _q(T=4), HB, _c())),
    "heads_not_multiple": (ValueError, "query's 4 heads must be a multiple of key's 3 heads",
                           lambda: rot_emb(_p(), _q(), _q(heads=3), HB, _c())),
    "key_not_tensor": (TypeError, "key must be a torch.Tensor or None", lambda: rot_emb(_p(), _q(), 1.0, HB, _c())),
    "positions_float": (TypeError, "positions.dtype", lambda: rot_emb(_p().float(), _q(), None, HB, _c())),
    "positions_shape": (ValueError, "positions.shape=(4,)", lambda: rot_emb(_p(4), _q(), None, HB, _c())),
    "positions_2d_for_rotary": (ValueError, "positions.shape=(3, 3)",
                                lambda: rot_emb(_positions(3, rows=3), _q(), None, HB, _c())),
    "positions_not_tensor": (TypeError, "positions must be a torch.Tensor",
                             lambda: rot_emb([0, 1, 2], _q(), None, HB, _c())),
    "cache_int": (TypeError, "cos_sin_cache.dtype", lambda: rot_emb(_p(), _q(), None, HB, _c().to(torch.int32))),
    "cache_1d": (ValueError, "cos_sin_cache.shape", lambda: rot_emb(_p(), _q(), None, HB, _c()[0])),
    "rot_odd": (ValueError, "cos_sin_cache.shape[1]=63", lambda: rot_emb(_p(), _q(), None, HB, _c()[:, :63])),
    "rot_above_head": (ValueError, "cos_sin_cache.shape[1]=128", lambda: rot_emb(_p(), _q(), None, HB, _c(128))),
    "cache_last_dim_strided": (ValueError, "cos_sin_cache.stride(1)",
                               lambda: rot_emb(_p(), _q(), None, HB, _c(128)[:, ::2])),
    "is_neox_int": (TypeError, "is_neox", lambda: rot_emb(_p(), _q(), None, HB, _c(), 1)),
    "positions_device": (ValueError, "positions is on",
                         lambda: rot_emb(torch.zeros(3, dtype=torch.int64, device=OTHER_DEVICE), _q(), None, HB, _c())),
    "cache_device": (ValueError, "cos_sin_cache is on",
                     lambda: rot_emb(_p(), _q(), None, HB, torch.empty(64, HB, device=OTHER_DEVICE))),
    "access_unknown": (ValueError, "access", lambda: rot_emb(_p(), _q(), None, HB, _c(), access="foo")),
    "descriptor_misaligned": (ValueError, "descriptor",
                              lambda: rot_emb(_p(), _q(heads=5)[:, 1:4 * HB + 1], None, HB, _c(), access="descriptor")),
    "descriptor_narrow_box": (ValueError, "descriptor",
                              lambda: rot_emb(_p(), _q(), None, HB, _c(8), access="descriptor")),
    "mrope_section_sum": (ValueError, "mrope_section=[16, 16, 16] must be 3 non-negative ints",
                          lambda: mrope_op(_positions(3, rows=3), _q(), None, _c(), [16, 16, 16], HB)),
    "mrope_section_len": (ValueError, "mrope_section", lambda: mrope_op(_positions(3, rows=3), _q(), None, _c(),
                                                                       [16, 16], HB)),
    "mrope_rotary_dim": (ValueError, "rotary_dim=32", lambda: mrope_op(_positions(3, rows=3), _q(), None, _c(),
                                                                      [8, 12, 12], HB, 32)),
    "mrope_positions_shape": (ValueError, "positions.shape=(2, 3)",
                              lambda: mrope_op(_positions(3, rows=2), _q(), None, _c(), [8, 12, 12], HB)),
    "mrope_interleaved_type": (TypeError, "interleaved", lambda: mrope_op(_positions(3, rows=3), _q(), None, _c(),
                                                                         [8, 12, 12], HB, None, 1)),
    "pdl_not_bool": (TypeError, "pdl must be a bool or None", lambda: rot_emb(_p(), _q(), None, HB, _c(), pdl=1)),
    "mrope_pdl_not_bool": (TypeError, "pdl must be a bool or None",
                           lambda: mrope_op(_positions(3, rows=3), _q(), None, _c(), [8, 12, 12], HB, pdl="yes")),
}


def test_pdl_chain_matches_plain_launches():
    """Rotations applied again and again in place, each launch reading what the one before wrote:
    with PDL (where the GPU has it; a plain launch elsewhere) bit-identical to plain launches, eager
    and, on a GPU, replayed from one CUDA graph on new data."""
    T, heads = (64, 8) if ON_GPU else (3, 2)
    cache = _c()
    pos = _positions(T, max_pos=64, seed=26)  # _c()'s 64 positions: no NaN from a position out of range
    q0, k0 = randn(T, heads * HB, dtype=torch.bfloat16, seed=24), randn(T, heads * HB, dtype=torch.bfloat16, seed=25)

    def chain(q, k, pdl):
        for step in range(4):
            if step % 2 == 0:
                rot_emb(pos, q, k, HB, cache, pdl=pdl)
            else:
                mrope_op(torch.stack([pos, pos.flip(0), pos]), q, k, cache, [8, 12, 12], HB, pdl=pdl)
        return q, k

    plain = chain(q0.clone(), k0.clone(), False)
    for pdl in (None, True):
        got = chain(q0.clone(), k0.clone(), pdl)
        assert torch.equal(got[0], plain[0]) and torch.equal(got[1], plain[1])
    if not ON_GPU:
        return
    q, k = q0.clone(), k0.clone()
    graph, _ = capture(lambda: chain(q, k, None))
    q.copy_(q0)
    k.copy_(k0)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(q, plain[0]) and torch.equal(k, plain[1])


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_inputs(name):
    exc, match, call = BAD_CALLS[name]
    with pytest.raises(exc, match=re.escape(match)):
        call()


def test_bad_input_does_not_write():
    q = _q()
    before = q.clone()
    with pytest.raises(ValueError):
        rot_emb(_p(), q, None, HB, _c(), access="foo")
    with pytest.raises(ValueError):
        mrope_op(_positions(3, rows=3), q, None, _c(), [16, 16, 16], HB)
    assert torch.equal(q, before)
