"""lmkernels.scaled_mm (W8A8 int8 / fp8 e4m3) against lmkernels.reference.scaled_mm."""
import itertools

import pytest
import torch
from helpers import DEVICE, ON_GPU, CountingLauncher, assert_ulps, capture, seed_of, skip_unavailable
from torch._subclasses.fake_tensor import FakeTensorMode

import lmkernels
from lmkernels import reference as ref
from lmkernels.ops import scaled_mm as mm_ops
from lmkernels.ops.scaled_mm import MAX_INT8_K, check_config, heuristic_config
from lmkernels.runtime import access as access_rt
from lmkernels.runtime import scratch
from lmkernels.runtime import config_store
from lmkernels.runtime.device import fp8_mma_problem
from lmkernels.verify import fp8_acc_rel, fp8_mm_bound

# Allowed error, by operand type:
#   int8, against the reference (the same fp32 steps in the same order on an exact int32 sum; the
#   kernel is compiled with enable_fp_fusion=False, so t * sb + bias is not one FMA): in ulps of
#   the output dtype
INT8_ULPS = {torch.float32: 0, torch.float16: 0,
             # the interpreter truncates fp32 -> bf16 where the GPU rounds to nearest (fp32 -> fp16
             # goes through numpy there, which rounds to nearest: exact too)
             torch.bfloat16: 0 if ON_GPU else 1}
#   fp8 e4m3, against float64 (lmkernels.verify.fp8_mm_bound, <= 1 passes): |got - exact| <=
#     |sa sb| sum_k |a b| (acc_rel + 4u) + 2u |bias| + 1 ulp(exact) of the output, u = 2^-24:
#     the products are exact in fp32; summing K of them in any order errs by at most (K - 1) u of
#     sum |a b|; the epilogue's three fp32 roundings add 3u of |t| <= |sa sb| sum|a b| + |bias|
#     (one u spare); the final rounding half an ulp (a whole one: the interpreter's bf16 truncates).
#     acc_rel = K u, plus on a GPU the tensor cores' accumulator (~14 bits kept, DeepSeek-V3 3.3.2
#     on H800: ~2^-13 of the running sum lost at each 32-deep wgmma step), 8x spare
#     (lmkernels.verify.fp8_acc_rel): the default FP8_FAST_ACCUM keeps the whole K there,
#     (K/32) 2^-10; FP8_FAST_ACCUM=False adds each BLOCK_SIZE_K slice into fp32, 2^-10

INT8, FP8 = torch.int8, torch.float8_e4m3fn
KINDS = ("int8", "fp8")
OUT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
# the grid: every shape on a GPU; a subset under the interpreter, which runs one program
# at a time (~1 s for a 512 x 971 x 1024 product): each M, N and K value appears at least once
FULL_GRID = list(itertools.product((1, 33, 64, 512), (256, 971, 20486), (128, 496, 1024)))
CPU_GRID = [(1, 256, 128), (33, 971, 496), (64, 256, 1024), (512, 971, 128), (1, 20486, 128)]
# N = 20486 under the interpreter: 80 wide tiles instead of the heuristic's 320
CPU_WIDE = {"BLOCK_SIZE_M": 16, "BLOCK_SIZE_N": 256, "BLOCK_SIZE_K": 128, "GROUP_SIZE_M": 8, "num_warps": 4,
            "num_stages": 3}
MODES = list(access_rt.MODES)


def _cfg(bm=16, bn=64, bk=64, **kw):
    return dict({"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": 4, "num_warps": 4,
                 "num_stages": 3}, **kw)


def _operands(M, N, K, kind, seed):
    """(a [M, K], w [N, K]): int8 uniform in [-128, 127]; fp8 e4m3 from normals x 16 (|x| mostly
    below 64, far from e4m3's 448; test_fp8_extremes has those), fresh for every seed."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    if kind == "int8":
        return (torch.randint(-128, 128, (M, K), dtype=INT8, device=DEVICE, generator=gen),
                torch.randint(-128, 128, (N, K), dtype=INT8, device=DEVICE, generator=gen))
    return ((torch.randn(M, K, device=DEVICE, generator=gen) * 16).to(FP8),
            (torch.randn(N, K, device=DEVICE, generator=gen) * 16).to(FP8))


def _scales(M, N, seed):
    """per-token scale_a [M, 1] in [0.5, 1.5), per-channel scale_b [N, 1] in [0.005, 0.015) (keeps
    int8's sums inside fp16's range), bias [N] fp32."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed + 1)
    return (torch.rand(M, 1, device=DEVICE, generator=gen) + 0.5,
            torch.rand(N, 1, device=DEVICE, generator=gen) * 0.01 + 0.005,
            torch.randn(N, device=DEVICE, generator=gen))


def _check(got, a, b, sa, sb, out_dtype, bias=None, acc_rel=None):
    M, N = a.shape[0], b.shape[1]
    assert got.shape == (M, N) and got.dtype == out_dtype
    assert not bool(got.isnan().any()), "NaN in the output (an unwritten element?)"
    if a.dtype == INT8:
        assert_ulps(got, ref.scaled_mm(a, b, sa, sb, out_dtype, bias), INT8_ULPS[out_dtype])
    else:
        ratio = fp8_mm_bound(got, a, b, sa, sb, bias, fp8_acc_rel(a.shape[1]) if acc_rel is None else acc_rel)
        assert ratio <= 1, f"fp8 error is {ratio:.3g} x its bound"


def _skip_fp8(kind):
    if kind == "fp8" and ON_GPU and fp8_mma_problem(torch.cuda.current_device()):
        pytest.skip(fp8_mma_problem(torch.cuda.current_device()))


# ---------------------------------------------------------------- the shapes

@pytest.mark.parametrize("b_layout", ["w.t()", "row-major"] if ON_GPU else ["w.t()"])
@pytest.mark.parametrize("shape", FULL_GRID if ON_GPU else CPU_GRID, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind, shape, b_layout):
    _skip_fp8(kind)
    M, N, K = shape
    a, w = _operands(M, N, K, kind, seed_of("shape", kind, shape))
    b = w.t() if b_layout == "w.t()" else w.t().contiguous()
    sa, sb, bias = _scales(M, N, seed_of("shape", shape))
    cfg = CPU_WIDE if N > 4096 and not ON_GPU else None
    _check(lmkernels.scaled_mm(a, b, sa, sb, torch.bfloat16, bias, config=cfg), a, b, sa, sb, torch.bfloat16, bias)


def test_cpu_grid_covers_every_value():
    for i, values in enumerate(((1, 33, 64, 512), (256, 971, 20486), (128, 496, 1024))):
        assert {s[i] for s in CPU_GRID} == set(values)


# ---------------------------------------------------------------- scales, bias, out dtypes

def _scale_forms(M, N, seed):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)

    def r(*shape):
        return torch.rand(*shape, device=DEVICE, generator=gen) * 0.01 + 0.005
    sa = {"0-d": r(()) * 100, "[1]": r(1) * 100, "[1,1]": r(1, 1) * 100, "token": r(M, 1) * 100,
          "token-strided": (r(M, 3) * 100)[:, 1:2]}
    sb = {"0-d": r(()), "[1]": r(1), "[1,1]": r(1, 1), "[N,1]": r(N, 1), "[1,N]": r(1, N),
          "[N,1]-strided": r(N, 2)[:, :1], "[1,N]-strided": r(3, N)[1:2]}
    return sa, sb


