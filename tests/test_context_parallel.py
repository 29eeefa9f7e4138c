"""lmkernels.merge_attn_states and lmkernels.correct_attn_out against lmkernels.reference.context_parallel
(single process; the torch.distributed combine is tests/test_cp_distributed.py)."""
import math
import re

import pytest
import torch

import lmkernels
from helpers import DEVICE, DTYPES, ON_GPU, dtype_id, poisoned, randn, seed_of, skip_unavailable
from lmkernels.ops import context_parallel as cp_ops
from lmkernels.reference import context_parallel as ref
from lmkernels.runtime import access as access_rt
from lmkernels.verify import MANTISSA

# Allowed error of an output element against the float64 reference of the same inputs:
#   |got - want| <= ULPS[dtype] * ulp(want) + slack * (sum of |input output| * weight over the states)
# ULPS: the one rounding to the output dtype (0.5 ulp; 1 because the interpreter truncates fp32 ->
# bf16/fp16 and a last-bit fp32 difference can round the other way).
ULPS = {torch.float32: 1, torch.float16: 1, torch.bfloat16: 1}
# slack: the fp32 weights' relative error. exp/log are approximations on the GPU (ex2.approx,
# lg2.approx: ~2^-22 relative / absolute); the argument x - m of each exp is rounded (2^-24 |x - m|,
# which exp turns into that relative error); a sum of N terms adds N 2^-24; the division and the
# product add 2^-24 each. Hence, per element, with `spread` the largest |lse| difference involved:
#   slack = 2^-20 (N + 4 + spread)     (N = 2 for a merge)
# e.g. LSEs within +-20 and N = 5: 2^-20 x 49 = 4.7e-5 relative, far under a bf16 ulp (3.9e-3) and
# far under any real mistake (a wrong rank's weight is off by a factor e^|l_r - l_n|).
SLACK = 2.0**-20
# LSE outputs: ULPS of the LSE dtype plus the same slack as an absolute error (log of a sum in [1, N]).
# End-to-end sums of corrected shards (test_corrected_shards_sum_to_full_attention): each shard's
# output is rounded to the dtype before the op (<= u |o_r|, u = 2^-mantissa covering truncation),
# the op rounds once more (u) and the fp64 sum adds nothing: 2 u sum_r f_r |o_r| + SLACK terms.
SHARD_ROUNDINGS = 2
# ...and the SLACK term there with spread 40: these attention LSEs (scores q.k / sqrt(D) of unit
# normal q, k, over <= 5 keys) lie within +-10, so |l_n - l_m| + |L| < 40.
ATTN_SPREAD = 40

MODES = list(access_rt.MODES)
# numpy under the interpreter warns on log(0) and 0/0, which the kernels compute on purpose (a
# (row, head) with no keys: L = log(0) = -inf, its weights NaN and never selected)
pytestmark = [pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]
HEAD_SIZES = [80, 96, 100, 128]  # non-powers of two as the issue asks (100: rows 200 bytes, not 16-aligned)
INF = math.inf


def _ulp(want: torch.Tensor, dtype) -> torch.Tensor:
    e = torch.frexp(want.abs().clamp_min(torch.finfo(dtype).tiny)).exponent
    return torch.ldexp(torch.ones_like(want), e - 1 - MANTISSA[dtype])


def _assert_close(got, want, slack, what: str) -> None:
    """got (the op's dtype) against the float64 want: equal where want is +-inf or NaN, else within
    ULPS[got.dtype] ulp + slack (a tensor broadcastable to want)."""
    g, w = got.double(), want.double()
    special = ~torch.isfinite(w)
    assert torch.equal(g[special].nan_to_num(nan=7.0), w[special].nan_to_num(nan=7.0)), f"{what}: inf/NaN differ"
    allowed = ULPS[got.dtype] * _ulp(w, got.dtype) + slack
    err = torch.where(special, 0.0, (g - w).abs())
    bad = ~(err <= allowed)  # a NaN error fails too
    if bool(bad.any()):
        i = tuple(bad.nonzero()[0].tolist())
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.numel()} out of tolerance; first at {i}: got "
                             f"{g[i].item()!r}, want {w[i].item()!r}, allowed {allowed.expand_as(w)[i].item():.3g}")


