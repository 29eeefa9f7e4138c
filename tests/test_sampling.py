"""lmkernels.token_logprobs / token_ranks / topk_logprobs against lmkernels.reference.sampling."""
import re
import warnings

import pytest
import torch

import lmkernels
from helpers import DEVICE, DTYPES, ON_GPU, assert_equal_nan, dtype_id, randn, seed_of, skip_unavailable
from lmkernels import reference as ref
from lmkernels.ops import sampling as sampling_ops
from lmkernels.runtime import access as access_rt

# token_logprobs (fp32) against the float64 reference of the same logits:
#   |got - want| <= LP_REL * |want| + LP_ABS
# logprob = (x - M) - ln L. |x - M| <= |logprob|, so the two fp32 roundings of the result cost at
# most 2 x 2^-24 |want|; LP_REL = 2^-22 doubles that. ln L carries L's relative error as an absolute
# one, independent of the logits' offset: fp32 sums (a 4096-column bf16 segment: 32 terms in a
# thread, 5 shuffle and 2 warp levels; then <= 64 segments in the combine, 2 in a thread and 5
# shuffles: 46 roundings, 2.7e-6 as a linear worst case), ex2.approx and lg2.approx (2^-22 each,
# 0.5e-6), the rounded exponent of each term (|x - M| 2^-24, 0.3e-6 for the terms that matter):
# 3.5e-6 worst, 4e-6 allowed. Measured |got - want|: <= 1.8e-6 here, <= 2.7e-6 on the H100 (fp32
# logits, B = 256, V = 151936, where |logprob| ~ 30 and one ulp is 1.9e-6).
LP_REL = 2.0**-22
LP_ABS = 4e-6
# token_ranks and everything integer: exact. Access modes, batch sizes, splits, reruns: bit-exact.

MODES = list(access_rt.MODES)  # those the installed Triton lacks skip with its reason
# V: decode vocabularies (Llama-2 32000, Qwen2 151936) and a small odd one; 262144 (Gemma 3) on a GPU.
VOCABS = [111, 32000, 151936] + ([262144] if ON_GPU else [])
B_BIG = 64 if ON_GPU else 2  # rows at the big vocabularies (the interpreter runs ~1 s per 4 x 151936)
SCALE = 4.0  # logits spread like a language model's: std 4, the max ~18 above the mean at V = 151936



def _logits(B, V, dtype=torch.float32, seed=0):
    return randn(B, V, dtype=dtype, seed=seed, scale=SCALE)


def _ids(B, K, V, seed=0, dtype=torch.int64):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    return torch.randint(0, V, (B, K), generator=gen, device=DEVICE).to(dtype)



def assert_logprobs(got, logits, ids) -> None:
    """got against the float64 reference within LP_REL/LP_ABS; NaN and +-inf exactly where it has them."""
    want = ref.token_logprobs(logits.double(), ids)
    assert got.dtype == torch.float32 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    got64 = got.double()
    assert torch.equal(got.isnan(), want.isnan()), "NaN where the reference has none, or the reverse"
    inf = want.isinf()
    assert torch.equal(got64[inf], want[inf]) and torch.equal(got.isinf(), inf), "infinities differ"
    fin = want.isfinite()
    err = (got64 - want).abs()[fin]
    tol = (LP_REL * want.abs() + LP_ABS)[fin]
    if err.numel():
        worst = int((err - tol).argmax())
        assert bool((err <= tol).all()), f"error {err[worst]:.3g} > allowed {tol[worst]:.3g}"