@pytest.mark.parametrize("out_dtype", OUT_DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_scale_and_bias_forms(kind, out_dtype):
    """Every scale_a form x every scale_b form, the bias cycling through None, fp32 and out_dtype."""
    _skip_fp8(kind)
    M, N, K = 7, 40, 96
    a, w = _operands(M, N, K, kind, seed_of("forms", kind, out_dtype))
    sa_forms, sb_forms = _scale_forms(M, N, seed_of("forms", out_dtype))
    biases = [None, torch.randn(N, device=DEVICE), torch.randn(N, device=DEVICE).to(out_dtype)]
    for i, ((na, sa), (nb, sb)) in enumerate(itertools.product(sa_forms.items(), sb_forms.items())):
        bias = biases[i % 3]
        try:
            _check(lmkernels.scaled_mm(a, w.t(), sa, sb, out_dtype, bias), a, w.t(), sa, sb, out_dtype, bias)
        except AssertionError as e:
            raise AssertionError(f"scale_a {na}, scale_b {nb}, bias {None if bias is None else bias.dtype}: {e}")


# ---------------------------------------------------------------- layouts and access modes

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_layouts_and_modes_agree(kind, mode):
    """a and b each row- or column-major (never copied), in every access mode: right, and the
    same bits as pointer mode (only addressing differs). 48 x 80 x 96: every view's rows are
    16-byte multiples, so descriptors serve all four layouts."""
    _skip_fp8(kind)
    skip_unavailable(mode)
    M, N, K = 48, 80, 96
    a, w = _operands(M, N, K, kind, seed_of("layout", kind))
    sa, sb, bias = _scales(M, N, 5)
    cfg = _cfg(bm=32, bn=32, bk=32)  # several tiles each way and three K steps
    for a_view, b_view in itertools.product((a, a.t().contiguous().t()), (w.t(), w.t().contiguous())):
        got = lmkernels.scaled_mm(a_view, b_view, sa, sb, torch.float32, bias, access=mode, config=cfg)
        _check(got, a_view, b_view, sa, sb, torch.float32, bias)
        want = lmkernels.scaled_mm(a_view, b_view, sa, sb, torch.float32, bias, access="pointer", config=cfg)
        assert torch.equal(got, want), (a_view.stride(), b_view.stride())


def test_other_strides_are_refused():
    a, w = _operands(8, 32, 64, "int8", 1)
    sa, sb, _ = _scales(8, 32, 1)
    with pytest.raises(ValueError, match=r"a has shape \(8, 32\) and strides \(64, 2\)"):
        lmkernels.scaled_mm(a[:, ::2], w.t()[:32], sa, sb, torch.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_descriptor_refusals_and_fallback(kind):
    """Explicit descriptor where TMA cannot address an operand raises, naming why; the default
    (and a config's ACCESS from a table) falls back to pointers with the same result."""
    _skip_fp8(kind)
    skip_unavailable("descriptor")
    M, N, K = 5, 64, 100  # rows of 100 bytes: not a 16-byte multiple
    a, w = _operands(M, N, K, kind, 3)
    sa, sb, _ = _scales(M, N, 3)
    with pytest.raises(ValueError, match=r"access='descriptor' cannot serve this call: a stride 100"):
        lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, access="descriptor")
    with pytest.raises(ValueError, match="access='descriptor' cannot serve this call"):
        lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, config=_cfg(ACCESS="descriptor"))
    _check(lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32), a, w.t(), sa, sb, torch.float32)
    # an aligned shape whose base is 1 byte off (a column slice)
    a2, w2 = _operands(M, N, 97, kind, 4)
    with pytest.raises(ValueError, match=r"a.data_ptr\(\) % 16 = 1"):
        lmkernels.scaled_mm(a2[:, 1:], w2.t()[1:], sa, sb, torch.float32, access="descriptor")
    got = lmkernels.scaled_mm(a2[:, 1:], w2.t()[1:], sa, sb, torch.float32)
    _check(got, a2[:, 1:], w2.t()[1:], sa, sb, torch.float32)


def test_default_descriptor_rechecks_the_base_each_call(default_access, monkeypatch):
    """With descriptors by default, a plan is cached per shape and strides; a call of that shape
    whose base is off 16 bytes falls back to pointers for that call alone, and a plan that fell
    back for a base is not kept. (M = 160: past the weight-stream sizes and the M = 33-128 tile,
    for which the sm90 heuristic asks for pointers whatever the default.)"""
    skip_unavailable("descriptor")
    default_access("descriptor")
    monkeypatch.setattr(mm_ops, "_plans", {})
    M, N, K = 160, 64, 96
    a, w = _operands(M, N, K, "int8", 43)
    sa, sb, _ = _scales(M, N, 43)
    buf = torch.empty(M * K + 16, dtype=INT8, device=DEVICE)
    off = buf[1:1 + M * K].view(M, K)  # a's shape and strides, base 1 byte off
    off.copy_(a)
    _check(lmkernels.scaled_mm(off, w.t(), sa, sb, torch.float32), off, w.t(), sa, sb, torch.float32)
    assert not mm_ops._plans
    _check(lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32), a, w.t(), sa, sb, torch.float32)
    assert [p[0] for p in mm_ops._plans.values()] == [access_rt.DESCRIPTOR]
    _check(lmkernels.scaled_mm(off, w.t(), sa, sb, torch.float32), off, w.t(), sa, sb, torch.float32)
    assert [p[0] for p in mm_ops._plans.values()] == [access_rt.DESCRIPTOR]


def test_access_and_config_access_must_agree():
    a, w = _operands(4, 32, 64, "int8", 5)
    sa, sb, _ = _scales(4, 32, 5)
    with pytest.raises(ValueError, match="disagree"):
        lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, access="pointer", config=_cfg(ACCESS="descriptor"))
    with pytest.raises(ValueError, match="not an access mode"):
        lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, access="tma")


# ---------------------------------------------------------------- split-K and persistent

@pytest.mark.parametrize("M", [1, 33])
@pytest.mark.parametrize("kind", KINDS)
def test_split_k_is_right_and_deterministic(kind, M):
    """SPLIT_K 2, 3 and 7 (K = 496 in 8 tiles of 64: 7 splits become 4 of 2 tiles), pointer and
    descriptor: right, the same bits on a second run, and int8 the same bits as no split."""
    _skip_fp8(kind)
    N, K = 200, 496
    a, w = _operands(M, N, K, kind, seed_of("split", kind, M))
    sa, sb, bias = _scales(M, N, 7)
    one = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=_cfg(bm=32))
    for split, mode in ((2, "pointer"), (3, "descriptor"), (7, "pointer")):
        if access_rt.unavailable_reason(access_rt.MODES[mode]):
            continue
        cfg = _cfg(bm=32, SPLIT_K=split, ACCESS=mode)  # M = 33: two row tiles, the second 1 row deep
        got = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg)
        _check(got, a, w.t(), sa, sb, torch.bfloat16, bias)
        assert torch.equal(got, lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg))
        if kind == "int8":
            assert torch.equal(got, one)


@pytest.mark.parametrize("kind", KINDS)
def test_split_k_in_one_launch_equals_two_launches(kind, monkeypatch):
    """ONE_LAUNCH True (a config key; HIP always takes two launches): one kernel, no reduce launch,
    and the same bits as the two-launch finish (both add the splits 0, 1, ... in order), for a plain and a persistent grid,
    ragged tiles (M = 33 in 32-row tiles, N = 200 in 64-wide ones) and 7 splits that become 4;
    afterwards every cached counter is 0 and a second call reuses the cached workspace."""
    _skip_fp8(kind)
    M, N, K = 33, 200, 496
    a, w = _operands(M, N, K, kind, seed_of("one launch", kind))
    sa, sb, bias = _scales(M, N, 11)
    monkeypatch.setattr(mm_ops, "_HIP", False)  # the one-launch path, also where the tests run on ROCm
    dev = a.get_device()
    for extra in ({"SPLIT_K": 2}, {"SPLIT_K": 7}, {"SPLIT_K": 3, "PERSISTENT": True}):
        cfg = _cfg(bm=32, ONE_LAUNCH=True, **extra)
        main, red = CountingLauncher(mm_ops._launch), CountingLauncher(mm_ops._launch_reduce)
        monkeypatch.setattr(mm_ops, "_launch", main)
        monkeypatch.setattr(mm_ops, "_launch_reduce", red)
        one = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg)
        assert (main.n, red.n) == (1, 0), cfg
        part, count = main.args[3:5]  # a, b, c, workspace, counters, ...
        assert count.dtype == torch.int32 and part.dtype == (torch.int32 if kind == "int8" else torch.float32)
        assert any(c is count for _p, c in scratch.buffers_of(dev)), "the counters are not the cached ones"
        two = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=dict(cfg, ONE_LAUNCH=False))
        assert (main.n, red.n) == (2, 1), cfg
        _check(one, a, w.t(), sa, sb, torch.bfloat16, bias)
        assert torch.equal(one, two), cfg
        again = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg)
        assert main.args[3] is part and main.args[4] is count and torch.equal(again, one)
        assert all(int(c.abs().sum()) == 0 for _p, c in scratch.buffers_of(dev))


def _tile_rows_cols(t, tiles_m, tiles_n, group):
    """(tile row, tile column) of tile t in the kernel's grouped order (kernels/scaled_mm._tile_coords)."""
    band = group * tiles_n
    first = (t // band) * group
    rows = min(tiles_m - first, group)
    return first + (t % band) % rows, (t % band) // rows


@pytest.mark.parametrize("kind", KINDS)
def test_split_tail(kind, monkeypatch):
    """SPLIT_TAIL: the tiles of whole waves (one tile an SM) run whole, only the tiles - whole left
    over are split and finished in the launch. Every whole tile has the bits of the unsplit config,
    every split tile those of the config that splits all tiles (same K chunks, same order), in one
    launch, plain and persistent, with the counters back at 0. 3 x (SMs + 18) tiles of 16 x 16 leave
    54 % SMs over: 54 on an H100; under the interpreter's 4 'SMs', 3 x (4 + 2) tiles leave 2 (66
    tiles took ~17 s there). On HIP (no one-launch finish) the config runs as two-launch split-K of
    every tile."""
    _skip_fp8(kind)
    sms = mm_ops.num_sms(max(torch.empty(0, device=DEVICE).get_device(), 0))
    # K = 496: three K chunks of 192, 192 and 112 (a masked tail), eight 64-deep steps a tile unsplit
    M, N, K, bm, bn, split, group = 33, 16 * (sms + (18 if ON_GPU else 2)), 496, 16, 16, 3, 4
    a, w = _operands(M, N, K, kind, seed_of("split tail", kind))
    sa, sb, bias = _scales(M, N, 13)
    monkeypatch.setattr(mm_ops, "_HIP", False)
    base = _cfg(bm=bm, bn=bn, bk=64, GROUP_SIZE_M=group)
    plain = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=base)
    every = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias,
                                config=dict(base, SPLIT_K=split, ONE_LAUNCH=True))
    tiles_m, tiles_n = -(-M // bm), N // bn
    tiles = tiles_m * tiles_n
    whole = tiles - tiles % sms
    assert 0 < whole < tiles
    want = plain.clone()
    for t in range(whole, tiles):
        r, c = _tile_rows_cols(t, tiles_m, tiles_n, group)
        want[r * bm:(r + 1) * bm, c * bn:(c + 1) * bn] = every[r * bm:(r + 1) * bm, c * bn:(c + 1) * bn]
    dev = a.get_device()
    for extra in ({}, {"PERSISTENT": True}):
        cfg = dict(base, SPLIT_K=split, ONE_LAUNCH=True, SPLIT_TAIL=True, **extra)
        main, red = CountingLauncher(mm_ops._launch), CountingLauncher(mm_ops._launch_reduce)
        monkeypatch.setattr(mm_ops, "_launch", main)
        monkeypatch.setattr(mm_ops, "_launch_reduce", red)
        got = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg)
        assert (main.n, red.n) == (1, 0), cfg
        _check(got, a, w.t(), sa, sb, torch.bfloat16, bias)
        assert torch.equal(got, want), cfg
        assert all(int(c.abs().sum()) == 0 for _p, c in scratch.buffers_of(dev))
        monkeypatch.setattr(mm_ops, "_launch", main.real)
        monkeypatch.setattr(mm_ops, "_launch_reduce", red.real)
    monkeypatch.setattr(mm_ops, "_HIP", True)
    hip = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias,
                              config=dict(base, SPLIT_K=split, ONE_LAUNCH=True, SPLIT_TAIL=True))
    assert torch.equal(hip, every)


