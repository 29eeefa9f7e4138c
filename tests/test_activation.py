"""lmkernels.silu_and_mul and lmkernels.swiglustep_and_mul against lmkernels.reference.activation."""
import math
import re

import pytest
import torch
import torch.nn.functional as F

import lmkernels
from helpers import (DEVICE, DTYPES, ON_GPU, assert_equal_nan, assert_ulps, capture, dtype_id,
                     poisoned, randn, seed_of, skip_unavailable)
from lmkernels import reference as ref
from lmkernels.ops import activation as act_ops
from lmkernels.runtime import access as access_rt
from lmkernels.runtime import launch as launch_rt

# Allowed error in ulps of the output dtype.
# silu_and_mul against PyTorch's own `F.silu(g) * u` (reference.silu_and_mul):
SILU_TOL = {
    # GPU: bit-exact for every dtype (libdevice expf, IEEE division, silu rounded to the dtype
    # before the product, as PyTorch's CUDA kernels do): 0 ulp.
    # Interpreter: numpy's exp is not expf, and fp32 results differ in the last bits:
    torch.float32: 0 if ON_GPU else 16,
    # Interpreter: two truncating casts (silu -> dtype, product -> dtype) and numpy's exp
    torch.float16: 0 if ON_GPU else 3,
    torch.bfloat16: 0 if ON_GPU else 3,
}
# swiglustep_and_mul against the fp32 reference rounded once:
SWIGLUSTEP_TOL = {
    torch.float32: 16,   # exp (ex2-based or numpy) and the division differ from torch's CPU/GPU silu by a few ulp
    torch.float16: 1,    # one fp32 last-bit difference can round the other way; the interpreter truncates casts
    torch.bfloat16: 1,   # as float16
}

SHAPES = [(1, 7), (3, 769), (4, 1024), (1, 14336), (2, 1)]
MODES = list(access_rt.MODES)  # every mode by name; those the installed Triton lacks skip with its reason
GPU_ONLY_REASON = ("bit-exactness to PyTorch's CUDA silu is a GPU property: the interpreter has no "
                   "libdevice expf and truncates casts")



def _x(T, d, dtype, *parts):
    # scaled by 3: silu's gate sees large values, where exp over/underflows and rounding is hardest
    return randn(T, 2 * d, dtype=dtype, seed=seed_of(T, d, dtype, *parts), scale=3.0)



# ---------------------------------------------------------------- silu_and_mul

