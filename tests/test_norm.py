"""lmkernels.rms_norm and lmkernels.fused_add_rms_norm against lmkernels.reference.norm."""
import re

import pytest
import torch

import lmkernels
from helpers import (DEVICE, DTYPES, ON_GPU, assert_ulps, capture, dtype_id, poisoned, randn, seed_of,
                     skip_unavailable)
from lmkernels import reference as ref
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime import access as access_rt

# Allowed error of the normalised output, in ulps of the output dtype, against the fp32 reference
# rounded once.
TOL = {
    torch.float32: 16,   # rsqrt.approx is 2 ulp, and the fp32 sum of up to 5125 squares runs in another order
    torch.float16: 1,    # one fp32 last-bit difference can round the other way; the interpreter truncates casts
    torch.bfloat16: 1,   # as float16
}
# The rounded residual sum round(x + r): one fp32 add, then one cast.
RESIDUAL_TOL = {
    torch.float32: 0,                       # the fp32 add is the same add everywhere: exact
    torch.float16: 0 if ON_GPU else 1,      # exact on a GPU (round-to-nearest); the interpreter truncates casts
    torch.bfloat16: 0 if ON_GPU else 1,     # as float16
}

SHAPES = [(1, 8), (1, 4096), (3, 769), (7, 5125), (17, 128), (2, 1)]
# Batch invariance: a Llama-sized row on a GPU; 1024 under the interpreter keeps 43 launches fast.
BI_HIDDEN = 4096 if ON_GPU else 1024
MODES = list(access_rt.MODES)  # every mode by name; those the installed Triton lacks skip with its reason




# ---------------------------------------------------------------- correctness