@pytest.mark.parametrize("kind", KINDS)
def test_persistent(kind):
    """PERSISTENT: fewer programs than tiles (the interpreter has 4 'SMs'), each looping; with
    split-K and descriptors too; the same bits as the plain grid."""
    _skip_fp8(kind)
    M, N, K = 33, 300, 128
    a, w = _operands(M, N, K, kind, seed_of("persistent", kind))
    sa, sb, bias = _scales(M, N, 9)
    plain = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float16, bias, config=_cfg())
    _check(plain, a, w.t(), sa, sb, torch.float16, bias)
    variants = [_cfg(PERSISTENT=True), _cfg(PERSISTENT=True, SPLIT_K=2)]
    if access_rt.unavailable_reason(access_rt.DESCRIPTOR) is None:
        variants.append(_cfg(PERSISTENT=True, ACCESS="descriptor"))
    for cfg in variants:
        got = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float16, bias, config=cfg)
        _check(got, a, w.t(), sa, sb, torch.float16, bias)
        if kind == "int8" or cfg.get("SPLIT_K", 1) == 1:  # fp8 split-K sums in another order
            assert torch.equal(got, plain), cfg


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_swap_ab(kind, mode):
    """SWAP_AB (the kernel computes the transposed tile, the weight tile as the MMA's M side): right
    for every operand layout, ragged M, N and K (M = 13, 33, 70 in 16-, 32-, 64-row tiles, N = 200 in
    64-wide tiles, K = 496 in 128-deep steps), split-K finished in one and in two launches, a
    persistent grid; int8 the same bits as the unswapped tile (exact sums); fp8 within its bound
    (another MMA shape sums in another order), and each config the same bits run to run."""
    _skip_fp8(kind)
    skip_unavailable(mode)
    N, K = 200, 496
    extras = ({}, {"SPLIT_K": 2}, {"SPLIT_K": 3, "ONE_LAUNCH": True}, {"PERSISTENT": True})
    for i, (M, bm) in enumerate(((13, 16), (33, 32), (70, 64))):  # 64 rows: the heuristic's M = 33-128 tile on sm90
        a, w = _operands(M, N, K, kind, seed_of("swap", kind, M))
        sa, sb, bias = _scales(M, N, 17)
        layouts = [(a, w.t())] if mode != "pointer" else list(itertools.product(
            (a, a.t().contiguous().t()), (w.t(), w.t().contiguous())))
        # a GPU runs every layout with every config; the interpreter (~40 s for all 48 in pointer
        # mode) each layout once an M, paired with a config that shifts with M
        combos = (itertools.product(layouts, extras) if ON_GPU else
                  [(layouts[(i + j) % len(layouts)], extra) for j, extra in enumerate(extras)])
        for (a_view, b_view), extra in combos:
            cfg = _cfg(bm=bm, bk=128, ACCESS=mode, **extra)
            got = lmkernels.scaled_mm(a_view, b_view, sa, sb, torch.bfloat16, bias, config=dict(cfg, SWAP_AB=True))
            _check(got, a_view, b_view, sa, sb, torch.bfloat16, bias)
            assert torch.equal(got, lmkernels.scaled_mm(a_view, b_view, sa, sb, torch.bfloat16, bias,
                                                        config=dict(cfg, SWAP_AB=True))), (extra, a_view.stride())
            if kind == "int8":
                plain = lmkernels.scaled_mm(a_view, b_view, sa, sb, torch.bfloat16, bias, config=cfg)
                assert torch.equal(got, plain), (extra, a_view.stride(), b_view.stride())


@pytest.mark.parametrize("K", [496, 4096] if ON_GPU else [496])
@pytest.mark.parametrize("kind", KINDS)
def test_fp8_precise_accum_config(kind, K):
    """FP8_FAST_ACCUM=False: within the precise bound (one BLOCK_SIZE_K slice in the tensor cores'
    accumulator at a time); int8 ignores the key (bit-exact either way)."""
    _skip_fp8(kind)
    M, N = 17, 64
    a, w = _operands(M, N, K, kind, 11)
    sa, sb, bias = _scales(M, N, 11)
    got = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, bias, config=_cfg(FP8_FAST_ACCUM=False))
    _check(got, a, w.t(), sa, sb, torch.float32, bias, acc_rel=fp8_acc_rel(K, fast=False))


# ---------------------------------------------------------------- edges

@pytest.mark.parametrize("kind", KINDS)
def test_empty_and_k_zero(kind):
    _skip_fp8(kind)
    dt = INT8 if kind == "int8" else FP8
    for M, N in ((0, 16), (3, 0), (0, 0)):
        a = torch.empty(M, 32, dtype=dt, device=DEVICE)
        b = torch.empty(16 if N else 0, 32, dtype=dt, device=DEVICE).t()
        out = lmkernels.scaled_mm(a, b, torch.ones(M, 1, device=DEVICE) if M else torch.ones(1, device=DEVICE),
                                  torch.ones(1, device=DEVICE), torch.bfloat16)
        assert out.shape == (M, N) and out.dtype == torch.bfloat16
    # K == 0: the sum is 0, so out = (0 * sa) * sb + bias, bias rounded once to out_dtype
    a, b = torch.empty(3, 0, dtype=dt, device=DEVICE), torch.empty(0, 5, dtype=dt, device=DEVICE)
    sa, sb, bias = torch.rand(3, 1, device=DEVICE), torch.rand(1, 5, device=DEVICE), torch.randn(5, device=DEVICE)
    for access in (None, "descriptor"):
        if access and access_rt.unavailable_reason(access_rt.DESCRIPTOR):
            continue
        got = lmkernels.scaled_mm(a, b, sa, sb, torch.float16, bias, access=access)
        assert torch.equal(got, bias.to(torch.float16).expand(3, 5))
        assert torch.equal(lmkernels.scaled_mm(a, b, sa, sb, torch.float32, access=access), torch.zeros(3, 5, device=DEVICE))


def test_int8_extremes_are_exact():
    """Every product 2^14 (-128 x -128) over K = 4096: |sum| 2^26, exact in int32 and in fp32;
    and the same with 127 x -128 (negative sums)."""
    M, N, K = 3, 20, 4096
    a = torch.full((M, K), -128, dtype=INT8, device=DEVICE)
    for fill in (-128, 127):
        w = torch.full((N, K), fill, dtype=INT8, device=DEVICE)
        sa, sb = torch.ones(1, device=DEVICE), torch.ones(N, 1, device=DEVICE)
        got = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32)
        assert torch.equal(got, torch.full((M, N), float(-128 * fill * K), device=DEVICE))


def test_fp8_extremes():
    """Saturated (+-448), subnormal (2^-9) and zero operands."""
    _skip_fp8("fp8")
    M, N, K = 9, 24, 160
    a, w = _operands(M, N, K, "fp8", 13)
    vals = torch.tensor([448.0, -448.0, 2.0**-9, -(2.0**-9), 0.0], device=DEVICE).to(FP8)
    a[0], w[:, 0] = vals[torch.arange(K, device=DEVICE) % 5], vals[torch.arange(N, device=DEVICE) % 5]
    sa, sb, bias = _scales(M, N, 13)
    _check(lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, bias), a, w.t(), sa, sb, torch.float32, bias)


# ---------------------------------------------------------------- bad inputs

# ---------------------------------------------------------------- programmatic dependent launch