@pytest.fixture(autouse=True)
def _quiet_interpreter():
    """Under the interpreter, numpy warns on inf - inf and log2(0) exactly where the kernels mean it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        yield


# ---------------------------------------------------------------- token_logprobs

@pytest.mark.parametrize("K", [1, 21])
@pytest.mark.parametrize("V", VOCABS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_token_logprobs_matches_reference(dtype, V, K):
    B = 3 if V < 100000 else B_BIG
    x = _logits(B, V, dtype, seed_of("lp", dtype, V))
    ids = _ids(B, K, V, seed_of("ids", V, K), torch.int32 if K == 1 else torch.int64)
    assert_logprobs(lmkernels.token_logprobs(x, ids), x, ids)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_token_logprobs_shifted_and_wide_rows(dtype):
    """A large common offset (the result depends on x - max only) and a wide spread."""
    V = 5000
    x = _logits(4, V, dtype, 1)
    x[0] += 1000.0
    x[1] -= 3000.0
    x[2] *= 8.0
    ids = _ids(4, 21, V, 2)
    ids[:, 0] = x.float().argmax(dim=1)  # the max itself: logprob near 0
    assert_logprobs(lmkernels.token_logprobs(x, ids), x, ids)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_token_logprobs_nonfinite_rows(dtype):
    """NaN / +inf anywhere -> the row is NaN; all -inf -> NaN; some -inf -> -inf there (torch.log_softmax)."""
    V = 9000  # three 4096-column segments for 16-bit logits, five for fp32: a segment of -inf only
    inf, nan = float("inf"), float("nan")
    x = _logits(8, V, dtype, 3)
    x[0, 17] = nan
    x[1, 8999] = inf
    x[2, :] = -inf
    x[3, 100:8500] = -inf
    x[4, 4096:8192] = -inf
    x[5, 0] = -inf
    x[6, 5] = inf
    x[6, 6] = -inf
    x[7, 3000] = nan
    x[7, 3001] = inf
    ids = _ids(8, 6, V, 4)
    ids[3, :3] = torch.tensor([50, 200, 8600])
    ids[4, :2] = torch.tensor([5000, 100])
    ids[5, 0] = 0
    got = lmkernels.token_logprobs(x, ids)
    assert_logprobs(got, x, ids)
    assert got[[0, 1, 2, 6, 7]].isnan().all() and got[3, 1] == -inf and got[5, 0] == -inf


@pytest.mark.parametrize("id_dtype", [torch.int64, torch.int32], ids=dtype_id)
def test_out_of_range_ids(id_dtype):
    V = 1000
    x = _logits(2, V, torch.bfloat16, 5)
    big = 2**40 if id_dtype == torch.int64 else 2**31 - 1
    small = -(2**40) if id_dtype == torch.int64 else -(2**31)
    ids = torch.tensor([[-1, V, big, small, 0, V - 1], [V + 1, 3, -5, V - 1, 0, 2]], dtype=id_dtype, device=DEVICE)
    got = lmkernels.token_logprobs(x, ids)
    assert_logprobs(got, x, ids)
    assert got[0, :4].isnan().all() and got[1, [0, 2]].isnan().all() and got[0, 4:].isfinite().all()
    ranks = lmkernels.token_ranks(x, ids[:, 0].contiguous())
    assert ranks.tolist() == [-1, -1]
    for col in range(6):
        tok = ids[:, col].contiguous()
        assert torch.equal(lmkernels.token_ranks(x, tok), ref.token_ranks(x, tok))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_strided_rows_and_ids(dtype):
    B, V = 3, 4099
    wide = _logits(B, V + 13, dtype, 6)
    x = wide[:, 5:V + 5]  # row stride V + 13, base 5 elements in: no 16-byte alignment anywhere
    ids = _ids(21, B, V, 7).t()  # [B, K] with strides (1, B)
    assert_logprobs(lmkernels.token_logprobs(x, ids), x, ids)
    tok = ids[:, 0]  # stride B
    assert torch.equal(lmkernels.token_ranks(x, tok), ref.token_ranks(x, tok))
    one = wide[1:2, 5:V + 5]  # a single row of a wider tensor
    assert_logprobs(lmkernels.token_logprobs(one, ids[1:2]), one, ids[1:2])


# ---------------------------------------------------------------- token_ranks

@pytest.mark.parametrize("V", VOCABS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_token_ranks_ties_and_nans(dtype, V):
    B = 8 if V < 100000 else max(B_BIG, 8)
    seed = seed_of("rk", dtype, V)
    x = _logits(B, V, dtype, seed)
    tok = _ids(B, 1, V, seed + 1)[:, 0]
    gen = torch.Generator(device=DEVICE).manual_seed(seed + 2)
    for b in range(B):  # the token's value copied to 1-6 other places: ties count against the token
        where = torch.randint(0, V, (int(b % 6) + 1,), generator=gen, device=DEVICE)
        x[b, where] = x[b, tok[b]].clone()
    x[0, :] = x[0, tok[0]].clone()  # everything tied: rank V less the NaNs
    nan_at = torch.randint(0, V, (B, 3), generator=gen, device=DEVICE)  # NaNs never count
    nan_at[nan_at == tok[:, None]] = (tok[:, None].expand_as(nan_at)[nan_at == tok[:, None]] + 1) % V
    x.scatter_(1, nan_at, float("nan"))
    x[1, tok[1]] = float("nan")  # NaN at the token: nothing compares >= NaN, rank 0
    x[2, tok[2]] = float("inf")
    x[3, tok[3]] = float("-inf")
    x[4, tok[4]] = x[4].nan_to_num(float("-inf")).max()  # tied with the max
    got = lmkernels.token_ranks(x, tok)
    assert got.dtype == torch.int64 and got.shape == (B,)
    assert torch.equal(got, ref.token_ranks(x, tok))
    assert got[1] == 0 and got[2] == 1 and got[0] == V - int(x[0].isnan().sum())


@pytest.mark.parametrize("id_dtype", [torch.int64, torch.int32], ids=dtype_id)
def test_token_ranks_simple(id_dtype):
    x = torch.tensor([[1.0, 3.0, 2.0, 3.0, float("nan")], [0.0, -1.0, -2.0, 5.0, 4.0]], device=DEVICE)
    tok = torch.tensor([0, 4], dtype=id_dtype, device=DEVICE)
    assert lmkernels.token_ranks(x, tok).tolist() == [4, 2]
    assert lmkernels.token_ranks(x, torch.tensor([1, 3], dtype=id_dtype, device=DEVICE)).tolist() == [2, 1]


# ---------------------------------------------------------------- modes, determinism, invariance

@pytest.mark.parametrize("V", [1000, 32000])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mode", [m for m in MODES if m != "pointer"])
def test_access_modes_bit_identical(mode, dtype, V):
    skip_unavailable(mode)
    B = 5
    x = _logits(B, V, dtype, seed_of("am", dtype, V))
    x[1, 7] = float("nan")
    x[2, 100:] = float("-inf")
    ids = _ids(B, 21, V, 8)
    ids[0, 0] = -1
    assert_equal_nan(lmkernels.token_logprobs(x, ids, access=mode), lmkernels.token_logprobs(x, ids, access="pointer"))
    tok = ids[:, 1].contiguous()
    assert torch.equal(lmkernels.token_ranks(x, tok, access=mode), lmkernels.token_ranks(x, tok, access="pointer"))


def test_default_access_never_fails_for_addressing(default_access):
    V = 111
    x = _logits(3, V, torch.float16, 9)  # 222-byte rows: TMA cannot address them
    ids = _ids(3, 4, V, 10)
    want = lmkernels.token_logprobs(x, ids, access="pointer")
    default_access("descriptor")
    assert_equal_nan(lmkernels.token_logprobs(x, ids), want)
    assert torch.equal(lmkernels.token_ranks(x, ids[:, 0].contiguous()),
                       lmkernels.token_ranks(x, ids[:, 0].contiguous(), access="pointer"))


def test_deterministic_with_and_without_pdl():
    """Reruns are bit-equal; PDL (on by default on sm90+, a plain launch elsewhere) changes only when
    a kernel starts."""
    x = _logits(6, 32000, torch.bfloat16, 11)
    ids = _ids(6, 21, 32000, 12)
    tok = ids[:, 0].contiguous()
    a = lmkernels.token_logprobs(x, ids)
    assert torch.equal(a, lmkernels.token_logprobs(x, ids))
    assert torch.equal(a, lmkernels.token_logprobs(x, ids, pdl=False))
    assert torch.equal(a, lmkernels.token_logprobs(x, ids, pdl=True))
    r = lmkernels.token_ranks(x, tok)
    assert torch.equal(r, lmkernels.token_ranks(x, tok)) and torch.equal(r, lmkernels.token_ranks(x, tok, pdl=False))


def test_batch_and_split_invariant(monkeypatch):
    """Segments, not programs, are the unit of the reduction: a row's logprobs do not depend on the
    batch it came in or on how many programs split its row (which follows B and the SM count)."""
    B, V = 7, 40000
    x = _logits(B, V, torch.float32, 13)
    ids = _ids(B, 21, V, 14)
    full = lmkernels.token_logprobs(x, ids)
    for i in (0, 3, 6):
        assert torch.equal(lmkernels.token_logprobs(x[i:i + 1], ids[i:i + 1])[0], full[i]), f"row {i} alone"
    padded = torch.full((B, V + 8), float("nan"), device=DEVICE)[:, :V]  # rows 16-byte, not 16-element, aligned
    padded.copy_(x)
    assert torch.equal(lmkernels.token_logprobs(padded, ids), full), "another row stride"
    for waves in (1e-6, 64):  # one program a row; every segment its own program
        monkeypatch.setattr(sampling_ops, "WAVES", waves)
        monkeypatch.setattr(sampling_ops, "_plans", {})
        assert torch.equal(lmkernels.token_logprobs(x, ids), full), f"WAVES={waves}"
        assert torch.equal(lmkernels.token_ranks(x, ids[:, 0].contiguous()), ref.token_ranks(x, ids[:, 0]))


# ---------------------------------------------------------------- the _into functions, poisoned outputs

@pytest.mark.parametrize("poison", [float("nan"), 7.0], ids=["nan", "seven"])
def test_into_writes_every_cell(poison):
    B, V, K = 4, 3000, 21
    x = _logits(B, V, torch.bfloat16, 15)
    ids = _ids(B, K, V, 16)
    ids[0, 3] = V  # an invalid id: NaN, which the 7.0 poison tells from "not written"
    out = torch.full((B, K), poison, device=DEVICE)  # logprobs are <= 0: 7.0 is never a result
    sampling_ops.token_logprobs_into(x, ids, out, None)
    assert_logprobs(out, x, ids)
    wide = torch.full((B, K + 5), poison, device=DEVICE)
    sampling_ops.token_logprobs_into(x, ids, wide[:, 2:K + 2], "pointer")  # strided out
    assert_logprobs(wide[:, 2:K + 2], x, ids)
    assert (wide[:, :2].isnan() if poison != poison else wide[:, :2] == poison).all(), "wrote outside out"
    ranks = torch.full((2 * B,), -7, dtype=torch.int64, device=DEVICE)
    sampling_ops.token_ranks_into(x, ids[:, 0].contiguous(), ranks[::2], None)
    assert torch.equal(ranks[::2], ref.token_ranks(x, ids[:, 0])) and (ranks[1::2] == -7).all()


# ---------------------------------------------------------------- topk_logprobs

@pytest.mark.parametrize("k", [0, 1, 5, 20])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_topk_logprobs(dtype, k):
    B, V = 4, 32000
    x = _logits(B, V, dtype, seed_of("tk", dtype, k))
    x[1, :50] = x[1].max()  # ties in the top k: ids compared only where values are distinct
    sampled = _ids(B, 1, V, 17)[:, 0]
    ids, lps, rank = lmkernels.topk_logprobs(x, k, sampled)
    w_ids, w_lps, w_rank = ref.topk_logprobs(x.double(), k, sampled)
    assert ids.shape == (B, k + 1) and ids.dtype == torch.int64 and lps.dtype == torch.float32
    assert torch.equal(ids[:, 0], sampled) and torch.equal(rank, w_rank)
    assert_logprobs(lps, x, ids)  # the logprobs of the ids returned
    assert torch.equal(x.gather(1, ids[:, 1:]), x.gather(1, w_ids[:, 1:])), "top-k values differ"
    vals = x.gather(1, w_ids[:, 1:]).float()
    distinct = torch.ones_like(vals, dtype=torch.bool)
    if k > 1:
        distinct[:, 1:] &= vals[:, 1:] != vals[:, :-1]
        distinct[:, :-1] &= vals[:, :-1] != vals[:, 1:]
    assert torch.equal(ids[:, 1:][distinct], w_ids[:, 1:][distinct])
    assert torch.allclose(lps.double(), w_lps, rtol=LP_REL, atol=LP_ABS, equal_nan=True)


def test_topk_logprobs_int32_sampled():
    x = _logits(3, 500, torch.float32, 18)
    sampled = torch.tensor([4, 499, 0], dtype=torch.int32, device=DEVICE)
    ids, lps, rank = lmkernels.topk_logprobs(x, 3, sampled)
    assert ids.dtype == torch.int64 and ids[:, 0].tolist() == [4, 499, 0]
    assert torch.equal(rank, ref.token_ranks(x, sampled))


# ---------------------------------------------------------------- empty and bad inputs

def test_empty_inputs():
    V = 64
    x0 = torch.empty(0, V, device=DEVICE)
    assert lmkernels.token_logprobs(x0, torch.empty(0, 3, dtype=torch.int64, device=DEVICE)).shape == (0, 3)
    assert lmkernels.token_ranks(x0, torch.empty(0, dtype=torch.int64, device=DEVICE)).shape == (0,)
    x = _logits(3, V, seed=19)
    got = lmkernels.token_logprobs(x, torch.empty(3, 0, dtype=torch.int64, device=DEVICE))
    assert got.shape == (3, 0) and got.dtype == torch.float32
    ids, lps, rank = lmkernels.topk_logprobs(x0, 2, torch.empty(0, dtype=torch.int64, device=DEVICE))
    assert ids.shape == (0, 3) and lps.shape == (0, 3) and rank.shape == (0,)


OTHER_DEVICE = "cpu" if DEVICE == "cuda" else "meta"
V_BAD = 64


def _x(dtype=torch.float32, B=3, V=V_BAD):
    return _logits(B, V, dtype, 20)


def _i(B=3, K=2, dtype=torch.int64):
    return _ids(B, K, V_BAD, 21, dtype)


def _t(B=3):
    return _ids(B, 1, V_BAD, 22)[:, 0]


BAD_CALLS = {
    "logits_not_tensor": (TypeError, "logits must be a torch.Tensor", lambda: lmkernels.token_logprobs([1.0], _i())),
    "logits_int": (TypeError, "logits.dtype", lambda: lmkernels.token_logprobs(_x().long(), _i())),
    "logits_float64": (TypeError, "logits.dtype", lambda: lmkernels.token_ranks(_x().double(), _t())),
    "logits_1d": (ValueError, "logits must be 2-D", lambda: lmkernels.token_logprobs(_x()[0], _i())),
    "logits_3d": (ValueError, "logits must be 2-D", lambda: lmkernels.token_ranks(_x()[None], _t())),
    "logits_V0": (ValueError, "logits.shape[1]=0", lambda: lmkernels.token_logprobs(_x()[:, :0], _i())),
    "logits_last_dim_strided": (ValueError, "logits.stride(1)", lambda: lmkernels.token_logprobs(_x()[:, ::2], _i())),
    "ids_not_tensor": (TypeError, "token_ids must be a torch.Tensor", lambda: lmkernels.token_logprobs(_x(), [[1]])),
    "ids_float": (TypeError, "token_ids.dtype", lambda: lmkernels.token_logprobs(_x(), _i().float())),
    "ids_int16": (TypeError, "token_ids.dtype", lambda: lmkernels.token_ranks(_x(), _t().short())),
    "ids_rows": (ValueError, "token_ids.shape=(4, 2)", lambda: lmkernels.token_logprobs(_x(), _i(B=4))),
    "ids_1d_for_logprobs": (ValueError, "token_ids.shape=(3,)", lambda: lmkernels.token_logprobs(_x(), _t())),
    "ids_2d_for_ranks": (ValueError, "token_ids.shape=(3, 2)", lambda: lmkernels.token_ranks(_x(), _i())),
    "ids_device": (ValueError, "token_ids is on",
                   lambda: lmkernels.token_logprobs(_x(), torch.zeros(3, 2, dtype=torch.int64, device=OTHER_DEVICE))),
    "access_unknown": (ValueError, "access", lambda: lmkernels.token_logprobs(_x(), _i(), access="tma")),
    "access_not_str": (TypeError, "access", lambda: lmkernels.token_ranks(_x(), _t(), access=2)),
    "pdl_not_bool": (TypeError, "pdl", lambda: lmkernels.token_logprobs(_x(), _i(), pdl="yes")),
    "descriptor_misaligned": (ValueError, "descriptor",
                              lambda: lmkernels.token_logprobs(_x(torch.float16, V=111), _ids(3, 2, 111), access="descriptor")),
    "out_dtype": (TypeError, "out.dtype",
                  lambda: sampling_ops.token_logprobs_into(_x(), _i(), torch.empty(3, 2, dtype=torch.float16, device=DEVICE), None)),
    "out_shape": (ValueError, "out.shape",
                  lambda: sampling_ops.token_ranks_into(_x(), _t(), torch.empty(4, dtype=torch.int64, device=DEVICE), None)),
    "num_logprobs_negative": (ValueError, "num_logprobs=-1", lambda: lmkernels.topk_logprobs(_x(), -1, _t())),
    "num_logprobs_over_V": (ValueError, "num_logprobs=65", lambda: lmkernels.topk_logprobs(_x(), V_BAD + 1, _t())),
    "num_logprobs_float": (TypeError, "num_logprobs", lambda: lmkernels.topk_logprobs(_x(), 2.0, _t())),
    "num_logprobs_bool": (TypeError, "num_logprobs", lambda: lmkernels.topk_logprobs(_x(), True, _t())),
    "sampled_2d": (ValueError, "sampled_token_ids.shape", lambda: lmkernels.topk_logprobs(_x(), 2, _i())),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_inputs(name):
    exc, match, call = BAD_CALLS[name]
    with pytest.raises(exc, match=re.escape(match)):
        call()


def test_check_functions_on_meta_tensors():
    """check_* read no data: the fake implementations under torch.compile call them."""
    x = torch.empty(4, 151936, dtype=torch.bfloat16, device="meta")
    sampling_ops.check_token_logprobs(x, torch.empty(4, 21, dtype=torch.int64, device="meta"))
    sampling_ops.check_token_ranks(x, torch.empty(4, dtype=torch.int32, device="meta"))
    with pytest.raises(ValueError, match=re.escape("token_ids.shape=(5, 21)")):
        sampling_ops.check_token_logprobs(x, torch.empty(5, 21, dtype=torch.int64, device="meta"))


# ---------------------------------------------------------------- GPU-only sizes

@pytest.mark.skipif(not ON_GPU, reason="B * V > 2^31 needs a GPU (4.3 GB of bf16 logits; the interpreter "
                                       "would take hours)")
def test_more_than_2_pow_31_elements():
    V = 151936
    B = 2**31 // V + 3
    if torch.cuda.get_device_properties(0).total_memory < 16 * 2**30:
        pytest.skip("needs 16 GiB of GPU memory for 4.3 GB of logits and the reference rows")
    x = torch.randn(B, V, device="cuda", dtype=torch.bfloat16)
    ids = torch.randint(0, V, (B, 21), device="cuda")
    got = lmkernels.token_logprobs(x, ids)
    ranks = lmkernels.token_ranks(x, ids[:, 0].contiguous())
    rows = [0, 1, B // 2, B - 3, B - 2, B - 1]  # the last rows sit past 2^31 elements
    assert rows[-1] * V > 2**31
    assert_logprobs(got[rows], x[rows], ids[rows])
    assert torch.equal(ranks[rows], ref.token_ranks(x[rows], ids[rows, 0]))