@pytest.mark.parametrize("use_out", [True, False], ids=["out", "alloc"])
@pytest.mark.parametrize("T,d", SHAPES, ids=[f"{t}x{d}" for t, d in SHAPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_silu_and_mul_matches_reference(dtype, T, d, use_out):
    x = _x(T, d, dtype, "silu")
    x_before = x.clone()
    want = ref.silu_and_mul(x)
    if use_out:
        out = poisoned((T, d), dtype)
        assert lmkernels.silu_and_mul(x, out=out) is out
        got = out
    else:
        got = lmkernels.silu_and_mul(x)
    assert_ulps(got, want, SILU_TOL[dtype])
    assert torch.equal(x, x_before), "silu_and_mul is not in place"


@pytest.mark.parametrize("use_out", [True, False], ids=["out", "alloc"])
@pytest.mark.parametrize("T,d", SHAPES, ids=[f"{t}x{d}" for t, d in SHAPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_swiglustep_and_mul_matches_reference(dtype, T, d, use_out):
    x = _x(T, d, dtype, "swiglustep")
    want = ref.swiglustep_and_mul(x, 7.0)
    if use_out:
        out = poisoned((T, d), dtype)
        assert lmkernels.swiglustep_and_mul(x, 7.0, out=out) is out
        got = out
    else:
        got = lmkernels.swiglustep_and_mul(x, 7.0)
    assert_ulps(got, want, SWIGLUSTEP_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_3d_input(dtype):
    d = 136
    x = randn(2, 3, 2 * d, dtype=dtype, seed=1, scale=3.0)
    out = poisoned((2, 3, d), dtype)
    lmkernels.silu_and_mul(x, out=out)
    assert_ulps(out, ref.silu_and_mul(x), SILU_TOL[dtype])
    y = lmkernels.swiglustep_and_mul(x, 2.5)
    assert y.shape == (2, 3, d)
    assert_ulps(y, ref.swiglustep_and_mul(x, 2.5), SWIGLUSTEP_TOL[dtype])


@pytest.mark.parametrize("d", [7, 769, 1024])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_strided_rows(dtype, d):
    T = 3
    x = randn(T, 2 * d + 8, dtype=dtype, seed=seed_of("strided", d, dtype), scale=3.0)[:, :2 * d]
    assert_ulps(lmkernels.silu_and_mul(x), ref.silu_and_mul(x), SILU_TOL[dtype])
    assert_ulps(lmkernels.swiglustep_and_mul(x, 7.0), ref.swiglustep_and_mul(x, 7.0), SWIGLUSTEP_TOL[dtype])
    # unaligned base and odd row stride, into a strided output
    xu = randn(T, 2 * d + 3, dtype=dtype, seed=seed_of("unaligned", d, dtype), scale=3.0)[:, 1:2 * d + 1]
    buf = poisoned((T, d + 5), dtype)
    out = buf[:, 2:d + 2]
    lmkernels.silu_and_mul(xu, out=out)
    assert_ulps(out, ref.silu_and_mul(xu), SILU_TOL[dtype])
    assert buf[:, :2].isnan().all() and buf[:, d + 2:].isnan().all(), "wrote outside the output view"


def test_config_keeps_row_tiles_within_grid_axis_1():
    for n_rows in (1, 16, 65535, 65536, 200_000, 2**22):
        block_t, block_d, warps = act_ops.act_config(n_rows, 14336, 132)
        assert -(-n_rows // block_t) <= act_ops.MAX_GRID_Y and block_t & (block_t - 1) == 0
        assert block_t == 1 or -(-n_rows // (block_t // 2)) > act_ops.MAX_GRID_Y  # no bigger than needed


@pytest.mark.skipif(not ON_GPU, reason="70000 rows x 3 column tiles are 210000 programs: minutes under the interpreter")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=dtype_id)
def test_more_rows_than_grid_axis_1(dtype):
    """Row counts past CUDA's 65535 limit on grid axis 1 take 2-row tiles; every row is written."""
    T, d = 70001, 1100
    x = randn(T, 2 * d, dtype=dtype, seed=seed_of("many rows", d, dtype), scale=3.0)
    out = poisoned((T, d), dtype)
    lmkernels.silu_and_mul(x, out=out)
    assert_ulps(out, ref.silu_and_mul(x), SILU_TOL[dtype])
    lmkernels.swiglustep_and_mul(x, 7.0, out=out)
    assert_ulps(out, ref.swiglustep_and_mul(x, 7.0), SWIGLUSTEP_TOL[dtype])


# ---------------------------------------------------------------- GPU bit-exactness

@pytest.mark.skipif(not ON_GPU, reason=GPU_ONLY_REASON)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=dtype_id)
def test_silu_and_mul_exhaustive_16bit(dtype):
    # every one of the 65536 bit patterns as the gate: subnormals, +-inf, NaNs, both zeros
    g = torch.arange(-32768, 32768, dtype=torch.int32, device=DEVICE).to(torch.int16).view(dtype)
    u = randn(65536, dtype=dtype, seed=2, scale=3.0)
    x = torch.cat([g.view(256, 256), u.view(256, 256)], dim=1)
    got = lmkernels.silu_and_mul(x)
    assert_equal_nan(got, F.silu(x[:, :256]) * x[:, 256:])


@pytest.mark.skipif(not ON_GPU, reason=GPU_ONLY_REASON)
def test_silu_and_mul_fp32_bit_exact():
    n = 1 << 20
    gen = torch.Generator(device=DEVICE).manual_seed(3)
    g = torch.randn(n, device=DEVICE, generator=gen) * 3
    k = n // 8
    g[:k] = (torch.rand(k, device=DEVICE, generator=gen) * 200 - 100)               # large: +-100
    g[k:2 * k] = torch.randn(k, device=DEVICE, generator=gen) * 1e-30               # tiny, incl. near-subnormal
    g[2 * k:3 * k] = torch.randn(k, device=DEVICE, generator=gen) * 1e-40           # subnormal
    g[3 * k:4 * k] = (torch.rand(k, device=DEVICE, generator=gen) * 20 + 80) * torch.sign(
        torch.randn(k, device=DEVICE, generator=gen))                                 # exp over/underflow edge
    g[4 * k:4 * k + 64] = float("inf")
    g[4 * k + 64:4 * k + 128] = float("-inf")
    g[4 * k + 128:4 * k + 192] = float("nan")
    g[4 * k + 192:4 * k + 256] = torch.finfo(torch.float32).max * torch.tensor([1.0, -1.0], device=DEVICE).repeat(32)
    g = g[torch.randperm(n, device=DEVICE, generator=gen)]
    u = torch.randn(n, device=DEVICE, generator=gen) * 3
    x = torch.cat([g.view(1024, 1024), u.view(1024, 1024)], dim=1)
    got = lmkernels.silu_and_mul(x)
    assert_equal_nan(got, F.silu(x[:, :1024]) * x[:, 1024:])


# ---------------------------------------------------------------- swiglustep limits and NaN

@pytest.mark.parametrize("limit", [7.0, 0.5, 100.0, 0.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_swiglustep_limits(dtype, limit):
    T, d = 3, 769
    x = _x(T, d, dtype, "limit") * 4  # |x| up to ~50: both clamps bite at 7 and 0.5, none at 100
    out = poisoned((T, d), dtype)
    lmkernels.swiglustep_and_mul(x, limit, out=out)
    want = ref.swiglustep_and_mul(x, limit)
    assert_ulps(out, want, SWIGLUSTEP_TOL[dtype])
    if limit < 100.0:  # the data reach the clamps, so this limit is really tested
        assert not torch.equal(want, ref.swiglustep_and_mul(x, 100.0))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_nan_propagates(dtype):
    # Decisive on a GPU only: the interpreter maps min/clamp to numpy, which propagates NaN whatever
    # propagate_nan says (checked: the kernel with PropagateNan.NONE still passes under the interpreter).
    T, d = 2, 64
    x = _x(T, d, dtype, "nan")
    x[0, 3] = float("nan")        # gate
    x[1, d + 5] = float("nan")    # up
    x[0, 10] = 0.0                # gate 0 with NaN up: 0 * NaN is NaN too
    x[0, d + 10] = float("nan")
    for y, want in ((lmkernels.swiglustep_and_mul(x, 7.0), ref.swiglustep_and_mul(x, 7.0)),
                    (lmkernels.swiglustep_and_mul(x, 0.5), ref.swiglustep_and_mul(x, 0.5)),
                    (lmkernels.silu_and_mul(x), ref.silu_and_mul(x))):
        assert want[0, 3].isnan() and want[1, 5].isnan() and want[0, 10].isnan()  # torch.clamp propagates
        assert y[0, 3].isnan() and y[1, 5].isnan() and y[0, 10].isnan(), "NaN input did not give NaN"
        assert torch.equal(y.isnan(), want.isnan()), "NaN only where an input is NaN"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=dtype_id)
def test_swiglustep_limit_is_runtime(dtype):
    x = _x(4, 1024, dtype, "runtime")
    y7 = lmkernels.swiglustep_and_mul(x, 7.0)  # warm: the kernel for this config is compiled now
    n_cached = len(act_ops._launch.cache)
    y05 = lmkernels.swiglustep_and_mul(x, 0.5)
    y3 = lmkernels.swiglustep_and_mul(x, 3)    # an int limit is a float scalar too
    assert_ulps(y7, ref.swiglustep_and_mul(x, 7.0), SWIGLUSTEP_TOL[dtype])
    assert_ulps(y05, ref.swiglustep_and_mul(x, 0.5), SWIGLUSTEP_TOL[dtype])
    assert_ulps(y3, ref.swiglustep_and_mul(x, 3.0), SWIGLUSTEP_TOL[dtype])
    assert not torch.equal(y7, y05), "limit did not reach the kernel"
    if ON_GPU:  # the launch cache is used only by compiled kernels; under the interpreter it stays empty
        if launch_rt.FAST_LAUNCH:
            assert n_cached > 0, "the fast launch path cached nothing"
        assert len(act_ops._launch.cache) == n_cached, "a new limit compiled a new kernel"


# ---------------------------------------------------------------- access modes

@pytest.mark.parametrize("T,d", [(3, 1024), (2, 136), (4, 8)], ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("mode", [m for m in MODES if m != "pointer"])
def test_access_modes_bit_identical(mode, dtype, T, d):
    skip_unavailable(mode)
    x = _x(T, d, dtype, "modes")
    want = lmkernels.silu_and_mul(x, access="pointer")
    out = poisoned((T, d), dtype)
    lmkernels.silu_and_mul(x, out=out, access=mode)
    assert torch.equal(out, want), f"silu_and_mul access={mode!r} differs from pointer"
    want = lmkernels.swiglustep_and_mul(x, 2.5, access="pointer")
    out = poisoned((T, d), dtype)
    lmkernels.swiglustep_and_mul(x, 2.5, out=out, access=mode)
    assert torch.equal(out, want), f"swiglustep_and_mul access={mode!r} differs from pointer"


def test_default_access_never_fails_for_addressing(default_access):
    x = _x(3, 7, torch.float16, "default")  # row stride 28 bytes: TMA cannot address it
    want = lmkernels.silu_and_mul(x, access="pointer")
    default_access("descriptor")
    assert torch.equal(lmkernels.silu_and_mul(x), want)
    assert torch.equal(lmkernels.swiglustep_and_mul(x, 1.0), lmkernels.swiglustep_and_mul(x, 1.0, access="pointer"))


# ---------------------------------------------------------------- empty inputs

@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_empty_inputs(dtype):
    x = torch.empty(0, 16, dtype=dtype, device=DEVICE)
    y = lmkernels.silu_and_mul(x)
    assert y.shape == (0, 8) and y.dtype == dtype
    out = torch.empty(0, 8, dtype=dtype, device=DEVICE)
    assert lmkernels.silu_and_mul(x, out=out) is out
    assert lmkernels.swiglustep_and_mul(x, 7.0).shape == (0, 8)
    assert lmkernels.silu_and_mul(torch.empty(2, 0, 16, dtype=dtype, device=DEVICE)).shape == (2, 0, 8)
    assert lmkernels.silu_and_mul(torch.empty(3, 0, dtype=dtype, device=DEVICE)).shape == (3, 0)


# ---------------------------------------------------------------- programmatic dependent launch

def test_pdl_chain_matches_plain_launches():
    """Each step reads what the one before wrote ([T, 2d] -> [T, d] -> [T, d/2] ...): with PDL (where
    the GPU has it; a plain launch elsewhere) bit-identical to plain launches, eager and, on a GPU,
    replayed from one CUDA graph on new data."""
    T, d = (64, 8192) if ON_GPU else (3, 128)
    x = randn(T, 2 * d, dtype=torch.bfloat16, seed=46)

    def chain(pdl):
        y = x
        for step in range(4):
            y = (lmkernels.silu_and_mul(y, pdl=pdl) if step % 2 == 0
                 else lmkernels.swiglustep_and_mul(y, 7.0, pdl=pdl))
        return y

    plain = chain(False)
    for pdl in (None, True):
        assert torch.equal(chain(pdl), plain)
    if not ON_GPU:
        return
    graph, got = capture(lambda: chain(None))
    x.copy_(randn(T, 2 * d, dtype=torch.bfloat16, seed=47))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(got, chain(False))


# ---------------------------------------------------------------- bad inputs

def _xb(dtype=torch.float16, T=3, two_d=16):
    return randn(T, two_d, dtype=dtype, seed=4)


BAD_CALLS = {
    "odd_last_dim": (ValueError, "even", lambda: lmkernels.silu_and_mul(_xb(two_d=15))),
    "odd_last_dim_swiglustep": (ValueError, "even", lambda: lmkernels.swiglustep_and_mul(_xb(two_d=15))),
    "int_dtype": (TypeError, "x.dtype",
                  lambda: lmkernels.silu_and_mul(torch.ones(3, 16, dtype=torch.int32, device=DEVICE))),
    "int_dtype_out": (TypeError, "x.dtype",
                      lambda: lmkernels.silu_and_mul(torch.ones(3, 16, dtype=torch.int32, device=DEVICE),
                                                     out=poisoned((3, 8), torch.float16))),
    "out_shape": (ValueError, "out.shape", lambda: lmkernels.silu_and_mul(_xb(), out=poisoned((3, 16), torch.float16))),
    "out_shape_swiglustep": (ValueError, "out.shape",
                             lambda: lmkernels.swiglustep_and_mul(_xb(), out=poisoned((3, 9), torch.float16))),
    "out_dtype": (TypeError, "out.dtype", lambda: lmkernels.silu_and_mul(_xb(), out=poisoned((3, 8), torch.float32))),
    "limit_negative": (ValueError, "limit", lambda: lmkernels.swiglustep_and_mul(_xb(), -1.0)),
    "limit_nan": (ValueError, "limit", lambda: lmkernels.swiglustep_and_mul(_xb(), float("nan"))),
    "limit_inf": (ValueError, "limit", lambda: lmkernels.swiglustep_and_mul(_xb(), math.inf)),
    "limit_bool": (ValueError, "limit", lambda: lmkernels.swiglustep_and_mul(_xb(), True)),
    "access_unknown": (ValueError, "access", lambda: lmkernels.silu_and_mul(_xb(), access="foo")),
    "access_unknown_swiglustep": (ValueError, "access", lambda: lmkernels.swiglustep_and_mul(_xb(), access="foo")),
    "descriptor_misaligned": (ValueError, "descriptor",
                              lambda: lmkernels.silu_and_mul(_xb(two_d=14), access="descriptor")),
    "last_dim_strided": (ValueError, "stride",
                         lambda: lmkernels.silu_and_mul(randn(16, 3, dtype=torch.float16, seed=5).t())),
    "zero_dim": (ValueError, "at least one dimension",
                 lambda: lmkernels.silu_and_mul(torch.tensor(1.0, device=DEVICE))),
    "zero_dim_swiglustep": (ValueError, "at least one dimension",
                            lambda: lmkernels.swiglustep_and_mul(torch.tensor(1.0, device=DEVICE))),
    "pdl_not_bool": (TypeError, "pdl must be a bool or None", lambda: lmkernels.silu_and_mul(_xb(), pdl=1)),
    "pdl_not_bool_swiglustep": (TypeError, "pdl must be a bool or None",
                                lambda: lmkernels.swiglustep_and_mul(_xb(), pdl="yes")),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_inputs(name):
    exc, match, call = BAD_CALLS[name]
    with pytest.raises(exc, match=re.escape(match)):
        call()