def test_pdl_chain_matches_plain_launches():
    """Each step's per-token scale is a column of the step before's output, read after the wait;
    one step splits K (its reduce kernel launched with PDL too), one splits K in one launch, one
    has a tile grid of more than one wave (the late launch). With PDL bit-identical to plain
    launches, eager and replayed from one CUDA graph on new data; a plain launch elsewhere."""
    M, N, K = (16, 512, 1024) if ON_GPU else (4, 64, 128)
    a, _ = _operands(M, N, K, "int8", seed_of("pdl chain"))
    ws = [_operands(M, N, K, "int8", seed_of("pdl chain", i))[1] for i in range(4)]
    sa0, sb, bias = _scales(M, N, 31)
    # 512 items at bn = 32: the late launch; the third step finishes its split-K in its own launch
    cfgs = (None, _cfg(SPLIT_K=2), _cfg(bn=16, SPLIT_K=16, ONE_LAUNCH=True), _cfg(bn=32))

    def chain(pdl):
        sa = sa0
        for w, cfg in zip(ws, cfgs):
            y = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, bias, config=cfg, pdl=pdl)
            sa = y[:, :1]  # [M, 1], row stride N
        return y

    plain = chain(False)
    _check(lmkernels.scaled_mm(a, ws[0].t(), sa0, sb, torch.float32, bias, pdl=True), a, ws[0].t(), sa0, sb,
           torch.float32, bias)
    for pdl in (None, True):
        assert torch.equal(chain(pdl), plain)
    if not ON_GPU:
        return
    if torch.cuda.get_device_capability() >= (9, 0):  # the decode plan launches its dependents early
        mm_ops._plans.clear()
        lmkernels.scaled_mm(a, ws[0].t(), sa0, sb, torch.float32, bias)
        # the constexprs' EARLY_LAUNCH and the plan's use-PDL flag (ops/scaled_mm.py _make_plan)
        assert any(plan[17] is None and plan[2][15] and plan[15] for plan in mm_ops._plans.values()), \
            "no EARLY_LAUNCH plan"
    graph, got = capture(lambda: chain(None))
    sa0.copy_(_scales(M, N, 32)[0])
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(got, chain(False))


def test_pdl_must_be_a_bool_or_none():
    a, w = _operands(4, 16, 32, "int8", 19)
    sa, sb, _ = _scales(4, 16, 19)
    for bad in (1, "yes"):
        with pytest.raises(TypeError, match="pdl must be a bool or None"):
            lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, pdl=bad)