def _lses(*shape, seed, special=0.1, scale=4.0):
    """Natural-log LSEs spread like real ones (within ~+-20), with a `special` fraction each of +inf
    and -inf (both mean: no keys)."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    lse = torch.randn(*shape, device=DEVICE, generator=gen) * scale + 2.0
    u = torch.rand(*shape, device=DEVICE, generator=gen)
    lse = torch.where(u < special, INF, lse)
    return torch.where((u >= special) & (u < 2 * special), -INF, lse)


def _nan_where_empty(o, lse_ht):
    """NaN in the output of every (token, head) whose LSE [H, T] says no keys: it must not leak."""
    empty = ~torch.isfinite(lse_ht) | (lse_ht == -INF)
    return torch.where(empty.t()[..., None], float("nan"), o)


# ---------------------------------------------------------------- merge_attn_states

def _merge_case(dtype, T, H, D, *, seed=0, special=0.1, lse_dtype=torch.float32, with_lse=True, access=None):
    p = randn(T, H, D, dtype=dtype, seed=seed_of("p", seed, dtype, T, H, D))
    s = randn(T, H, D, dtype=dtype, seed=seed_of("s", seed, dtype, T, H, D))
    pl = _lses(H, T, seed=seed_of("pl", seed, T, H), special=special).to(lse_dtype)
    sl = _lses(H, T, seed=seed_of("sl", seed, T, H), special=special).to(lse_dtype)
    p, s = _nan_where_empty(p, pl), _nan_where_empty(s, sl)
    out = poisoned((T, H, D), dtype)
    olse = poisoned((H, T), lse_dtype) if with_lse else None
    assert lmkernels.merge_attn_states(out, p, pl, s, sl, olse, access=access) is None
    _check_merge(out, olse, p, pl, s, sl)
    return out, olse


def _check_merge(out, olse, p, pl, s, sl) -> None:
    T, H, D = out.shape
    want = torch.empty(T, H, D, dtype=torch.float64, device=DEVICE)
    wlse = torch.empty(H, T, dtype=torch.float64, device=DEVICE)
    ref.merge_attn_states(want, p.double(), pl.double(), s.double(), sl.double(), wlse)
    cl = lambda x: torch.where(torch.isfinite(x) | (x == -INF), x.double(), -INF)  # noqa: E731
    lp, ls = cl(pl), cl(sl)
    m = torch.maximum(lp, ls)
    spread = torch.where(torch.isfinite(lp) & torch.isfinite(ls), (lp - ls).abs(), 0.0)
    wp = torch.where(lp > -INF, torch.exp(lp - m), 0.0).nan_to_num(0.0)
    ws = torch.where(ls > -INF, torch.exp(ls - m), 0.0).nan_to_num(0.0)
    scale = (wp / (wp + ws)).nan_to_num(0.0).t()[..., None] * p.double().nan_to_num(0.0).abs() + (
        ws / (wp + ws)).nan_to_num(0.0).t()[..., None] * s.double().nan_to_num(0.0).abs()
    _assert_close(out, want, SLACK * (6 + spread.t()[..., None]) * scale, "output")
    both_empty = (lp == -INF) & (ls == -INF)
    assert torch.equal(out[both_empty.t()].double(), torch.zeros_like(out[both_empty.t()].double())), \
        "a token/head with no keys on either side must be exactly 0"
    if olse is not None:
        _assert_close(olse, wlse, SLACK * (6 + spread), "output_lse")
        assert bool((olse[both_empty] == -INF).all()), "no keys on either side: lse -inf"


@pytest.mark.parametrize("D", HEAD_SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_merge_matches_reference(dtype, D):
    _merge_case(dtype, 3, 5, D)


@pytest.mark.parametrize("D", [1, 8, 320])  # 320: two chunks of 256 (TMA box limit) + a masked one
def test_merge_odd_head_sizes(D):
    _merge_case(torch.bfloat16, 2, 3, D)


@pytest.mark.parametrize("lse_dtype", [torch.bfloat16, torch.float16], ids=dtype_id)
def test_merge_half_precision_lses(lse_dtype):
    _merge_case(torch.float32, 3, 4, 64, lse_dtype=lse_dtype)


def test_merge_all_special():
    """Every LSE special: half the states +inf or -inf; many (token, head) pairs empty on both sides."""
    _merge_case(torch.float16, 4, 6, 64, special=0.35, seed=1)


def test_merge_nan_lse_counts_as_empty():
    T, H, D = 2, 3, 64
    p, s = randn(T, H, D, seed=2), randn(T, H, D, seed=3)
    pl, sl = _lses(H, T, seed=4, special=0), _lses(H, T, seed=5, special=0)
    pl[1, 0] = float("nan")
    p[0, 1] = float("nan")
    out, olse = poisoned((T, H, D), torch.float32), poisoned((H, T), torch.float32)
    lmkernels.merge_attn_states(out, p, pl, s, sl, olse)
    assert torch.equal(out[0, 1], s[0, 1]), "a NaN-LSE prefix contributes nothing: the suffix alone, exactly"
    assert olse[1, 0] == sl[1, 0]


def test_merge_output_lse_none_and_given_agree():
    T, H, D = 3, 4, 96
    p, s = randn(T, H, D, dtype=torch.bfloat16, seed=6), randn(T, H, D, dtype=torch.bfloat16, seed=7)
    pl, sl = _lses(H, T, seed=8), _lses(H, T, seed=9)
    a, b = poisoned((T, H, D), torch.bfloat16), poisoned((T, H, D), torch.bfloat16)
    lmkernels.merge_attn_states(a, p, pl, s, sl)
    lmkernels.merge_attn_states(b, p, pl, s, sl, poisoned((H, T), torch.float32))
    assert torch.equal(a, b)


@pytest.fixture
def few_small_rows(monkeypatch):
    """SMALL_ROWS = 2 and no cached plans: 5 rows then take the large-batch config (one program a
    row, all heads) that 300 rows would, at 1/60 of the interpreter's time."""
    monkeypatch.setattr(cp_ops, "SMALL_ROWS", 2)
    monkeypatch.setattr(cp_ops, "_plans", {})
    assert cp_ops.tile_config(8, 64, True)[0] < cp_ops.tile_config(8, 64, False)[0]