@pytest.mark.parametrize("use_out", [True, False], ids=["out", "alloc"])
@pytest.mark.parametrize("has_weight", [True, False], ids=["weight", "noweight"])
@pytest.mark.parametrize("T,H", SHAPES, ids=[f"{t}x{h}" for t, h in SHAPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_rms_norm_matches_reference(dtype, T, H, has_weight, use_out):
    x = randn(T, H, dtype=dtype, seed=seed_of("x", dtype, T, H))
    w = randn(H, dtype=dtype, seed=seed_of("w", dtype, H)) if has_weight else None
    want = ref.rms_norm(x, w, 1e-6)
    x_before = x.clone()
    if use_out:
        out = poisoned((T, H), dtype)
        got = lmkernels.rms_norm(x, w, 1e-6, out=out)
        assert got is out
    else:
        got = lmkernels.rms_norm(x, w, 1e-6)
    assert_ulps(got, want, TOL[dtype])
    assert torch.equal(x, x_before), "rms_norm is not in place: x must be unchanged"


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("H", [769, 1024])
def test_rms_norm_strided_rows(dtype, H):
    T = 5
    w = randn(H, dtype=dtype, seed=1)
    x = randn(T, H + 8, dtype=dtype, seed=2)[:, :H]  # row stride H + 8
    out = poisoned((T, H), dtype)
    lmkernels.rms_norm(x, w, 1e-6, out=out)
    assert_ulps(out, ref.rms_norm(x, w, 1e-6), TOL[dtype])
    # unaligned: base pointer one element in, row stride H + 3 (odd)
    xu = randn(T, H + 3, dtype=dtype, seed=3)[:, 1:H + 1]
    assert_ulps(lmkernels.rms_norm(xu, w, 1e-6), ref.rms_norm(xu, w, 1e-6), TOL[dtype])
    # strided output as well
    out_s = poisoned((T, H + 5), dtype)[:, 2:H + 2]
    lmkernels.rms_norm(xu, w, 1e-6, out=out_s)
    assert_ulps(out_s, ref.rms_norm(xu, w, 1e-6), TOL[dtype])


@pytest.mark.parametrize("case", ["one_row_odd_stride", "rows_strided", "h1_strided", "h1_dense", "dense"])
def test_rms_norm_allocated_output(case):
    """The allocating call makes its output itself and launches with rows H apart without asking the
    new tensor (ops/norm.py): that must hold for every 2-D x the fast branch takes."""
    dtype = torch.bfloat16
    x = {"one_row_odd_stride": lambda: randn(1, 777, dtype=dtype, seed=4)[:, 3:773],   # [1, 770], row stride 777
         "rows_strided": lambda: randn(6, 300, dtype=dtype, seed=5)[:, 7:263],        # [6, 256], row stride 300
         "h1_strided": lambda: randn(5, 3, dtype=dtype, seed=6)[:, :1],               # [5, 1], row stride 3
         "h1_dense": lambda: randn(5, 1, dtype=dtype, seed=7),
         "dense": lambda: randn(9, 520, dtype=dtype, seed=8)}[case]()
    w = randn(x.shape[1], dtype=dtype, seed=9)
    y = lmkernels.rms_norm(x, w, 1e-6)
    assert y.shape == x.shape and y.dtype == dtype and y.data_ptr() != x.data_ptr()
    assert_ulps(y, ref.rms_norm(x, w, 1e-6), TOL[dtype])
    assert_ulps(lmkernels.rms_norm(x), ref.rms_norm(x), TOL[dtype])


@pytest.mark.parametrize("H", [16384, 65536])
def test_large_hidden_sizes(H):
    """The warps grow with H from 16384 on; 65536 spills registers on sm90 but must stay correct."""
    x = randn(2, H, dtype=torch.bfloat16, seed=H)
    w = randn(H, dtype=torch.bfloat16, seed=H + 1)
    out = poisoned((2, H), torch.bfloat16)
    lmkernels.rms_norm(x, w, 1e-6, out=out)
    assert_ulps(out, ref.rms_norm(x, w, 1e-6), TOL[torch.bfloat16])
    r = randn(2, H, dtype=torch.bfloat16, seed=H + 2)
    xf, rf = x.clone(), r.clone()
    lmkernels.fused_add_rms_norm(xf, rf, w, 1e-6)
    assert_ulps(xf, ref.rms_norm(rf, w, 1e-6), TOL[torch.bfloat16])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_rms_norm_3d_and_1d(dtype):
    H = 136
    w = randn(H, dtype=dtype, seed=4)
    x3 = randn(2, 3, H, dtype=dtype, seed=5)
    out3 = poisoned((2, 3, H), dtype)
    lmkernels.rms_norm(x3, w, 1e-6, out=out3)
    assert_ulps(out3, ref.rms_norm(x3, w, 1e-6), TOL[dtype])
    y3 = lmkernels.rms_norm(x3, w, 1e-6)
    assert y3.shape == (2, 3, H)
    assert_ulps(y3, ref.rms_norm(x3, w, 1e-6), TOL[dtype])
    x1 = randn(H, dtype=dtype, seed=6)
    y1 = lmkernels.rms_norm(x1, w, 1e-6)
    assert y1.shape == (H,)
    assert_ulps(y1, ref.rms_norm(x1, w, 1e-6), TOL[dtype])


# ---------------------------------------------------------------- fused_add_rms_norm

@pytest.mark.parametrize("has_weight", [True, False], ids=["weight", "noweight"])
@pytest.mark.parametrize("T,H", [(1, 8), (3, 769), (7, 5125), (17, 128), (2, 1)],
                         ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_fused_add_rms_norm(dtype, T, H, has_weight):
    x0 = randn(T, H, dtype=dtype, seed=seed_of("fx", dtype, T, H))
    r0 = randn(T, H, dtype=dtype, seed=seed_of("fr", dtype, T, H))
    w = randn(H, dtype=dtype, seed=seed_of("fw", dtype, H)) if has_weight else None
    x, r = x0.clone(), r0.clone()
    got_x, got_r = lmkernels.fused_add_rms_norm(x, r, w, 1e-6)
    assert got_x is x and got_r is r, "fused_add_rms_norm returns the tensors it mutated"
    want_r = (x0.float() + r0.float()).to(dtype)
    assert_ulps(r, want_r, RESIDUAL_TOL[dtype])
    # x is the norm of the residual as stored (the rounded sum), as vLLM computes it
    assert_ulps(x, ref.rms_norm(r, w, 1e-6), TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_fused_add_rms_norm_3d_and_strided(dtype):
    H = 264
    w = randn(H, dtype=dtype, seed=7)
    x0 = randn(2, 3, H, dtype=dtype, seed=8)
    r0 = randn(2, 3, H, dtype=dtype, seed=9)
    x, r = x0.clone(), r0.clone()
    lmkernels.fused_add_rms_norm(x, r, w, 1e-6)
    assert_ulps(r, (x0.float() + r0.float()).to(dtype), RESIDUAL_TOL[dtype])
    assert_ulps(x, ref.rms_norm(r, w, 1e-6), TOL[dtype])
    # strided rows for both x and residual, with different row strides
    xb = randn(4, H + 8, dtype=dtype, seed=10)
    rb = randn(4, H + 3, dtype=dtype, seed=11)
    x, r = xb[:, :H], rb[:, 1:H + 1]
    x0, r0 = x.clone(), r.clone()
    xb_before, rb_before = xb.clone(), rb.clone()
    lmkernels.fused_add_rms_norm(x, r, w, 1e-6)
    assert_ulps(r, (x0.float() + r0.float()).to(dtype), RESIDUAL_TOL[dtype])
    assert_ulps(x, ref.rms_norm(r, w, 1e-6), TOL[dtype])
    # nothing outside the views was written
    assert torch.equal(xb[:, H:], xb_before[:, H:])
    assert torch.equal(rb[:, 0], rb_before[:, 0]) and torch.equal(rb[:, H + 1:], rb_before[:, H + 1:])


# ---------------------------------------------------------------- batch invariance

@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_rms_norm_batch_invariant(dtype):
    T, H = 37, BI_HIDDEN
    x = randn(T, H, dtype=dtype, seed=12)
    w = randn(H, dtype=dtype, seed=13)
    full = lmkernels.rms_norm(x, w, 1e-6)
    assert_ulps(full, ref.rms_norm(x, w, 1e-6), TOL[dtype])
    for i in range(T):
        one = lmkernels.rms_norm(x[i:i + 1], w, 1e-6)
        assert torch.equal(one[0], full[i]), f"row {i} alone differs from row {i} in a batch of {T}"
    five = lmkernels.rms_norm(x[10:15], w, 1e-6)
    assert torch.equal(five, full[10:15]), f"rows 10..14 as a batch of 5 differ from a batch of {T}"


def test_fused_add_rms_norm_batch_invariant():
    T, H, dtype = 37, BI_HIDDEN, torch.bfloat16
    x0 = randn(T, H, dtype=dtype, seed=14)
    r0 = randn(T, H, dtype=dtype, seed=15)
    w = randn(H, dtype=dtype, seed=16)
    x, r = x0.clone(), r0.clone()
    lmkernels.fused_add_rms_norm(x, r, w, 1e-6)
    for i in (0, 1, 17, 36):
        xi, ri = x0[i:i + 1].clone(), r0[i:i + 1].clone()
        lmkernels.fused_add_rms_norm(xi, ri, w, 1e-6)
        assert torch.equal(xi[0], x[i]) and torch.equal(ri[0], r[i]), f"row {i}"


# ---------------------------------------------------------------- access modes

@pytest.mark.parametrize("T,H", [(3, 1024), (5, 136), (1, 8)], ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mode", [m for m in MODES if m != "pointer"])
def test_access_modes_bit_identical(mode, dtype, T, H):
    skip_unavailable(mode)
    x = randn(T, H, dtype=dtype, seed=seed_of("ax", dtype, T, H))
    r = randn(T, H, dtype=dtype, seed=seed_of("ar", dtype, T, H))
    w = randn(H, dtype=dtype, seed=seed_of("aw", dtype, H))
    for weight in (w, None):
        want = lmkernels.rms_norm(x, weight, 1e-6, access="pointer")
        out = poisoned((T, H), dtype)
        lmkernels.rms_norm(x, weight, 1e-6, out=out, access=mode)
        assert torch.equal(out, want), f"rms_norm access={mode!r} differs from pointer (weight={weight is not None})"
    xp, rp = x.clone(), r.clone()
    lmkernels.fused_add_rms_norm(xp, rp, w, 1e-6, access="pointer")
    xm, rm = x.clone(), r.clone()
    lmkernels.fused_add_rms_norm(xm, rm, w, 1e-6, access=mode)
    assert torch.equal(rm, rp), f"fused_add_rms_norm residual, access={mode!r}"
    assert torch.equal(xm, xp), f"fused_add_rms_norm x, access={mode!r}"


def test_default_access_never_fails_for_addressing(default_access):
    T, H, dtype = 3, 769, torch.float16
    x = randn(T, 771, dtype=dtype, seed=17)[:, :H]  # row stride 1542 bytes: TMA cannot address it
    w = randn(H, dtype=dtype, seed=18)
    want = lmkernels.rms_norm(x, w, 1e-6, access="pointer")
    default_access("descriptor")
    assert access_rt.default_mode() == access_rt.DESCRIPTOR
    got = lmkernels.rms_norm(x, w, 1e-6)  # the default falls back to pointer instead of raising
    assert torch.equal(got, want)
    xu = randn(T, H + 1, dtype=dtype, seed=19)[:, 1:]  # base 2 bytes off 16
    assert torch.equal(lmkernels.rms_norm(xu, w, 1e-6), lmkernels.rms_norm(xu, w, 1e-6, access="pointer"))
    # and the fused op, whose residual is misaligned too
    xf, rf = randn(T, H, dtype=dtype, seed=20), randn(T, 771, dtype=dtype, seed=21)[:, :H]
    xp, rp = xf.clone(), rf.clone()
    lmkernels.fused_add_rms_norm(xp, rp, w, 1e-6, access="pointer")
    lmkernels.fused_add_rms_norm(xf, rf, w, 1e-6)
    assert torch.equal(xf, xp) and torch.equal(rf, rp)
    # aligned rows under the same default are served (by the descriptor mode) identically
    xa = randn(T, 1024, dtype=dtype, seed=22)
    wa = randn(1024, dtype=dtype, seed=23)
    assert torch.equal(lmkernels.rms_norm(xa, wa, 1e-6), lmkernels.rms_norm(xa, wa, 1e-6, access="pointer"))


def test_invalid_env_access(default_access):
    default_access("tma")
    with pytest.raises(ValueError, match="LMKERNELS_ACCESS"):
        lmkernels.rms_norm(randn(2, 8, seed=24), None, 1e-6)


# ---------------------------------------------------------------- runtime eps

@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_eps_is_runtime(dtype):
    T, H = 4, 256
    # small inputs, mean(x^2) ~ 1e-4, so that eps = 1e-2 changes the result a lot
    x = randn(T, H, dtype=dtype, seed=25, scale=1e-2)
    w = randn(H, dtype=dtype, seed=26)
    results = {}
    n_cached = None
    for eps in (1e-6, 1e-2):
        y = lmkernels.rms_norm(x, w, eps)
        assert_ulps(y, ref.rms_norm(x, w, eps), TOL[dtype])
        results[eps] = y
        if ON_GPU and norm_ops._launch.cache is not None:
            if n_cached is None:
                n_cached = len(norm_ops._launch.cache)
            else:  # a new eps is a new scalar argument, not a new kernel (no-op where the fast path is off)
                assert len(norm_ops._launch.cache) == n_cached, "a new eps compiled a new kernel"
    assert not torch.equal(results[1e-6], results[1e-2]), "eps did not reach the kernel"


# ---------------------------------------------------------------- empty inputs

@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_empty_inputs(dtype):
    H = 64
    w = randn(H, dtype=dtype, seed=27)
    x = torch.empty(0, H, dtype=dtype, device=DEVICE)
    y = lmkernels.rms_norm(x, w, 1e-6)
    assert y.shape == (0, H) and y.dtype == dtype
    out = torch.empty(0, H, dtype=dtype, device=DEVICE)
    assert lmkernels.rms_norm(x, w, 1e-6, out=out) is out
    assert lmkernels.rms_norm(torch.empty(2, 0, 0, dtype=dtype, device=DEVICE)).shape == (2, 0, 0)
    r = torch.empty(0, H, dtype=dtype, device=DEVICE)
    gx, gr = lmkernels.fused_add_rms_norm(x, r, w, 1e-6)
    assert gx is x and gr is r and gx.shape == (0, H)


# ---------------------------------------------------------------- programmatic dependent launch

def test_pdl_default_follows_the_device():
    from lmkernels.runtime.device import pdl_supported
    dev = 0 if ON_GPU else -1
    want = ON_GPU and torch.cuda.get_device_capability(0) >= (9, 0)
    assert pdl_supported(dev) == want
    assert norm_ops._plan(64, torch.bfloat16, dev, False, True, None)[4] == want
    assert norm_ops._plan(64, torch.bfloat16, dev, False, True, False)[4] is False


def test_l2_prefetch_only_for_small_rms_norm_calls_with_pdl():
    """PREFETCH (kernels/norm.py) where ops/norm.py measured it paying: rms_norm with PDL, grids of
    at most one program an SM; never with a residual or without PDL. The rows it serves are bit-equal
    to those of the plain variant (a prefetch fills no register)."""
    from lmkernels.runtime.device import num_sms, pdl_supported
    dev = 0 if ON_GPU else -1
    plain = norm_ops._plan(64, torch.bfloat16, dev, False, True, None)
    assert plain[5] == (num_sms(max(dev, 0)) if pdl_supported(dev) else 0)
    assert plain[6][5] == plain[5] and plain[2][5] == 0  # PREFETCH: the programs that prefetch
    assert norm_ops._plan(64, torch.bfloat16, dev, True, True, None)[5] == 0
    assert norm_ops._plan(64, torch.bfloat16, dev, False, True, False)[5] == 0
    H = 4096 if ON_GPU else 256
    w = randn(H, dtype=torch.bfloat16, seed=44)
    x = randn(200, H, dtype=torch.bfloat16, seed=45)
    whole = lmkernels.rms_norm(x, w)  # 200 rows: more programs than the H100's 132 SMs
    for rows in (1, 7, 100):
        assert torch.equal(lmkernels.rms_norm(x[:rows], w), whole[:rows])


@pytest.mark.parametrize("mode", MODES)
def test_pdl_chain_matches_plain_launches(mode):
    """Eight dependent fused_add_rms_norm -> rms_norm steps, each reading what the one before wrote:
    with PDL (where the GPU has it; a plain launch elsewhere) the results are bit-identical to
    plain launches, eager and, on a GPU, replayed from one CUDA graph."""
    skip_unavailable(mode)
    T, H, steps = (64, 4096, 8) if ON_GPU else (3, 256, 3)
    w = randn(H, dtype=torch.bfloat16, seed=41)
    x0 = randn(T, H, dtype=torch.bfloat16, seed=42)
    r0 = randn(T, H, dtype=torch.bfloat16, seed=43)

    def chain(x, r, pdl):
        for _ in range(steps):
            lmkernels.fused_add_rms_norm(x, r, w, 1e-6, access=mode, pdl=pdl)
            x = lmkernels.rms_norm(x, w, 1e-6, access=mode, pdl=pdl) * 2
        return x, r

    plain = chain(x0.clone(), r0.clone(), False)
    for pdl in (None, True):
        got = chain(x0.clone(), r0.clone(), pdl)
        assert torch.equal(got[0], plain[0]) and torch.equal(got[1], plain[1])
    if not ON_GPU:
        return
    xs, rs = x0.clone(), r0.clone()
    chain(xs.clone(), rs.clone(), True)  # compile outside the capture
    graph, out = capture(lambda: chain(xs, rs, True))
    for _ in range(2):
        xs.copy_(x0)
        rs.copy_(r0)
        out[0].fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out[0], plain[0]) and torch.equal(rs, plain[1])


# ---------------------------------------------------------------- the memo of bound launches

def _norm_into_calls(monkeypatch):
    """Make norm_into (the fast branch and the careful path) count its calls: a memo hit never
    enters it."""
    entered = []
    real = norm_ops.norm_into
    monkeypatch.setattr(norm_ops, "norm_into", lambda *a: (entered.append(1), real(*a))[1])
    return entered


def test_memo_hits_after_the_first_call_and_follows_the_row_count(monkeypatch):
    """A repeat call with the same operand facts launches from the memo (on the CPU through the
    interpreter, on a GPU through the bound C launch) whatever its row count, for both ops and for
    the allocating call; every result stays right, and the residual is updated each time."""
    H = 256
    w = randn(H, dtype=torch.bfloat16, seed=46)
    norm_ops._memo.clear()
    entered = _norm_into_calls(monkeypatch)
    rows = [3, 1, 200, 7, 3, 200]  # 200 > one program an SM on an H100: both configs of the plan
    for i, T in enumerate(rows):
        x = randn(T, H, dtype=torch.bfloat16, seed=47 + i)
        out = poisoned((T, H), torch.bfloat16)
        assert lmkernels.rms_norm(x, w, out=out) is out
        assert_ulps(out, ref.rms_norm(x, w, 1e-6), TOL[torch.bfloat16])
        assert_ulps(lmkernels.rms_norm(x, w), ref.rms_norm(x, w, 1e-6), TOL[torch.bfloat16])
        r = randn(T, H, dtype=torch.bfloat16, seed=60 + i)
        want_r = (x.float() + r.float()).to(torch.bfloat16)
        got_x, got_r = lmkernels.fused_add_rms_norm(x, r, w, 1e-6)
        assert got_x is x and got_r is r
        assert_ulps(r, want_r, RESIDUAL_TOL[torch.bfloat16])
        assert_ulps(x, ref.rms_norm(r, w, 1e-6), TOL[torch.bfloat16])  # the norm of the sum as stored
    assert len(norm_ops._memo) == 3  # out=, allocating, fused: one entry each
    # each entry's two configs are bound after their first launch: 3 ops x (fill small, fill large)
    assert len(entered) <= 6 < 3 * len(rows), "every call took norm_into: the memo never hit"


MEMO_VARIANTS = ["no weight, narrower rows, same stride", "strided out", "fp32", "eps", "int eps", "pdl off",
                 "weight as a Parameter", "in place", "other weight", "out shape", "residual shape", "bool eps",
                 "int pdl", "descriptor", "meta"]


@pytest.mark.parametrize("variant", MEMO_VARIANTS)
def test_memo_never_serves_other_facts(variant):
    """A call that differs from memoised ones in one fact gets that fact's result (or its error),
    never a memoised launch: the memo is filled first by the same calls on [5, 64] bf16 rows of
    stride 64 (no weight, with a weight, out=, allocating, fused, pdl=True)."""
    H = 64
    dt = torch.bfloat16
    base = randn(5, H, dtype=dt, seed=70)
    w = randn(H, dtype=dt, seed=71)
    norm_ops._memo.clear()
    for _ in range(2):  # fill, then hit
        lmkernels.rms_norm(base, None)
        lmkernels.rms_norm(base, w)
        lmkernels.rms_norm(base, w, out=poisoned((5, H), dt))
        lmkernels.rms_norm(base, w, pdl=True)
        lmkernels.fused_add_rms_norm(base.clone(), base.clone(), w)
    assert len(norm_ops._memo) == 5
    x, wt, eps = base, w, 1e-6
    if variant == "no weight, narrower rows, same stride":
        x = randn(5, H, dtype=dt, seed=72)[:, :H - 8]  # stride (64, 1) as the memoised x, H = 56
        assert x.stride() == base.stride()
        assert_ulps(lmkernels.rms_norm(x, None), ref.rms_norm(x, None, eps), TOL[dt])
        return
    if variant == "strided out":
        out = poisoned((5, H + 8), dt)[:, 4:H + 4]
        lmkernels.rms_norm(x, wt, out=out)
        assert_ulps(out, ref.rms_norm(x, wt, eps), TOL[dt])
        return
    if variant == "fp32":
        x, wt = x.float(), wt.float()
    elif variant == "eps":
        eps = 0.5  # large enough to move every output
    elif variant == "int eps":
        eps = 1
    elif variant == "pdl off":
        assert_ulps(lmkernels.rms_norm(x, wt, pdl=False), ref.rms_norm(x, wt, eps), TOL[dt])
        return
    elif variant == "weight as a Parameter":
        wt = torch.nn.Parameter(w.clone(), requires_grad=False)
    elif variant == "in place":
        y = x.clone()
        want = ref.rms_norm(y, wt, eps)
        assert lmkernels.rms_norm(y, wt, out=y) is y
        assert_ulps(y, want, TOL[dt])
        return
    elif variant == "other weight":
        wt = randn(H, dtype=dt, seed=73)
    elif variant == "out shape":
        with pytest.raises(ValueError, match="out.shape"):
            lmkernels.rms_norm(x, wt, out=poisoned((4, H), dt))
        return
    elif variant == "residual shape":
        with pytest.raises(ValueError, match="residual.shape"):
            lmkernels.fused_add_rms_norm(x.clone(), x[:4].clone(), wt)
        return
    elif variant == "bool eps":
        with pytest.raises(TypeError, match="eps"):
            lmkernels.rms_norm(x, wt, True)
        return
    elif variant == "int pdl":
        with pytest.raises(TypeError, match="pdl"):
            lmkernels.rms_norm(x, wt, pdl=1)
        return
    elif variant == "descriptor":
        skip_unavailable("descriptor")
        got = lmkernels.rms_norm(x, wt, access="descriptor")
        assert torch.equal(got, lmkernels.rms_norm(x, wt))
        return
    elif variant == "meta":  # get_device() is -1 on the CPU and for meta alike: the careful path refuses it
        with pytest.raises((ValueError, RuntimeError, NotImplementedError)):
            lmkernels.rms_norm(x.to("meta"), wt.to("meta"))
        return
    assert_ulps(lmkernels.rms_norm(x, wt, eps), ref.rms_norm(x, wt, float(eps)), TOL[x.dtype])


@pytest.mark.skipif(not ON_GPU, reason="bound launches exist only for compiled kernels on a GPU (the interpreter "
                                       "ignores alignment)")
def test_memo_with_unaligned_pointers():
    """The memo binds aligned pointers; rows 2 bytes off 16 with the same strides (the same facts)
    must not launch the aligned specialisation: the bound launch refuses them and they are right."""
    H = 64
    buf = randn(6, H + 8, dtype=torch.bfloat16, seed=74)
    w = randn(H, dtype=torch.bfloat16, seed=75)
    norm_ops._memo.clear()
    for x in (buf[:, :H], buf[:, :H], buf[:, 1:H + 1], buf[:, :H], buf[:, 1:H + 1]):
        assert_ulps(lmkernels.rms_norm(x, w), ref.rms_norm(x, w, 1e-6), TOL[torch.bfloat16])
        r = randn(6, H, dtype=torch.bfloat16, seed=76)
        y = x.clone()
        lmkernels.fused_add_rms_norm(y, r, w)
        assert_ulps(y, ref.rms_norm(r, w, 1e-6), TOL[torch.bfloat16])


def test_bench_targets_and_host_target():
    """The bench's target tables on made-up rows: bandwidth from T = 4096 against 2850 GB/s, the
    access modes within 5 % of pointer, T <= 16 against the fastest peer, host time against max(8,
    torch.mul(out=))."""
    from lmkernels.bench import norm as fam
    from lmkernels.bench.copies import BEST_COPY_ROW
    from lmkernels.bench.harness import HOST_BAR_US, Row, Table, host_table
    t = Table("t", 3000.0)
    big, small = "T=4096 H=4096", "T=1 H=4096"
    t.rows += [Row("rms_norm", big, "bfloat16", "lmkernels-pointer", 24.0, 2800.0, 0, None, warm_gbs=2900.0),
               Row("rms_norm", big, "bfloat16", "lmkernels-descriptor", 25.5, 0, 0, None),
               Row("rms_norm", big, "bfloat16", "lmkernels-block_ptr", 24.5, 0, 0, None),
               Row("rms_norm", big, "bfloat16", "copy, same bytes (ceiling at this size)", 24.4, 2750.0, 0, None),
               Row("rms_norm", big, "bfloat16", BEST_COPY_ROW, 23.9, 2810.0, 0, None),
               Row("fused_add_rms_norm", big, "bfloat16", "lmkernels-pointer", 46.0, 2900.0, 0, None),
               Row("rms_norm", "T=4096 H=8192", "bfloat16", "lmkernels-pointer", 48.0, 2840.0, 0, None),
               Row("rms_norm", "T=4096 H=8192", "bfloat16", BEST_COPY_ROW, 46.0, 2900.0, 0, None),
               Row("rms_norm", small, "bfloat16", "lmkernels-pointer", 1.5, 0, 0, None),
               Row("reshape_and_cache_flash", "T=4096 H=8", "bfloat16", "lmkernels-pointer", 12.0, 2700.0, 0, None),
               Row("rms_norm", small, "bfloat16", "liger", 1.7, 0, 0, None),
               Row("rms_norm", small, "bfloat16", "torch-compile", 1.4, 0, 0, None),
               Row("rms_norm", small, "bfloat16", "copy, same bytes (ceiling at this size)", 1.2, 0, 0, None),
               Row("fused_add_rms_norm", small, "bfloat16", "lmkernels-pointer", 1.5, 0, 0, None),
               Row("fused_add_rms_norm", small, "bfloat16", "liger (out of place)", 1.6, 0, 0, None)]
    text = fam.targets(t)
    # under the bar, and so was every copy of its bytes; then one that a copy beat
    assert (f"| rms_norm {big} | >= 2850 GB/s | 2800 | one set 2900; same-bytes copy 2750; best copy 2810 (0.996x) | "
            f"MISSED; above every copy of these bytes here (best 2810) |") in text
    assert "| rms_norm T=4096 H=8192 | >= 2850 GB/s | 2840 | best copy 2900 (0.979x) | MISSED |" in text
    assert "reshape_and_cache_flash" not in text  # another family's row in the table
    assert f"| rms_norm {big} | descriptor <= 1.05x pointer | 1.062x | 25.50 µs | MISSED |" in text
    assert f"| rms_norm {big} | block_ptr <= 1.05x pointer | 1.021x | 24.50 µs | met |" in text
    assert f"| fused_add_rms_norm {big} | >= 2850 GB/s | 2900 |  | met |" in text
    assert f"| rms_norm {small} | <= best peer | 1.50 µs | torch-compile 1.40 µs | MISSED |" in text
    assert f"| fused_add_rms_norm {small} | <= best peer | 1.50 µs | liger (out of place) 1.60 µs | met |" in text
    host = host_table({"torch.mul(x, 2, out=y)": 9.0, "lmkernels.rms_norm(x, w)": 9.5,
                       "lmkernels.rms_norm(x, w, out=y)": 8.5}, HOST_BAR_US, "a call")
    assert "= 9.00)" in host
    assert "| lmkernels.rms_norm(x, w) | 9.50 | 1.06 | MISSED |" in host
    assert "| lmkernels.rms_norm(x, w, out=y) | 8.50 | 0.94 | met |" in host
    # on a fast host the bar is 8 µs
    assert "| lmkernels.rms_norm(x, w) | 7.90 | 1.13 | met |" in host_table(
        {"torch.mul(x, 2, out=y)": 7.0, "lmkernels.rms_norm(x, w)": 7.9}, HOST_BAR_US, "a call")


# ---------------------------------------------------------------- bad inputs

H_BAD = 64


def _x(dtype=torch.float16, T=3, H=H_BAD):
    return randn(T, H, dtype=dtype, seed=28)


def _w(dtype=torch.float16, H=H_BAD):
    return randn(H, dtype=dtype, seed=29)


OTHER_DEVICE = "cpu" if DEVICE == "cuda" else "meta"

BAD_CALLS = {
    "x_int32": (TypeError, "x.dtype",
                lambda: lmkernels.rms_norm(torch.ones(3, H_BAD, dtype=torch.int32, device=DEVICE))),
    "x_int32_out": (TypeError, "x.dtype",
                    lambda: lmkernels.rms_norm(torch.ones(3, H_BAD, dtype=torch.int32, device=DEVICE),
                                               out=poisoned((3, H_BAD), torch.float16))),
    "weight_dtype": (TypeError, "weight.dtype", lambda: lmkernels.rms_norm(_x(), _w(torch.float32))),
    "weight_shape": (ValueError, "weight.shape", lambda: lmkernels.rms_norm(_x(), _w(H=H_BAD + 1))),
    "weight_2d": (ValueError, "weight.shape", lambda: lmkernels.rms_norm(_x(), _w().view(1, H_BAD))),
    "x_last_dim_strided": (ValueError, "stride",
                           lambda: lmkernels.rms_norm(randn(H_BAD, 3, dtype=torch.float16, seed=30).t())),
    "out_shape": (ValueError, "out.shape",
                  lambda: lmkernels.rms_norm(_x(), _w(), out=poisoned((3, H_BAD + 1), torch.float16))),
    "out_dtype": (TypeError, "out.dtype",
                  lambda: lmkernels.rms_norm(_x(), _w(), out=poisoned((3, H_BAD), torch.float32))),
    "weight_device": (ValueError, "weight is on",
                      lambda: lmkernels.rms_norm(_x(), torch.empty(H_BAD, dtype=torch.float16, device=OTHER_DEVICE))),
    "access_unknown": (ValueError, "access", lambda: lmkernels.rms_norm(_x(), _w(), access="foo")),
    "descriptor_misaligned": (ValueError, "descriptor",
                              lambda: lmkernels.rms_norm(randn(3, 771, dtype=torch.float16, seed=31)[:, :769],
                                                         _w(H=769), access="descriptor")),
    "residual_shape": (ValueError, "residual.shape",
                       lambda: lmkernels.fused_add_rms_norm(_x(), _x(T=4), _w())),
    "residual_dtype": (TypeError, "residual.dtype",
                       lambda: lmkernels.fused_add_rms_norm(_x(), _x(torch.bfloat16), _w(), 1e-6)),
    "x_0d": (ValueError, "at least one dimension", lambda: lmkernels.rms_norm(torch.tensor(1.0, device=DEVICE))),
    "eps_str": (TypeError, "eps", lambda: lmkernels.rms_norm(_x(), _w(), "1e-6")),
    "fused_access_unknown": (ValueError, "access",
                             lambda: lmkernels.fused_add_rms_norm(_x(), _x(), _w(), access="foo")),
    "pdl_str": (TypeError, "pdl", lambda: lmkernels.rms_norm(_x(), _w(), pdl="yes")),
    "fused_pdl_int": (TypeError, "pdl", lambda: lmkernels.fused_add_rms_norm(_x(), _x(), _w(), pdl=1)),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_inputs(name):
    exc, match, call = BAD_CALLS[name]
    with pytest.raises(exc, match=re.escape(match)):
        call()


@pytest.mark.parametrize("fused", [False, True], ids=["rms_norm", "fused_add_rms_norm"])
def test_hidden_size_too_large(fused):
    # meta tensors have no data: the limit must be checked on the host before anything reads memory
    H = norm_ops.MAX_HIDDEN + 1
    x = torch.empty(2, H, dtype=torch.bfloat16, device="meta")
    with pytest.raises(ValueError, match="exceeds"):
        if fused:
            lmkernels.fused_add_rms_norm(x, torch.empty_like(x), None)
        else:
            lmkernels.rms_norm(x)


def test_bad_input_does_not_write():
    # a call refused on its arguments leaves out and residual untouched
    x, w = _x(), _w()
    out = poisoned((3, H_BAD), torch.float16)
    with pytest.raises(ValueError):
        lmkernels.rms_norm(x, w, 1e-6, out=out, access="foo")
    assert out.isnan().all()
    r = _x(T=3)
    r_before, x_before = r.clone(), x.clone()
    with pytest.raises(ValueError):
        lmkernels.fused_add_rms_norm(x, r, _w(H=H_BAD + 1), 1e-6)
    assert torch.equal(r, r_before) and torch.equal(x, x_before)


@pytest.mark.parametrize("fused,value", [
    pytest.param(False, [1.0, 2.0], id="rms_norm-list"),
    pytest.param(False, None, id="rms_norm-None"),
    pytest.param(True, [1.0, 2.0], id="fused_add_rms_norm-list"),
    pytest.param(True, None, id="fused_add_rms_norm-None"),
])
def test_x_not_a_tensor(fused, value):
    with pytest.raises(TypeError, match="x"):
        if fused:
            lmkernels.fused_add_rms_norm(value, _x(), None)
        else:
            lmkernels.rms_norm(value)
    with pytest.raises(TypeError, match="x"):
        (lmkernels.silu_and_mul if fused else lmkernels.swiglustep_and_mul)(value)