def _bad_cases():
    a, w = _operands(4, 16, 32, "int8", 17)
    a8, w8 = _operands(4, 16, 32, "fp8", 17)
    sa, sb, bias = _scales(4, 16, 17)
    f32 = torch.float32
    return {
        "a not a tensor": ((a.tolist(), w.t(), sa, sb, f32), TypeError, r"a must be a torch.Tensor"),
        "a float": ((a.float(), w.t(), sa, sb, f32), TypeError, r"a.dtype=torch.float32 is not supported"),
        "mixed dtypes": ((a, w8.t(), sa, sb, f32), TypeError, r"b.dtype=torch.float8_e4m3fn must equal a.dtype=torch.int8"),
        "mixed fp8": ((a8, w.t(), sa, sb, f32), TypeError, r"b.dtype=torch.int8 must equal a.dtype"),
        "a 3-D": ((a[None], w.t(), sa, sb, f32), ValueError, r"a and b must be 2-D"),
        "b 1-D": ((a, w[0], sa, sb, f32), ValueError, r"b.shape=\(32,\)"),
        "K mismatch": ((a, w.t()[:31], sa, sb, f32), ValueError, r"b.shape\[0\]=31 must equal a.shape\[1\]=32"),
        "out int8": ((a, w.t(), sa, sb, torch.int8), TypeError, r"out_dtype=torch.int8 is not supported"),
        "out str": ((a, w.t(), sa, sb, "bfloat16"), TypeError, r"out_dtype='bfloat16' is not supported"),
        "scale_a fp16": ((a, w.t(), sa.half(), sb, f32), TypeError, r"scale_a.dtype=torch.float16 must be torch.float32"),
        "scale_a [M]": ((a, w.t(), sa[:, 0], sb, f32), ValueError, r"scale_a.shape=\(4,\) must be per tensor .* \[4, 1\]"),
        "scale_a [1, M]": ((a, w.t(), sa.t(), sb, f32), ValueError, r"scale_a.shape=\(1, 4\)"),
        "scale_b [N]": ((a, w.t(), sa, sb[:, 0], f32), ValueError, r"scale_b.shape=\(16,\) must be per tensor .* "
                                                                   r"\[16, 1\] or \[1, 16\]"),
        "scale_b wrong N": ((a, w.t(), sa, sb[:8], f32), ValueError, r"scale_b.shape=\(8, 1\)"),
        "scale_b list": ((a, w.t(), sa, [1.0], f32), TypeError, r"scale_b must be a torch.Tensor"),
        "bias shape": ((a, w.t(), sa, sb, f32, bias[:8]), ValueError, r"bias.shape=\(8,\) must be \[N\] = \[16\]"),
        "bias dtype": ((a, w.t(), sa, sb, torch.bfloat16, bias.half()), TypeError,
                       r"bias.dtype=torch.float16 must be torch.float32 or out_dtype=torch.bfloat16"),
        "bias 2-D": ((a, w.t(), sa, sb, f32, bias[None]), ValueError, r"bias.shape=\(1, 16\)"),
        "scale on meta": ((a, w.t(), sa.to("meta"), sb, f32), ValueError, r"scale_a is on meta but a is on"),
        "b on meta": ((a, w.t().to("meta"), sa, sb, f32), ValueError, r"b is on meta but a is on"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_inputs_raise_clear_errors(case):
    args, exc, match = _bad_cases()[case]
    with pytest.raises(exc, match=match):
        lmkernels.scaled_mm(*args)


def test_int8_k_limit():
    a = torch.zeros(1, MAX_INT8_K + 1, dtype=INT8, device=DEVICE)
    one = torch.ones(1, device=DEVICE)
    with pytest.raises(ValueError, match=rf"K={MAX_INT8_K + 1} exceeds {MAX_INT8_K} for int8"):
        lmkernels.scaled_mm(a, a.t(), one, one, torch.float32)


# ---------------------------------------------------------------- configs

BAD_CONFIGS = [
    ({"BLOCK_SIZE_M": 48}, r"config\['BLOCK_SIZE_M'\]=48 must be a power of two in \[16, 256\]"),
    ({"BLOCK_SIZE_N": 512}, r"config\['BLOCK_SIZE_N'\]=512"),
    ({"BLOCK_SIZE_K": 16}, r"config\['BLOCK_SIZE_K'\]=16 must be a power of two in \[32, 256\]"),
    ({"BLOCK_SIZE_K": 64.0}, r"config\['BLOCK_SIZE_K'\]=64.0 must be an int"),
    ({"GROUP_SIZE_M": 0}, r"config\['GROUP_SIZE_M'\]=0"),
    ({"num_warps": 3}, r"config\['num_warps'\]=3"),
    ({"num_stages": 0}, r"config\['num_stages'\]=0"),
    ({"num_stages": True}, r"config\['num_stages'\]=True must be an int, got bool"),
    ({"SPLIT_K": 65}, r"config\['SPLIT_K'\]=65"),
    ({"ACCESS": "tma"}, r"config\['ACCESS'\]='tma' must be one of"),
    ({"PERSISTENT": 1}, r"config\['PERSISTENT'\]=1 must be a bool"),
    ({"FP8_FAST_ACCUM": "yes"}, r"config\['FP8_FAST_ACCUM'\]='yes' must be a bool"),
    ({"ONE_LAUNCH": 0}, r"config\['ONE_LAUNCH'\]=0 must be a bool"),
    ({"SPLIT_TAIL": 1}, r"config\['SPLIT_TAIL'\]=1 must be a bool"),
    ({"SPLIT_TAIL": True, "SPLIT_K": 2}, r"SPLIT_TAIL'\]=True needs SPLIT_K > 1 and ONE_LAUNCH True, got SPLIT_K=2 "
                                        r"and ONE_LAUNCH=False"),
    ({"SPLIT_TAIL": True, "ONE_LAUNCH": True}, r"needs SPLIT_K > 1 and ONE_LAUNCH True, got SPLIT_K=1"),
    ({"BLOCK_M": 64}, r"unknown key\(s\) \['BLOCK_M'\]"),
    ({"WGMMA": 1}, r"config\['WGMMA'\]=1 must be a bool"),
    ({"WGMMA": True}, r"config\['WGMMA'\]=True needs .* BLOCK_SIZE_M >= max\(64, 16 \* num_warps\); .*"
                      r"num_warps=4, BLOCK_SIZE_M=16"),
    ({"WGMMA": True, "BLOCK_SIZE_M": 64, "num_warps": 8}, r"num_warps=8, BLOCK_SIZE_M=64"),
    ({"WGMMA": True, "BLOCK_SIZE_M": 64, "SPLIT_K": 2}, r"needs SPLIT_K 1.*got SPLIT_K=2"),
    ({"PINGPONG": 1}, r"config\['PINGPONG'\]=1 must be a bool"),
    ({"PINGPONG": True}, r"config\['PINGPONG'\]=True needs WGMMA True, PERSISTENT True and num_warps 4; got "
                         r"WGMMA=False, PERSISTENT=False, num_warps=4"),
    ({"WGMMA": True, "BLOCK_SIZE_M": 128, "num_warps": 8, "PERSISTENT": True, "PINGPONG": True}, r"num_warps=8"),
    ({"TMA_STORE": "yes"}, r"config\['TMA_STORE'\]='yes' must be a bool"),
    ({"TMA_STORE": True, "WGMMA": True, "BLOCK_SIZE_M": 64},
     r"config\['TMA_STORE'\]=True needs WGMMA True and PERSISTENT True; got WGMMA=True, PERSISTENT=False"),
    ({"WGMMA": True, "BLOCK_SIZE_M": 64, "PERSISTENT": True, "BLOCK_SIZE_N": 192},
     r"BLOCK_SIZE_N'\]=192 must be a power of two or, with WGMMA and PERSISTENT False, the sum of two"),
    ({"WGMMA": True, "BLOCK_SIZE_M": 64, "ACCESS": "pointer"}, r"ACCESS='pointer'"),
    ({"WGMMA": True, "BLOCK_SIZE_M": 64, "FP8_FAST_ACCUM": False}, r"FP8_FAST_ACCUM=False"),
    ({"BLOCK_SIZE_N": 192}, r"config\['BLOCK_SIZE_N'\]=192 must be a power of two in \[16, 256\]"),
    ({"SWAP_AB": 1}, r"config\['SWAP_AB'\]=1 must be a bool"),
    ({"SWAP_AB": True, "WGMMA": True, "BLOCK_SIZE_M": 64},
     r"config\['SWAP_AB'\]=True runs on the Triton kernel and cannot be combined with config\['WGMMA'\]=True"),
    ({"WGMMA": True, "BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 200},
     r"BLOCK_SIZE_N'\]=200 must be a power of two or, with WGMMA and PERSISTENT False, the sum of two \(each >= 16\)"),
    ({"WGMMA": True, "BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 136}, r"BLOCK_SIZE_N'\]=136 must be a power of two or"),
    ({"WGMMA": True, "BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 384}, r"BLOCK_SIZE_N'\]=384 must be an int in \[16, 256\]"),
]


def test_tma_store_problem(monkeypatch):
    """Where the persistent kernel's TMA stores cannot serve: output rows not whole 16-byte units, or
    the output tiles and the stages over the program's shared memory (an H100's 227 KB here)."""
    monkeypatch.setattr(mm_ops, "_gpu", lambda dev: ("cuda", 90, 232448))
    cfg = check_config(dict(_cfg(), BLOCK_SIZE_M=128, BLOCK_SIZE_N=256, BLOCK_SIZE_K=128, num_warps=8, num_stages=3,
                            WGMMA=True, PERSISTENT=True, TMA_STORE=True))
    assert mm_ops._tma_store_problem(4096, torch.bfloat16, cfg, 0) is None
    assert mm_ops._tma_store_problem(1028, torch.float32, dict(cfg, BLOCK_SIZE_N=64), 0) is None
    assert "rows (N=971 x 2 bytes) are not a multiple of 16 bytes" in mm_ops._tma_store_problem(
        971, torch.bfloat16, cfg, 0)
    assert "(N=1026 x 4 bytes)" in mm_ops._tma_store_problem(1026, torch.float32, cfg, 0)
    assert mm_ops._tma_store_problem(1024, torch.float32, cfg, 0) == (
        "3 stages of (128 + 256) x 128 bytes and the torch.float32 output tiles need 278528 bytes of shared memory; "
        "this GPU gives a program 232448")
    assert "4 stages" in mm_ops._tma_store_problem(4096, torch.bfloat16, dict(cfg, num_stages=4), 0)
    pingpong = dict(cfg, BLOCK_SIZE_N=128, num_warps=4, num_stages=5, PINGPONG=True)  # two output tiles
    assert mm_ops._tma_store_problem(4096, torch.float16, pingpong, 0) is None
    assert "need 294912 bytes" in mm_ops._tma_store_problem(4096, torch.float32, pingpong, 0)


def test_wgmma_n_split():
    assert [mm_ops.wgmma_n_split(n) for n in (16, 48, 96, 128, 160, 192, 256)] == [
        (16, 0), (32, 16), (64, 32), (128, 0), (128, 32), (128, 64), (256, 0)]
    assert [mm_ops.wgmma_n_split(n) for n in (24, 72, 136, 200, 224)] == [None] * 5


@pytest.mark.parametrize("change,match", BAD_CONFIGS, ids=[str(c) for c, _ in BAD_CONFIGS])
def test_check_config_refuses(change, match):
    with pytest.raises(ValueError, match=match):
        check_config(dict(_cfg(), **change))


def test_check_config_normalises_and_is_registered():
    cfg = _cfg()
    out = check_config(cfg)
    assert out == dict(cfg, SPLIT_K=1, ACCESS=None, PERSISTENT=False, FP8_FAST_ACCUM=True, ONE_LAUNCH=False,
                       SPLIT_TAIL=False, WGMMA=False, PINGPONG=False, TMA_STORE=False, SWAP_AB=False)
    assert out is not cfg
    with pytest.raises(ValueError, match=r"config lacks \['num_stages'\]"):
        check_config({k: v for k, v in cfg.items() if k != "num_stages"})
    with pytest.raises(ValueError, match="config must be a dict, got list"):
        check_config([1])
    if hasattr(config_store, "register_validator"):
        assert config_store._validators.get("scaled_mm") is check_config
    a, w = _operands(4, 32, 64, "int8", 19)
    sa, sb, _ = _scales(4, 32, 19)
    with pytest.raises(ValueError, match=r"config\['num_warps'\]=5"):
        lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, config=dict(cfg, num_warps=5))


def test_heuristic_config_for_the_h100(monkeypatch):
    """Valid everywhere on the issue's grid; small M: 16-row tiles, pointer loads, and split-K when
    the N tiles leave SMs idle at a long K; large M: 128 x 256 for both dtypes; descriptors on
    sm90 past M = 32; the shared memory of a program within the H100's 227 KB, and within MI300's
    64 KB there; fp8 fast accumulation (vLLM's CUTLASS choice)."""
    monkeypatch.setattr(mm_ops, "num_sms", lambda i: 132)
    for gpu in (("cuda", 90, 232448), ("hip", 0, 65536)):
        monkeypatch.setattr(mm_ops, "_gpu", lambda i, gpu=gpu: gpu)
        for M, N, K in FULL_GRID + [(4096, 4096, 4096), (128, 6144, 4096), (16, 4096, 14336), (4096, 57344, 8192),
                                    (4096, 28672, 4096)]:
            for fp8 in (False, True):
                cfg = heuristic_config(M, N, K, fp8, 0)
                assert check_config(cfg) == cfg
                bm, bn, bk = cfg["BLOCK_SIZE_M"], cfg["BLOCK_SIZE_N"], cfg["BLOCK_SIZE_K"]
                assert (bm + bn) * bk * cfg["num_stages"] <= gpu[2]
                # descriptors on sm90 past M = 32, but for the transposed 64 x 64 x 128 tile in 6 pointer
                # stages at M = 33-128 where those tiles are at most two programs an SM (session 22)
                mid = gpu[0] == "cuda" and 32 < M <= 128 and -(-M // 64) * -(-N // 64) <= 2 * 132
                assert (cfg["ACCESS"] == "descriptor") == (gpu[0] == "cuda" and M > 32 and not mid), (M, N, K, cfg)
                if mid:
                    assert (bm, bn, bk, cfg["num_stages"], cfg["SPLIT_K"], cfg["SWAP_AB"]) == (64, 64, 128, 6, 1, True)
                assert cfg["FP8_FAST_ACCUM"]
                if M == 1 and gpu[0] == "cuda":
                    assert bm == 16 and bk == 256 and cfg["ACCESS"] == "pointer"
                if M >= 4096 and N >= 8192 and gpu[0] == "cuda":  # the persistent Gluon kernel
                    assert cfg["PERSISTENT"] and cfg["WGMMA"], cfg
                    # fp8: 128 x 256 tiles stored by TMA; int8: 128 x 256 register-stored at K >= 8192,
                    # else the ping-pong 128 x 128
                    assert (bm, bn, cfg["PINGPONG"], cfg["TMA_STORE"]) == (
                        (128, 256, False, True) if fp8 else (128, 256, False, False) if K >= 8192 else
                        (128, 128, True, False)), cfg
                # the Gluon kernels (ops/scaled_mm._wgmma_tile): sm90 past M = 64, fp8 up to M = 512 and
                # from 1024 on the persistent kernel
                assert not cfg["WGMMA"] or (gpu[0] == "cuda" and M > 64 and (not fp8 or M <= 512 or cfg["PERSISTENT"])), (
                    M, N, K, fp8)
                assert not cfg["TMA_STORE"] or (fp8 and M >= 1024 and gpu[0] == "cuda"), (M, N, K, fp8)
    monkeypatch.setattr(mm_ops, "_gpu", lambda i: ("cuda", 90, 232448))
    # sm90 with Gluon: the wgmma tiles (ops/scaled_mm._wgmma_tile)
    for fp8, M, N, K, tile in ((False, 1024, 4096, 4096, (128, 256, 64, 8, 5)), (False, 512, 4096, 14336, (128, 128, 128, 8, 4)),
                               (True, 512, 4096, 4096, (128, 128, 128, 8, 4)), (False, 96, 57344, 8192, (128, 128, 128, 8, 3)),
                               (True, 96, 57344, 8192, (128, 128, 128, 8, 3)), (True, 128, 28672, 4096, (128, 128, 128, 8, 3)),
                               (False, 96, 16384, 8192, (64, 128, 128, 4, 4)),
                               # 64 x 192 at M <= 128 in one wave from 80 % full (108 tiles)
                               (False, 96, 10240, 8192, (64, 192, 128, 4, 6)), (True, 128, 10240, 8192, (64, 192, 128, 4, 6)),
                               (False, 256, 10240, 8192, (128, 192, 128, 8, 5)),  # int8's 128 x 192 too
                               # N = 6144: tiles of two accumulators fill the SMs
                               (False, 256, 6144, 4096, (64, 192, 128, 4, 6)),
                               (True, 512, 6144, 4096, (128, 192, 128, 8, 5)),
                               (False, 512, 6144, 4096, (128, 192, 128, 8, 5)),
                               # int8 from M = 1024 with two 128 x 128 tiles an SM: the ping-pong kernel
                               (False, 1024, 6144, 4096, (128, 128, 128, 4, 5)),
                               (True, 1024, 6144, 4096, (128, 128, 128, 4, 5)),  # 192 tiles of 128 x 256
                               # fp8 from M = 1024 with two 128 x 256 tiles an SM, >= 90 % of the
                               # last wave busy: those, stored by TMA (6144 at M = 1536, 288 tiles
                               # 73 %, and 10240 x 8192 at 1024, 320 tiles 81 %: the ping-pong one)
                               (True, 1024, 28672, 4096, (128, 256, 128, 8, 3)),
                               (True, 4096, 4096, 4096, (128, 256, 128, 8, 3)),
                               (True, 1536, 6144, 4096, (128, 128, 128, 4, 5)),
                               (True, 1024, 10240, 8192, (128, 128, 128, 4, 5)),
                               # int8 from M = 1024 at K >= 8192 where 128 x 256 tiles fill the SMs
                               # and >= 90 % of their last wave: those, one 8-warp consumer, 4 stages
                               # (4096 x 14336 at M = 1536: 192 tiles, 73 %: the ping-pong one;
                               # K = 4096: the ping-pong one)
                               (False, 2048, 4096, 14336, (128, 256, 128, 8, 4)),
                               (False, 1024, 8192, 28672, (128, 256, 128, 8, 4)),
                               (False, 4096, 57344, 8192, (128, 256, 128, 8, 4)),
                               (False, 1536, 4096, 14336, (128, 128, 128, 4, 5)),
                               (False, 4096, 28672, 4096, (128, 128, 128, 4, 5)),
                               (False, 512, 28672, 4096, (128, 128, 128, 4, 5)),
                               (True, 512, 57344, 8192, (128, 128, 128, 4, 5))):
        c = heuristic_config(M, N, K, fp8, 0)
        assert c["WGMMA"] and (c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"], c["BLOCK_SIZE_K"], c["num_warps"],
                               c["num_stages"]) == tile, (fp8, M, N, K, c)
        assert c["PINGPONG"] == (tile[3:] == (4, 5) and M >= 512), (fp8, M, N, K, c)
        assert c["TMA_STORE"] == (tile[3:] == (8, 3) and tile[1] == 256), (fp8, M, N, K, c)
        assert c["PERSISTENT"] == (c["PINGPONG"] or c["TMA_STORE"] or tile == (128, 256, 128, 8, 4)), (fp8, M, N, K, c)
    for fp8, M, N, K in ((False, 256, 4096, 4096), (True, 1024, 4096, 4096), (False, 64, 28672, 4096)):
        # too few tiles (fp8 M = 1024 at N = 4096: neither two 128 x 128 tiles an SM nor M <= 512); M <= 64
        assert not heuristic_config(M, N, K, fp8, 0)["WGMMA"], (fp8, M, N, K)
    # the Triton kernel's rules (other GPUs, a Triton without Gluon)
    monkeypatch.setattr(mm_ops, "_GLUON_PROBLEM", "no Gluon here")
    assert heuristic_config(16, 4096, 14336, False, 0)["SPLIT_K"] > 1  # 128 tiles of 16 x 32 on 132 SMs
    # fp8 at M <= 32 on sm90: the 16 (32) x 64 tile transposed onto wgmma (SWAP_AB), unsplit; int8 and
    # other GPUs keep the mma.sync tile (int8 has its native m16n8k32 there)
    for M, N, K in ((1, 4096, 14336), (16, 6144, 4096), (32, 28672, 4096)):
        c = heuristic_config(M, N, K, True, 0)
        assert (c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"], c["SPLIT_K"], c["SWAP_AB"]) == (16 if M <= 16 else 32, 64, 1,
                                                                                   True), (M, N, K, c)
        assert not heuristic_config(M, N, K, False, 0)["SWAP_AB"]
    # M = 33-128 on sm90 where 64 x 64 tiles are at most two programs an SM: those, 128 deep, in 6
    # pointer stages, transposed, both dtypes (session 22); not at N = 28672 (448 of them at M = 64)
    for fp8, M, N, K in ((True, 64, 6144, 4096), (False, 48, 8192, 8192), (True, 128, 4096, 14336),
                         (False, 96, 8192, 28672)):
        c = heuristic_config(M, N, K, fp8, 0)
        assert (c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"], c["BLOCK_SIZE_K"], c["num_stages"], c["ACCESS"],
                c["SPLIT_K"], c["SWAP_AB"], c["WGMMA"]) == (64, 64, 128, 6, "pointer", 1, True, False), (fp8, M, N, K, c)
    assert not heuristic_config(64, 28672, 4096, True, 0)["SWAP_AB"]
    assert not heuristic_config(96, 10240, 8192, True, 0)["SWAP_AB"]  # 320 tiles
    monkeypatch.setattr(mm_ops, "_gpu", lambda i: ("cuda", 80, 166912))
    assert not heuristic_config(16, 6144, 4096, True, 0)["SWAP_AB"]
    assert not heuristic_config(64, 6144, 4096, True, 0)["SWAP_AB"]
    monkeypatch.setattr(mm_ops, "_gpu", lambda i: ("cuda", 90, 232448))
    assert heuristic_config(4096, 4096, 4096, False, 0)["SPLIT_K"] == 1
    # SPLIT_TAIL: 70B 10240 x 8192 at M = 256, 160 tiles of 128 x 128: the 28 past the wave in 4 parts;
    # not for 64 x 64 tiles (8B N = 6144 M = 128, 192 tiles), nor on HIP (no one-launch finish)
    tail = heuristic_config(256, 10240, 8192, False, 0)
    assert (tail["SPLIT_K"], tail["ONE_LAUNCH"], tail["SPLIT_TAIL"]) == (4, True, True)
    assert not heuristic_config(128, 6144, 4096, False, 0)["SPLIT_TAIL"]
    assert not heuristic_config(512, 6144, 4096, True, 0)["SPLIT_TAIL"]  # K < 8192: fp8 lost there
    # 128 x 128 tiles: int8 in 3 stages (96 KB: two programs an SM fill each other's wgmma waits),
    # fp8 (asynchronous across K steps) in 4, from M = 1024 at 4 warps walking the tiles
    for fp8, warps, stages, persistent in ((False, 8, 3, False), (True, 4, 4, True)):
        c = heuristic_config(1024, 6144, 4096, fp8, 0)
        assert (c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"], c["BLOCK_SIZE_K"], c["num_warps"], c["num_stages"],
                c["PERSISTENT"], c["WGMMA"]) == (128, 128, 128, warps, stages, persistent, False)
    assert heuristic_config(512, 8192, 8192, True, 0)["num_warps"] == 8
    # ... but int8 under SPLIT_TAIL keeps 4 warps x 64-deep steps; plain split-K at K >= 14336 past
    # M = 64 sums in one launch, at K >= 16384 in as many splits as fill the SMs once (128 tiles: 2)
    c = heuristic_config(256, 10240, 8192, False, 0)
    assert (c["BLOCK_SIZE_K"], c["num_warps"], c["SPLIT_TAIL"]) == (64, 4, True)
    # (at M <= 128 off sm90: sm90 takes the transposed 64 x 64 tile there)
    for M, N, K, split in ((96, 8192, 28672, 2), (256, 8192, 28672, 2), (96, 4096, 14336, 3)):
        monkeypatch.setattr(mm_ops, "_gpu", lambda i, M=M: ("cuda", 80 if M <= 128 else 90, 232448))
        c = heuristic_config(M, N, K, False, 0)
        assert (c["SPLIT_K"], c["ONE_LAUNCH"], c["SPLIT_TAIL"]) == (split, True, False), (M, N, K, c)
    assert not heuristic_config(64, 8192, 28672, False, 0)["ONE_LAUNCH"]
    monkeypatch.setattr(mm_ops, "_gpu", lambda i: ("hip", 0, 65536))
    assert not heuristic_config(256, 10240, 8192, False, 0)["SPLIT_TAIL"]
    monkeypatch.setattr(mm_ops, "_GLUON_PROBLEM", None)
    for gpu in (("cuda", 100, 232448), ("cuda", 80, 166912), ("hip", 0, 65536)):  # no wgmma off sm90
        monkeypatch.setattr(mm_ops, "_gpu", lambda i, gpu=gpu: gpu)
        assert not heuristic_config(4096, 4096, 4096, False, 0)["WGMMA"], gpu


def test_tuned_config_is_looked_up_first(monkeypatch):
    """config=None asks config_store.lookup (op, N, K, dtype tag, M, device) and uses its answer;
    None from it means the heuristic."""
    calls = []
    tuned = _cfg(bm=32, bn=16, bk=32)

    def lookup(op, N, K, dtype, M, dev):
        calls.append((op, N, K, dtype, M))
        return tuned if M == 3 else None
    monkeypatch.setattr(config_store, "lookup", lookup)
    monkeypatch.setattr(mm_ops, "_plans", {})
    for M in (3, 5):
        a, w = _operands(M, 48, 64, "int8", 23)
        sa, sb, bias = _scales(M, 48, 23)
        _check(lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, bias), a, w.t(), sa, sb, torch.float32, bias)
    assert calls == [("scaled_mm", 48, 64, "int8", 3), ("scaled_mm", 48, 64, "int8", 5)]
    blocks = sorted(plan[2][:3] if plan[17] is None else plan[17][1][:3] for plan in mm_ops._plans.values())
    heur = heuristic_config(5, 48, 64, False, max(torch.device(DEVICE).index or 0, 0))
    assert blocks == sorted([(32, 16, 32), (heur["BLOCK_SIZE_M"], heur["BLOCK_SIZE_N"], heur["BLOCK_SIZE_K"])])


# ---------------------------------------------------------------- fast path, dispatcher, compile

def test_repeat_calls_take_the_fast_path(monkeypatch):
    a, w = _operands(6, 40, 64, "int8", 29)
    sa, sb, bias = _scales(6, 40, 29)
    first = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias)

    def forbid(*args, **kw):
        raise AssertionError("the careful path ran for a call with a cached plan")
    monkeypatch.setattr(mm_ops, "_careful", forbid)
    a2, w2 = _operands(6, 40, 64, "int8", 30)  # new data, same facts
    got = lmkernels.scaled_mm(a2, w2.t(), sa, sb, torch.bfloat16, bias)
    _check(got, a2, w2.t(), sa, sb, torch.bfloat16, bias)
    assert not torch.equal(got, first)
    with pytest.raises(AssertionError, match="careful path"):  # a config always takes the careful path
        lmkernels.scaled_mm(a2, w2.t(), sa, sb, torch.bfloat16, bias, config=_cfg())


def _linear(x, w, sa, sb, bias):
    return lmkernels.scaled_mm(x, w.t(), sa, sb, torch.bfloat16, bias) * 2, \
        lmkernels.scaled_mm(x, w.t(), sa, sb, torch.float32, config=_cfg(SPLIT_K=2))


def test_torch_compile_fullgraph_matches_eager():
    a, w = _operands(5, 48, 128, "int8", 31)
    sa, sb, bias = _scales(5, 48, 31)
    got = torch.compile(_linear, fullgraph=True)(a, w, sa, sb, bias)
    want = _linear(a, w, sa, sb, bias)
    assert all(torch.equal(g, h) for g, h in zip(got, want))


def test_fake_tensors_give_shapes_without_running():
    with FakeTensorMode():
        a = torch.empty(7, 64, dtype=FP8, device=DEVICE)
        w = torch.empty(40, 64, dtype=FP8, device=DEVICE)
        sa, sb = torch.empty(7, 1, device=DEVICE), torch.empty(1, 40, device=DEVICE)
        out = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float16)
        assert out.shape == (7, 40) and out.dtype == torch.float16
        with pytest.raises(ValueError, match=r"scale_b.shape=\(1, 41\)"):
            lmkernels.scaled_mm(a, w.t(), sa, torch.empty(1, 41, device=DEVICE), torch.float16)


def test_opcheck_with_config_and_bias():
    """int8: opcheck's schema check compares inputs with torch ops that float8_e4m3fn lacks
    ("mul_cpu_reduced_float" not implemented for 'Float8_e4m3fn'); fp8 goes through the same op."""
    a, w = _operands(3, 32, 64, "int8", 37)
    sa, sb, bias = _scales(3, 32, 37)
    import json
    torch.library.opcheck(torch.ops.lmkernels.scaled_mm.default,
                          (a, w.t(), sa, sb, torch.bfloat16, bias.bfloat16(), None,
                           json.dumps(check_config(_cfg(SPLIT_K=2)))))


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a GPU")
def test_cuda_graph_replays_with_new_data():
    M, N, K = 16, 512, 1024
    a, w = _operands(M, N, K, "int8", 41)
    sa, sb, bias = _scales(M, N, 41)
    for cfg in (None, _cfg(SPLIT_K=4)):
        lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg)  # compile outside the capture
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg)
        for seed in (42, 43):
            a.copy_(_operands(M, N, K, "int8", seed)[0])
            graph.replay()
            torch.cuda.synchronize()
            _check(out, a, w.t(), sa, sb, torch.bfloat16, bias)


# ---------------------------------------------------------------- the sm90 wgmma kernel (Gluon)

WGMMA_CFG = {"BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 128, "BLOCK_SIZE_K": 128, "GROUP_SIZE_M": 8, "num_warps": 8,
             "num_stages": 3, "WGMMA": True}
# (BM, BN, BK, warps, stages): the tuner's WGMMA_TILES kinds, and a 32-deep K step
# (BN not a power of two: two accumulators, ops/scaled_mm.wgmma_n_split)
WGMMA_TILES = ((128, 128, 128, 8, 3), (128, 256, 64, 8, 5), (64, 128, 128, 4, 4), (256, 128, 64, 8, 4),
               (128, 64, 32, 4, 3), (128, 192, 128, 8, 4), (64, 96, 128, 4, 6), (128, 160, 64, 8, 4))
# M and N edges inside a tile, K tails TMA zero-fills (496 = 3 x 128 + 112), the sizes
WGMMA_SHAPES = ((1, 256, 128), (33, 971, 496), (64, 256, 1024), (512, 20486, 1024), (300, 257, 4112),
                (129, 384, 32))


def _sm90() -> bool:
    return ON_GPU and torch.cuda.get_device_capability() == (9, 0) and mm_ops._GLUON_PROBLEM is None


def _poisoned_pool(M, N, dtype):
    """Fill the caching allocator's next block of this size with NaN (the op allocates its output,
    so this is how an unwritten element shows)."""
    torch.full((M, N), float("nan"), dtype=dtype, device=DEVICE)


def _wgmma_cfg(tile):
    bm, bn, bk, warps, stages = tile
    return dict(WGMMA_CFG, BLOCK_SIZE_M=bm, BLOCK_SIZE_N=bn, BLOCK_SIZE_K=bk, num_warps=warps, num_stages=stages)


@pytest.mark.skipif(not _sm90(), reason="the Gluon wgmma kernel runs on sm90 GPUs only (CPU: test_compile)")
@pytest.mark.parametrize("tile", WGMMA_TILES, ids=lambda t: "x".join(map(str, t)))
@pytest.mark.parametrize("kind", KINDS)
def test_wgmma_kernel(kind, tile, monkeypatch):
    """Every tile kind x awkward shape x scale form x bias x out dtype, with and without PDL: int8
    bit-exact, fp8 within its bound, two runs bit-equal, each on a NaN-poisoned output block; every
    call on the Gluon kernel."""
    counter = CountingLauncher(mm_ops._launch_wgmma)
    monkeypatch.setattr(mm_ops, "_launch_wgmma", counter)
    _check_tile_on_shapes(kind, tile, _wgmma_cfg(tile), WGMMA_SHAPES, "wgmma")
    assert counter.n == 2 * len(WGMMA_SHAPES), counter.n


def _check_tile_on_shapes(kind, tile, cfg, shapes, tag, form=None):
    """Each shape with one of three scale / bias / out dtype / PDL forms in turn (or `form` for all),
    on a NaN-poisoned output block: checked against the reference, and a second run bit-equal (two
    launches a shape)."""
    for i, (M, N, K) in enumerate(shapes):
        a, w = _operands(M, N, K, kind, seed_of(tag, kind, tile, M))
        sa, sb, bias = _scales(M, N, seed_of(tag, M, N))
        forms = ((sa, sb.t(), None, torch.bfloat16, True), (sa[:1], sb, bias, torch.float16, False),
                 (sa, sb[:1, :1], bias.to(torch.float32), torch.float32, None))
        sa_, sb_, bias_, out_dtype, pdl = forms[i % 3 if form is None else form]
        _poisoned_pool(M, N, out_dtype)
        got = lmkernels.scaled_mm(a, w.t(), sa_, sb_, out_dtype, bias_, config=cfg, pdl=pdl)
        _check(got, a, w.t(), sa_, sb_, out_dtype, bias_)
        assert torch.equal(got, lmkernels.scaled_mm(a, w.t(), sa_, sb_, out_dtype, bias_, config=cfg, pdl=pdl))


# the persistent warp-specialised kernel (kernels/scaled_mm_ws.py): (BM, BN, BK, warps, stages,
# PINGPONG), the tuner's WS_TILES kinds and a 64-row ping-pong tile
WS_TILES = ((128, 256, 128, 8, 4, False), (128, 128, 128, 4, 5, True), (128, 256, 64, 8, 5, False),
            (64, 128, 64, 4, 4, True), (128, 64, 32, 4, 3, False))
# WGMMA_SHAPES, and enough tiles that every program walks several (2000 x 4100: 16 x 33 tiles of 128;
# K 16-byte aligned, as TMA needs, and 528 = 4 x 128 + 16 leaves a K tail):
# each ping-pong consumer takes turns, and the ring's phases wrap many times
WS_SHAPES = WGMMA_SHAPES + ((2000, 4100, 528), (4096, 1024, 256))


@pytest.mark.skipif(not _sm90(), reason="the Gluon wgmma kernels run on sm90 GPUs only (CPU: test_compile)")
@pytest.mark.parametrize("tile", WS_TILES, ids=lambda t: "x".join(map(str, t)))
@pytest.mark.parametrize("kind", KINDS)
def test_ws_kernel(kind, tile, monkeypatch):
    """As test_wgmma_kernel, on the persistent warp-specialised kernel: int8 bit-exact, fp8 within its
    bound, two runs bit-equal, NaN-poisoned outputs, PDL on and off; every call on that kernel."""
    bm, bn, bk, warps, stages, pingpong = tile
    cfg = dict(WGMMA_CFG, BLOCK_SIZE_M=bm, BLOCK_SIZE_N=bn, BLOCK_SIZE_K=bk, num_warps=warps, num_stages=stages,
               PERSISTENT=True, PINGPONG=pingpong)
    counter = CountingLauncher(mm_ops._launch_ws)
    monkeypatch.setattr(mm_ops, "_launch_ws", counter)
    _check_tile_on_shapes(kind, tile, cfg, WS_SHAPES, "ws")
    assert counter.n == 2 * len(WS_SHAPES), counter.n


# TMA_STORE tiles: (BM, BN, BK, warps, stages, PINGPONG), each with its output tile(s) beside the
# stages in the H100's 227 KB for 2-byte outputs; fp32 outputs fit only the 64 x 128 tiles, and the
# op refuses the others (_tma_store_problem)
TMA_TILES = ((128, 256, 128, 8, 3, False), (128, 256, 64, 8, 6, False), (128, 128, 128, 4, 5, True),
             (64, 128, 64, 4, 4, True))
# WS_SHAPES with output rows of whole 16-byte units (N % 8 == 0): M, N and K tails, every program
# several tiles (2000 x 4104: the last column tile 8 wide, TMA clipping the rest)
TMA_SHAPES = ((1, 256, 128), (33, 1000, 496), (64, 256, 1024), (300, 264, 4112), (129, 384, 32), (2000, 4104, 528),
              (4096, 1024, 256))


@pytest.mark.skipif(not _sm90(), reason="the Gluon wgmma kernels run on sm90 GPUs only (CPU: test_compile)")
@pytest.mark.parametrize("tile", TMA_TILES, ids=lambda t: "x".join(map(str, t)))
@pytest.mark.parametrize("kind", KINDS)
def test_ws_kernel_tma_store(kind, tile, monkeypatch):
    """test_ws_kernel with the tiles leaving by TMA stores: an explicit TMA_STORE config never falls
    back, so each call that returns stored through TMA; one whose fp32 tiles do not fit raises."""
    bm, bn, bk, warps, stages, pingpong = tile
    cfg = dict(WGMMA_CFG, BLOCK_SIZE_M=bm, BLOCK_SIZE_N=bn, BLOCK_SIZE_K=bk, num_warps=warps, num_stages=stages,
               PERSISTENT=True, PINGPONG=pingpong, TMA_STORE=True)
    counter = CountingLauncher(mm_ops._launch_ws)
    monkeypatch.setattr(mm_ops, "_launch_ws", counter)
    fits = mm_ops._tma_store_problem(1024, torch.float32, check_config(cfg), 0) is None
    assert fits == (bn == 128 and bm == 64), tile
    refused = 0
    for i, (M, N, K) in enumerate(TMA_SHAPES):
        if i % 3 == 2 and not fits:  # _check_tile_on_shapes' fp32 form
            a, w = _operands(M, N, K, kind, 1)
            sa, sb, _ = _scales(M, N, 1)
            with pytest.raises(ValueError, match=r"config\['TMA_STORE'\]=True cannot serve this call: \d+ stages"):
                lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, config=cfg)
            refused += 1
            continue
        _check_tile_on_shapes(kind, tile, cfg, [(M, N, K)], f"tma{i}", form=i % 3)
    assert counter.n == 2 * (len(TMA_SHAPES) - refused), counter.n


@pytest.mark.skipif(not _sm90(), reason="the Gluon wgmma kernels run on sm90 GPUs only")
def test_tma_store_from_a_table_falls_back(monkeypatch):
    """A tuned TMA_STORE config on a call whose output rows are not 16-byte units (N = 971 bf16), or
    whose fp32 tiles do not fit, stores from registers instead; an explicit one raises."""
    cfg = dict(WGMMA_CFG, num_warps=8, num_stages=3, BLOCK_SIZE_N=256, PERSISTENT=True, TMA_STORE=True)
    monkeypatch.setattr(config_store, "lookup", lambda *args: cfg)
    monkeypatch.setattr(mm_ops, "_plans", {})
    for M, N, K, out_dtype in ((300, 971, 512, torch.bfloat16), (300, 1024, 512, torch.float32),
                               (300, 1024, 512, torch.bfloat16)):
        a, w = _operands(M, N, K, "int8", N)
        sa, sb, bias = _scales(M, N, N)
        _poisoned_pool(M, N, out_dtype)
        _check(lmkernels.scaled_mm(a, w.t(), sa, sb, out_dtype, bias), a, w.t(), sa, sb, out_dtype, bias)
        if out_dtype is torch.bfloat16 and N == 971:
            with pytest.raises(ValueError, match=r"rows \(N=971 x 2 bytes\) are not a multiple of 16 bytes"):
                lmkernels.scaled_mm(a, w.t(), sa, sb, out_dtype, bias, config=cfg)
    # the wplan's constexprs end in TMA_STORE: off for the first two calls, on for the third
    assert sorted(plan[17][1][-1] for plan in mm_ops._plans.values()) == [False, False, True]


def _check_in_a_cuda_graph(M, N, K, cfg, seed):
    """One call captured, then replayed on two fresh a's: each replay against the reference."""
    a, w = _operands(M, N, K, "int8", seed)
    sa, sb, bias = _scales(M, N, seed)
    lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg)
    graph, out = capture(lambda: lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg))
    for s in (seed + 1, seed + 2):
        a.copy_(_operands(M, N, K, "int8", s)[0])
        graph.replay()
        torch.cuda.synchronize()
        _check(out, a, w.t(), sa, sb, torch.bfloat16, bias)