@pytest.mark.parametrize("T", [1, 5])
def test_merge_token_counts(T, few_small_rows):
    _merge_case(torch.bfloat16, T, 8, 64)


def test_merge_strided_and_in_place():
    """Outputs as head/token-strided views inside guarded buffers, LSEs [H, T] as transposed [T, H]
    tensors and a column of a wider one, output aliasing prefix_output; nothing outside written."""
    T, H, D = 3, 4, 80
    sentinel = 12345.0
    big = torch.full((T + 1, H, D + 16), sentinel, dtype=torch.bfloat16, device=DEVICE)
    out = big[:T, :, 8:8 + D]  # head stride D + 16, token stride H (D + 16), base offset 8
    p = randn(T, 2 * H, D, dtype=torch.bfloat16, seed=10)[:, ::2]  # head stride 2 D
    s = randn(T, H, D, dtype=torch.bfloat16, seed=11)
    pl = _lses(T, H, seed=12).t()  # [H, T] with strides (1, H)
    sl = _lses(H, 2 * T, seed=13)[:, 1::2]  # token stride 2
    olse_big = torch.full((T, 2 * H), sentinel, device=DEVICE)
    olse = olse_big[:, ::2].t()  # [H, T], strides (2, 2 H)
    before = big.clone()
    lmkernels.merge_attn_states(out, p, pl, s, sl, olse)
    _check_merge(out, olse, p, pl, s, sl)
    mask = torch.ones_like(big, dtype=torch.bool)
    mask[:T, :, 8:8 + D] = False
    assert torch.equal(big[mask], before[mask]), "written outside output"
    assert bool((olse_big[:, 1::2] == sentinel).all()), "written outside output_lse"
    # in place: output is prefix_output
    p2 = p.clone()
    want = poisoned((T, H, D), torch.bfloat16)
    lmkernels.merge_attn_states(want, p2.clone(), pl, s, sl)
    lmkernels.merge_attn_states(p2, p2, pl, s, sl)
    assert torch.equal(p2, want)


def test_merge_empty_tokens():
    H, D = 4, 64
    e = torch.empty(0, H, D, device=DEVICE)
    le = torch.empty(H, 0, device=DEVICE)
    assert lmkernels.merge_attn_states(e, e.clone(), le, e.clone(), le.clone(), le.clone()) is None
    with pytest.raises(ValueError, match="access"):
        lmkernels.merge_attn_states(e, e.clone(), le, e.clone(), le.clone(), access="foo")


# ---------------------------------------------------------------- correct_attn_out

def _correct_case(dtype, N, B, H, D, rank, *, seed=0, special=0.1, base_e=True, lse_dtype=torch.float32,
                  out=None, lses=None, access=None):
    if out is None:
        out = randn(B, H, D, dtype=dtype, seed=seed_of("o", seed, dtype, N, B, H, D))
    if lses is None:
        lses = _lses(N, B, H, seed=seed_of("l", seed, N, B, H), special=special).to(lse_dtype)
    empty_mine = ~torch.isfinite(lses[rank])  # NaN, +inf, -inf: this rank has no keys there
    out.masked_fill_(empty_mine[..., None].expand_as(out), float("nan"))  # an empty shard's garbage
    before = out.clone()
    got, lse = lmkernels.correct_attn_out(out, lses, rank, lse_base_e=base_e, access=access)
    assert got is out and lse.shape == (B, H) and lse.dtype == lses.dtype and lse.is_contiguous()
    want, wlse = ref.correct_attn_out(before.double(), lses.double(), rank, lse_base_e=base_e)
    cl = torch.where(torch.isfinite(lses) | (lses == -INF), lses.double(), -INF)
    finite = torch.where(cl > -INF, cl, 0.0)
    spread = (finite.amax(0) - finite.amin(0)) + wlse.nan_to_num(0.0, posinf=0.0, neginf=0.0).abs()
    slack = SLACK * (N + 4 + spread)
    factor = torch.where(cl[rank] > -INF, torch.exp2(cl[rank] - wlse) if not base_e else torch.exp(cl[rank] - wlse),
                         0.0).nan_to_num(0.0)
    _assert_close(out, want, slack[..., None] * factor[..., None] * before.double().nan_to_num(0.0).abs(), "out")
    _assert_close(lse, wlse, slack, "lse")
    assert torch.equal(out[empty_mine], torch.zeros_like(out[empty_mine])), "an empty shard must contribute 0"
    return out, lse


@pytest.mark.parametrize("N,rank", [(1, 0), (2, 1), (3, 0), (3, 2), (5, 3)])
@pytest.mark.parametrize("D", HEAD_SIZES)
def test_correct_matches_reference(D, N, rank):
    _correct_case(torch.bfloat16, N, 3, 5, D, rank)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=dtype_id)
def test_correct_dtypes(dtype):
    _correct_case(dtype, 3, 2, 4, 128, 1)


@pytest.mark.parametrize("N", [2, 3])
def test_correct_base2(N):
    out, lse = _correct_case(torch.float32, N, 3, 4, 64, N - 1, base_e=False, seed=1)
    e_out, e_lse = _correct_case(torch.float32, N, 3, 4, 64, N - 1, base_e=True, seed=1)
    assert not torch.allclose(out.nan_to_num(), e_out.nan_to_num()), "base 2 and base e must differ"


def test_correct_special_lses_and_empty_ranks():
    """NaN, +inf and -inf LSEs (~10 % each of +-inf, and NaN planted), one rank empty everywhere,
    one row empty on every rank (L -inf, out 0)."""
    N, B, H, D = 4, 3, 6, 64
    lses = _lses(N, B, H, seed=20, special=0.1)
    lses[1, 0, :3] = float("nan")
    lses[2] = -INF      # an empty shard everywhere
    lses[:, 2, 4] = -INF  # no keys anywhere for (row 2, head 4)
    for rank in (1, 2, 3):
        out, lse = _correct_case(torch.bfloat16, N, B, H, D, rank, lses=lses)
        assert lse[2, 4] == -INF and bool((out[2, 4] == 0).all())
        if rank == 2:
            assert bool((out == 0).all()), "the empty rank contributes exactly 0"