@pytest.mark.skipif(not _sm90(), reason="the Gluon wgmma kernels run on sm90 GPUs only")
def test_ws_kernel_in_a_cuda_graph():
    # 128 tiles of 128 x 128 on the ping-pong kernel
    _check_in_a_cuda_graph(1024, 2048, 512, dict(WGMMA_CFG, num_warps=4, num_stages=5, PERSISTENT=True, PINGPONG=True),
                           57)


@pytest.mark.skipif(not _sm90(), reason="the Gluon wgmma kernel runs on sm90 GPUs only")
def test_wgmma_kernel_in_a_cuda_graph():
    _check_in_a_cuda_graph(256, 512, 1024, WGMMA_CFG, 47)


def test_wgmma_where_it_cannot_run(monkeypatch):
    """An explicit WGMMA config the call cannot take raises and says why; the same config from a
    tuned table runs its tile on the Triton kernel (here: anywhere but sm90, a row-major b, a
    misaligned base on sm90)."""
    M, N, K = 40, 64, 96
    a, w = _operands(M, N, K, "int8", 53)
    sa, sb, bias = _scales(M, N, 53)
    cfg = dict(WGMMA_CFG, BLOCK_SIZE_M=64, BLOCK_SIZE_N=32, BLOCK_SIZE_K=32, num_warps=4)
    b_row = w.t().contiguous()  # [K, N] row-major: N-contiguous, which an 8-bit wgmma cannot read
    cases = [(w.t(), "needs an sm90 GPU")] if not _sm90() else [(b_row, "needs K-contiguous operands")]
    for b, why in cases:
        with pytest.raises(ValueError, match=rf"config\['WGMMA'\]=True cannot serve this call: it {why}"):
            lmkernels.scaled_mm(a, b, sa, sb, torch.float32, bias, config=cfg)
    if _sm90():
        with pytest.raises(ValueError, match="access='pointer' cannot serve|resolved to another access mode"):
            lmkernels.scaled_mm(a, w.t(), sa, sb, torch.float32, bias, config=cfg, access="pointer")
    # a tile of two accumulators (48 = 32 + 16) runs its wider part, 32 columns, on the Triton kernel
    for table_cfg in (cfg, dict(cfg, BLOCK_SIZE_N=48)):
        monkeypatch.setattr(config_store, "lookup", lambda *args: table_cfg)
        monkeypatch.setattr(mm_ops, "_plans", {})
        for b in (w.t(), b_row):
            _check(lmkernels.scaled_mm(a, b, sa, sb, torch.float32, bias), a, b, sa, sb, torch.float32, bias)
        assert all(plan[17] is not None or plan[2][1] == 32 for plan in mm_ops._plans.values())
    if _sm90():  # a base off 16 bytes: no descriptors, so the Triton kernel's pointer loads
        big = torch.empty(M * K + 1, dtype=INT8, device=DEVICE)
        a_off = big[1:].view(M, K).copy_(a)
        _check(lmkernels.scaled_mm(a_off, w.t(), sa, sb, torch.float32, bias), a_off, w.t(), sa, sb,
               torch.float32, bias)
        # plans kept: the row-major b's (Triton kernel) and the aligned w.t()'s (wgmma); a call that
        # fell back for a misaligned base keeps none (the next, aligned call may have descriptors)
        kinds = sorted(plan[17] is not None for plan in mm_ops._plans.values())
        assert kinds == [False, True], kinds