def test_correct_single_rank_is_identity_where_finite():
    out = randn(3, 4, 80, dtype=torch.bfloat16, seed=21)
    lses = _lses(1, 3, 4, seed=22, special=0)
    before = out.clone()
    _, lse = lmkernels.correct_attn_out(out, lses, 0)
    assert torch.equal(out, before) and torch.equal(lse, lses[0])


def test_correct_strided():
    """out with head and row strides (heads of a wider tensor, rows of a taller one), lses a permuted
    view (strides (1, N H, N)), bf16 LSEs; nothing outside out written."""
    N, B, H, D = 3, 3, 4, 96
    big = torch.full((2 * B, 2 * H, D + 8), 777.0, dtype=torch.bfloat16, device=DEVICE)
    big[::2, ::2, :D] = randn(B, H, D, dtype=torch.bfloat16, seed=23)
    out = big[::2, ::2, :D]
    lses = _lses(B, H, N, seed=24).permute(2, 0, 1).to(torch.bfloat16)  # [N, B, H], non-contiguous
    before = big.clone()
    _correct_case(torch.bfloat16, N, B, H, D, 1, out=out, lses=lses)
    mask = torch.ones_like(big, dtype=torch.bool)
    mask[::2, ::2, :D] = False
    assert torch.equal(big[mask], before[mask]), "written outside out"


@pytest.mark.parametrize("B", [1, 5])
def test_correct_row_counts(B, few_small_rows):
    _correct_case(torch.bfloat16, 2, B, 8, 64, 0)


def test_correct_head_size_above_a_tile():
    _correct_case(torch.bfloat16, 3, 2, 3, 576, 2)  # MLA-like 576: chunks of 256, the last masked


@pytest.mark.parametrize("N", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_corrected_shards_sum_to_full_attention(dtype, N):
    """The op's meaning: keys split over N ranks (token i to rank i % N, vLLM's interleave; with 5 keys
    and N = 3 ranks of 2, 2, 1; plus a rank with none when keys < ranks), each rank's attention
    rounded to the dtype, corrected, summed: the full attention over every key."""
    B, Hq, Hkv, D = 2, 4, 2, 80
    for S in (5, N - 1):
        q = randn(B, Hq, D, seed=seed_of("q", dtype, N, S), dtype=torch.float64)
        k = randn(B, S, Hkv, D, seed=seed_of("k", dtype, N, S), dtype=torch.float64)
        v = randn(B, S, Hkv, D, seed=seed_of("v", dtype, N, S), dtype=torch.float64)
        full, full_lse = ref.attention_with_lse(q, k, v)
        parts = [ref.attention_with_lse(q, k[:, r::N], v[:, r::N]) for r in range(N)]
        lses = torch.stack([lse for _, lse in parts]).float()
        total = torch.zeros_like(full)
        bound = torch.zeros_like(full)
        for r, (o, lse) in enumerate(parts):
            o_r = o.to(dtype)
            if S < N and r == N - 1:
                o_r.fill_(float("nan"))  # the rank with no keys: garbage must not leak
            corrected, lse_all = lmkernels.correct_attn_out(o_r, lses, r)
            total += corrected.double()
            bound += torch.exp(lse.nan_to_num(neginf=-1e300) - full_lse)[..., None] * o.abs()
        u = 2.0**-MANTISSA[dtype]
        _assert_close(total.to(dtype), full, (SHARD_ROUNDINGS * u + SLACK * (N + ATTN_SPREAD)) * bound, f"S={S}")
        _assert_close(lse_all, full_lse, SLACK * (N + ATTN_SPREAD), "lse")


# ---------------------------------------------------------------- access modes, fast path

@pytest.mark.parametrize("op", ["merge", "correct"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mode", [m for m in MODES if m != "pointer"])
def test_access_modes_bit_identical(mode, dtype, op):
    skip_unavailable(mode)
    if op == "merge":
        a = _merge_case(dtype, 3, 5, 96, seed=30)
        b = _merge_case(dtype, 3, 5, 96, seed=30, access=mode)
    else:
        a = _correct_case(dtype, 3, 3, 5, 96, 1, seed=30)
        b = _correct_case(dtype, 3, 3, 5, 96, 1, seed=30, access=mode)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), f"access={mode!r} differs from pointer"


def test_default_access_never_fails_for_addressing(default_access):
    """D = 100 bf16: rows of 200 bytes, which TMA cannot stride; the descriptor default falls back."""
    want = _correct_case(torch.bfloat16, 2, 2, 3, 100, 0, seed=31, access="pointer")
    default_access("descriptor")
    got = _correct_case(torch.bfloat16, 2, 2, 3, 100, 0, seed=31)
    assert torch.equal(want[0], got[0])
    m_want = _merge_case(torch.bfloat16, 2, 3, 100, seed=32, access="pointer")
    assert torch.equal(_merge_case(torch.bfloat16, 2, 3, 100, seed=32)[0], m_want[0])


def test_common_calls_take_the_fast_path(monkeypatch):
    def forbid(*_a, **_k):
        raise AssertionError("the careful path ran for a call the fast path should take")
    monkeypatch.setattr(cp_ops, "check_merge", forbid)
    monkeypatch.setattr(cp_ops, "check_correct", forbid)
    _merge_case(torch.bfloat16, 2, 4, 64, seed=33)
    _correct_case(torch.bfloat16, 2, 2, 4, 64, 1, seed=33)


@pytest.mark.skipif(not ON_GPU, reason="T = B = 4096 x 32 heads is 4096-16384 programs: minutes under the interpreter")
def test_large_shapes_on_gpu():
    _merge_case(torch.bfloat16, 4096, 32, 128)
    _correct_case(torch.bfloat16, 2, 4096, 32, 128, 1)
    _correct_case(torch.bfloat16, 8, 64, 32, 128, 5)


# ---------------------------------------------------------------- bad inputs

T0, H0, D0 = 3, 4, 64
OTHER_DEVICE = "cpu" if DEVICE == "cuda" else "meta"


def _o(dtype=torch.bfloat16, shape=(T0, H0, D0)):
    return randn(*shape, dtype=dtype, seed=40)


def _l(shape=(H0, T0), dtype=torch.float32):
    return randn(*shape, dtype=dtype, seed=41)


def _merge(**kw):
    args = dict(output=_o(), prefix_output=_o(), prefix_lse=_l(), suffix_output=_o(), suffix_lse=_l())
    args.update(kw)
    return lmkernels.merge_attn_states(**args)


def _corr(out=None, lses=None, rank=1, **kw):
    return lmkernels.correct_attn_out(_o() if out is None else out, _l((3, T0, H0)) if lses is None else lses,
                                      rank, **kw)


BAD_CALLS = {
    "merge_output_not_tensor": (TypeError, "output must be a torch.Tensor", lambda: _merge(output=[1.0])),
    "merge_output_int": (TypeError, "output.dtype", lambda: _merge(output=_o().to(torch.int32))),
    "merge_output_2d": (ValueError, "output must be [T, H, D]", lambda: _merge(output=_o()[0])),
    "merge_prefix_dtype": (TypeError, "prefix_output.dtype=torch.float16 must equal output.dtype",
                           lambda: _merge(prefix_output=_o(torch.float16))),
    "merge_suffix_shape": (ValueError, "suffix_output.shape=(3, 4, 32)", lambda: _merge(suffix_output=_o()[..., :32])),
    "merge_prefix_lse_shape": (ValueError, "prefix_lse.shape=(3, 4) must be [H, T] = (4, 3)",
                               lambda: _merge(prefix_lse=_l((T0, H0)))),
    "merge_lse_int": (TypeError, "suffix_lse.dtype", lambda: _merge(suffix_lse=_l().to(torch.int64))),
    "merge_lse_dtypes_differ": (TypeError, "suffix_lse.dtype=torch.float16 must equal prefix_lse.dtype",
                                lambda: _merge(suffix_lse=_l(dtype=torch.float16))),
    "merge_prefix_lse_not_tensor": (TypeError, "prefix_lse must be a torch.Tensor", lambda: _merge(prefix_lse=1.0)),
    "merge_output_lse_shape": (ValueError, "output_lse.shape=(4, 2)", lambda: _merge(output_lse=_l((H0, 2)))),
    "merge_device": (ValueError, "suffix_lse is on",
                     lambda: _merge(suffix_lse=torch.zeros(H0, T0, device=OTHER_DEVICE))),
    "merge_last_dim_strided": (ValueError, "prefix_output.stride(-1)=2",
                               lambda: _merge(prefix_output=_o(shape=(T0, H0, 2 * D0))[..., ::2])),
    "merge_access": (ValueError, "access", lambda: _merge(access="foo")),
    "merge_pdl": (TypeError, "pdl", lambda: _merge(pdl="yes")),
    "merge_descriptor_misaligned": (ValueError, "descriptor",
                                    lambda: _merge(output=_o(shape=(T0, H0, D0 + 1))[..., 1:], access="descriptor")),
    "correct_out_not_tensor": (TypeError, "out must be a torch.Tensor", lambda: _corr(out=1.0)),
    "correct_out_2d": (ValueError, "out must be [B, H, D]", lambda: _corr(out=_o()[0])),
    "correct_lses_not_tensor": (TypeError, "lses must be a torch.Tensor", lambda: _corr(lses=[0.0])),
    "correct_lses_2d": (ValueError, "lses.shape=(4, 3) must be [N >= 1, B, H]", lambda: _corr(lses=_l())),
    "correct_lses_rows": (ValueError, "lses.shape=(3, 2, 4)", lambda: _corr(lses=_l((3, 2, H0)))),
    "correct_lses_no_ranks": (ValueError, "lses.shape=(0, 3, 4)", lambda: _corr(lses=_l((0, T0, H0)), rank=0)),
    "correct_lses_int": (TypeError, "lses.dtype", lambda: _corr(lses=_l((3, T0, H0)).to(torch.int32))),
    "correct_rank_high": (ValueError, "cp_rank=3 must be in [0, N) with N = lses.shape[0] = 3", lambda: _corr(rank=3)),
    "correct_rank_negative": (ValueError, "cp_rank=-1", lambda: _corr(rank=-1)),
    "correct_rank_type": (TypeError, "cp_rank must be an int", lambda: _corr(rank=1.0)),
    "correct_rank_bool": (TypeError, "cp_rank must be an int", lambda: _corr(rank=True)),
    "correct_base_type": (TypeError, "lse_base_e must be a bool", lambda: _corr(lse_base_e=1)),
    "correct_device": (ValueError, "lses is on", lambda: _corr(lses=torch.zeros(3, T0, H0, device=OTHER_DEVICE))),
    "correct_last_dim_strided": (ValueError, "out.stride(-1)=2", lambda: _corr(out=_o(shape=(T0, H0, 2 * D0))[..., ::2])),
    "correct_too_many_ranks": (ValueError, "exceeds 1024", lambda: _corr(lses=torch.zeros(1025, T0, H0, device=DEVICE))),
    "correct_access": (ValueError, "access", lambda: _corr(access="foo")),
    "correct_descriptor_rows_200_bytes": (ValueError, "descriptor",
                                          lambda: _corr(out=_o(shape=(T0, H0, 100)), access="descriptor")),
    "cp_group_type": (TypeError, "group must be a torch.distributed.ProcessGroup",
                      lambda: lmkernels.cp_lse_ag_out_rs(_o(), _l((T0, H0)), "world")),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_inputs(name):
    exc, match, call = BAD_CALLS[name]
    if "descriptor" in name:
        skip_unavailable("descriptor")
    with pytest.raises(exc, match=re.escape(match)):
        call()


def test_bad_input_does_not_write():
    out = _o()
    before = out.clone()
    with pytest.raises(ValueError):
        _corr(out=out, rank=5)
    with pytest.raises(ValueError):
        _merge(output=out, prefix_lse=_l((T0, H0)))
    assert torch.equal(out, before)


@pytest.mark.skipif(__import__("torch.distributed", fromlist=["x"]).is_initialized(),
                    reason="checks the message without a process group")
def test_cp_without_process_group_explains():
    with pytest.raises(RuntimeError, match="not initialised"):
        lmkernels.cp_lse_ag_out_ar(_o(), _l((T0, H0)), None)
