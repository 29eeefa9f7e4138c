"""lmkernels.pack_seq and lmkernels.unpack_seq against lmkernels.reference.packing, bit for bit."""
import math

import pytest
import torch

import lmkernels
from helpers import DEVICE, ON_GPU, capture, dtype_id, seed_of, skip_unavailable
from lmkernels import reference as ref
from lmkernels.ops import packing as pk
from lmkernels.runtime import access as access_rt
from lmkernels.runtime import launch

# Allowed differences, in mismatching elements (bit patterns compared as integers):
MISMATCHES = {
    "pack_seq": 0,    # a copy of bit patterns plus pad bits computed on the host: exact in every dtype and mode
    "unpack_seq": 0,  # a copy, and zero bits where no packed row maps
}
DTYPES = [torch.bfloat16, torch.float16, torch.float32, torch.float8_e4m3fn, torch.float8_e5m2, torch.uint8]
TRAILING = [(), (7,), (3, 5), (8, 128)]
MODES = list(access_rt.MODES)
LENGTHS = [3, 0, 9, 1, 0, 4]  # zeros, long and short mixed; 9 is no multiple of any token tile
SENTINEL = 0xA5  # poison byte: 0xA5A5 is a finite bf16/fp16, distinct from every pad and zero
GPU_ONLY = "a GPU shape: hundreds of programs at ~5 ms each under the interpreter; it runs on a GPU"
INTS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    """Every output the ops allocate starts as SENTINEL bytes: an element no program writes shows."""
    def alloc(like, shape):
        n = math.prod(shape) * like.element_size()
        return torch.full((n,), SENTINEL, dtype=torch.uint8, device=like.device).view(like.dtype).view(shape)
    monkeypatch.setattr(pk, "_alloc", alloc)


def use_tiles(monkeypatch, tiles: str) -> None:
    """Every call takes small_config's one-token tiles ("small") or copy_config's ("wide"): the
    plan caches hold the one-wave bound, so they start empty."""
    monkeypatch.setattr(pk, "RESIDENT_PROGRAMS", 10**6 if tiles == "small" else 0)
    monkeypatch.setattr(pk, "_plans", {})
    monkeypatch.setattr(pk, "_fast_plans", {})


def bits(t):
    return t.view(INTS[t.element_size()])


def assert_bits(got, want, op="pack_seq"):
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
    bad = bits(got) != bits(want)
    n_bad = int(bad.sum())
    if n_bad > MISMATCHES[op]:
        i = tuple(bad.nonzero()[0].tolist())
        raise AssertionError(f"{op}: {n_bad} of {got.numel()} elements differ; first at {i}: bits "
                             f"{int(bits(got)[i])} != expected {int(bits(want)[i])}")


def random_rows(n, trailing, dtype, seed):
    """Fresh random data: random bits for fp8 and uint8 (NaN patterns included), normals otherwise."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    if dtype.itemsize == 1:
        return torch.randint(0, 256, (n, *trailing), dtype=torch.uint8, device=DEVICE, generator=gen).view(dtype)
    return torch.randn(n, *trailing, device=DEVICE, generator=gen).to(dtype)


def lengths_tensor(values, dtype=torch.int64):
    return torch.tensor(values, dtype=dtype, device=DEVICE)


def default_pad(dtype):
    return 7 if dtype == torch.uint8 else float("-inf")


# ---------------------------------------------------------------- against the reference

@pytest.mark.parametrize("trailing", TRAILING, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_pack_and_unpack_match_reference(dtype, trailing):
    lengths = lengths_tensor(LENGTHS, torch.int32)
    x = random_rows(sum(LENGTHS), trailing, dtype, seed_of("x", dtype, trailing))
    pad = default_pad(dtype)
    got = lmkernels.pack_seq(x, lengths, pad)  # Lmax = max(lengths): the host-sync path
    want = ref.pack_seq(x, lengths, pad)
    assert got.shape == (len(LENGTHS), max(LENGTHS), *trailing)
    assert_bits(got, want)
    back = lmkernels.unpack_seq(got, lengths)  # N = sum(lengths)
    assert_bits(back, x, "unpack_seq")


@pytest.mark.parametrize("max_len", [1, 4, 9, 12])
def test_max_len_truncates_or_pads_without_a_sync(max_len):
    """max_len < a length truncates that sequence; > max(lengths) adds pad rows. Exact round trip of
    the tokens kept; the dropped tokens' rows come back as zeros."""
    lengths = lengths_tensor(LENGTHS)
    N = sum(LENGTHS)
    x = random_rows(N, (8, 16), torch.bfloat16, seed_of("trunc", max_len))
    got = lmkernels.pack_seq(x, lengths, 0.5, max_len=max_len)
    assert got.shape == (len(LENGTHS), max_len, 8, 16)
    assert_bits(got, ref.pack_seq(x, lengths, 0.5, max_len=max_len))
    back = lmkernels.unpack_seq(got, lengths, num_tokens=N)
    assert_bits(back, ref.unpack_seq(got, lengths, num_tokens=N), "unpack_seq")
    kept = torch.cat([torch.arange(s, s + min(n, max_len)) for s, n in zip([0, 3, 3, 12, 13, 13], LENGTHS)])
    assert_bits(back[kept], x[kept], "unpack_seq")
    dropped = torch.ones(N, dtype=torch.bool)
    dropped[kept] = False
    assert not bits(back[dropped.to(DEVICE)]).any(), "a truncated token's row must come back as zeros"


def test_hand_written_example():
    """Independent of the reference: x = 0..5, lengths [2, 0, 3], pad -1 (row 5 belongs to no sequence)."""
    x = torch.arange(6, dtype=torch.float32, device=DEVICE)
    lengths = lengths_tensor([2, 0, 3])
    got = lmkernels.pack_seq(x, lengths, -1.0, max_len=3)
    want = torch.tensor([[0, 1, -1], [-1, -1, -1], [2, 3, 4]], dtype=torch.float32, device=DEVICE)
    assert torch.equal(got, want)
    back = lmkernels.unpack_seq(got, lengths, num_tokens=6)
    assert torch.equal(back, torch.tensor([0, 1, 2, 3, 4, 0], dtype=torch.float32, device=DEVICE))


@pytest.mark.parametrize("mode", MODES)
def test_access_modes_bit_identical(mode):
    """Every mode against pointer mode, with partial token tiles and a truncated and a tail sequence
    (descriptor: unpack's partial tiles go through pointer stores)."""
    skip_unavailable(mode)
    lengths = lengths_tensor(LENGTHS)
    N = sum(LENGTHS)
    x = random_rows(N, (8, 128), torch.bfloat16, seed_of("modes"))
    base = lmkernels.pack_seq(x, lengths, float("nan"), max_len=7, access="pointer")
    got = lmkernels.pack_seq(x, lengths, float("nan"), max_len=7, access=mode)
    assert_bits(got, base)
    assert_bits(got, ref.pack_seq(x, lengths, float("nan"), max_len=7))
    for n in (N, N + 5, N - 4):  # exact, a zero tail past sum(lengths), rows past num_tokens dropped
        want = lmkernels.unpack_seq(got, lengths, num_tokens=n, access="pointer")
        assert_bits(lmkernels.unpack_seq(got, lengths, num_tokens=n, access=mode), want, "unpack_seq")
        assert_bits(want, ref.unpack_seq(got, lengths, num_tokens=n), "unpack_seq")


class _PartialLaunch:
    """A Launcher stand-in that never takes the fast path and launches cut(grid, args) -> (grid,
    args) instead: a part of the kernel's programs."""

    def __init__(self, real, cut):
        self.real, self.cut = real, cut

    def __getattr__(self, name):
        return getattr(self.real, name)

    def fast(self, *args):
        return False

    def __call__(self, dev, grid, args, consts, num_warps=4, pdl=False):
        self.real(dev, *self.cut(grid, args), consts, num_warps=num_warps, pdl=pdl)


def _first_sequence(grid, args):
    """The tile-indexed kernels: sequence 0's programs only (grid axis 0 cut to its token tiles,
    the last launch argument)."""
    return (args[-1], grid[1]), args


@pytest.mark.parametrize("mode", MODES)
def test_programs_write_only_their_own_sequence(monkeypatch, mode):
    """With only sequence 0's programs run, every other row keeps its poison. The interpreter runs
    programs one after another, so a tile spilling into the next sequence (a descriptor box past a
    partial tile) would otherwise be overwritten by that sequence's programs and go unseen."""
    skip_unavailable(mode)
    for name in ("_pack", "_pack_desc", "_unpack", "_unpack_desc"):
        monkeypatch.setattr(pk, name, _PartialLaunch(getattr(pk, name), _first_sequence))
    use_tiles(monkeypatch, "wide")  # 8 tokens a program
    lengths = lengths_tensor([5, 3, 4])  # 8-token tiles: sequence 0's tile covers rows 0-7
    x = random_rows(12, (8, 128), torch.bfloat16, seed_of("own rows", mode))
    if mode != "pointer":  # pointer mode packs through _pack_rows_kernel: test_pack_rows_programs_split_the_rows
        packed = lmkernels.pack_seq(x, lengths, 0.0, max_len=6, access=mode)
        assert_bits(packed[0], ref.pack_seq(x, lengths, 0.0, max_len=6)[0])
        assert bool((packed[1:].view(torch.uint8) == SENTINEL).all()), "a program wrote another sequence's rows"
    out = lmkernels.unpack_seq(ref.pack_seq(x, lengths, 0.0, max_len=6), lengths, num_tokens=12, access=mode)
    assert_bits(out[:5], x[:5], "unpack_seq")
    assert bool((out[5:].view(torch.uint8) == SENTINEL).all()), "a program wrote another sequence's rows"


def _rows_kernel_part(part):
    """_pack_rows_kernel: its data programs only (grid axis 0 cut to the x tiles) or its pad
    programs only (no x tiles)."""
    def cut(grid, args):
        n_x, n_t, B = args[-2], args[-1], args[4]
        if part == "data":
            return (n_x, grid[1]), args
        return (B * n_t, grid[1]), args[:-2] + (0, n_t)
    return cut


@pytest.mark.parametrize("tiles", ["small", "wide"])
@pytest.mark.parametrize("part", ["data", "pad"])
def test_pack_rows_programs_split_the_rows(monkeypatch, part, tiles):
    """_pack_rows_kernel's data programs write exactly the rows holding tokens and its pad programs
    exactly the others: run alone, each leaves the other's rows poisoned. Zeros, a truncated
    sequence (9 > max_len 7) and x shorter than sum(lengths) (its last 3 tokens are pad)."""
    monkeypatch.setattr(pk, "_pack_rows", _PartialLaunch(pk._pack_rows, _rows_kernel_part(part)))
    use_tiles(monkeypatch, tiles)
    lengths = lengths_tensor(LENGTHS)
    x = random_rows(sum(LENGTHS) - 3, (8, 16), torch.bfloat16, seed_of("rows kernel", part))
    got = lmkernels.pack_seq(x, lengths, 0.0, max_len=7)
    want = ref.pack_seq(x, lengths, float("nan"), max_len=7)
    is_pad = torch.isnan(want.float()).all(-1).all(-1)  # [B, Lmax]
    assert bool(is_pad.any()) and bool((~is_pad).any())
    written = is_pad if part == "pad" else ~is_pad
    assert_bits(got[written], want[written] if part == "data" else torch.zeros_like(got[written]))
    assert bool((got[~written].view(torch.uint8) == SENTINEL).all()), f"a {part} program wrote another row"


@pytest.mark.parametrize("B", [1, 17, 300])
def test_small_and_wide_tiles_agree(monkeypatch, B):
    """Both tile sets (small_config: one token, one warp; copy_config's wide ones), both pack
    kernels (_pack_rows_kernel up to INLINE_MAX_B sequences, _pack_kernel past it), bit-exact: zero
    and truncated lengths, an unpack tail past sum(lengths). B = 17: a seq_block of 32 with 15
    lanes past B."""
    # the interpreter runs ~5 ms a program, and the small tiles are one token a program: at B = 300
    # the CPU keeps sequences short (0-3 tokens, max_len 2: B x 2 pack programs, not B x 5)
    top, max_len = (4, 2) if B == 300 and not ON_GPU else (7, 5)
    gen = torch.Generator(device=DEVICE).manual_seed(B)
    lengths = torch.randint(0, top, (B,), device=DEVICE, generator=gen)
    N = int(lengths.sum())
    x = random_rows(max(N, 1), (3, 8), torch.float16, seed_of("tiles", B))
    want = ref.pack_seq(x, lengths, -2.0, max_len=max_len)
    for tiles, inline_max in (("small", 1024), ("wide", 1024), ("small", 4), ("wide", 4)):
        use_tiles(monkeypatch, tiles)
        monkeypatch.setattr(pk, "INLINE_MAX_B", inline_max)
        got = lmkernels.pack_seq(x, lengths, -2.0, max_len=max_len)
        assert_bits(got, want)
        assert_bits(lmkernels.unpack_seq(got, lengths, num_tokens=N + 2), ref.unpack_seq(got, lengths, num_tokens=N + 2),
                    "unpack_seq")


def test_rows_past_x_end_are_pad():
    """sum(lengths) > N: the tokens whose rows would lie past x's end are padding, never read."""
    x = random_rows(4, (5,), torch.float16, seed_of("short x"))
    lengths = lengths_tensor([3, 3])
    got = lmkernels.pack_seq(x, lengths, 9.0, max_len=3)
    assert_bits(got, ref.pack_seq(x, lengths, 9.0, max_len=3))
    assert torch.equal(got[1, 0], x[3]) and bool((got[1, 1:] == 9.0).all())


@pytest.mark.parametrize("values", [[5], [0], [0, 0, 0], [2, 0, 0, 6, 0]], ids=str)
def test_single_sequence_and_zero_lengths(values):
    x = random_rows(sum(values) + 1, (3, 5), torch.float32, seed_of("zeros", values))
    lengths = lengths_tensor(values, torch.int32)
    for max_len in (None, 6):
        got = lmkernels.pack_seq(x, lengths, 0.0, max_len=max_len)
        assert_bits(got, ref.pack_seq(x, lengths, 0.0, max_len=max_len))
        n = sum(values)
        assert_bits(lmkernels.unpack_seq(got, lengths, num_tokens=n), x[:n], "unpack_seq")


def test_long_and_short_sequences_mixed():
    """Many token tiles next to one-token sequences: bf16 rows of 64 take 16-token tiles."""
    values = [300, 1, 0, 77, 2, 129]
    x = random_rows(sum(values), (64,), torch.bfloat16, seed_of("long"))
    lengths = lengths_tensor(values)
    got = lmkernels.pack_seq(x, lengths, -0.0, max_len=300)
    assert_bits(got, ref.pack_seq(x, lengths, -0.0, max_len=300))
    assert_bits(lmkernels.unpack_seq(got, lengths, num_tokens=sum(values)), x, "unpack_seq")


def test_empty_inputs_return_early():
    lengths = lengths_tensor([0, 0])
    x = random_rows(0, (4,), torch.bfloat16, 1)
    got = lmkernels.pack_seq(x, lengths, 2.0, max_len=3)  # N = 0: every element is pad
    assert got.shape == (2, 3, 4) and bool((got == 2.0).all())
    assert lmkernels.pack_seq(x, lengths, 2.0).shape == (2, 0, 4)  # Lmax = max(lengths) = 0
    assert lmkernels.pack_seq(x, lengths_tensor([]), max_len=5).shape == (0, 5, 4)
    assert lmkernels.pack_seq(random_rows(5, (0,), torch.float32, 2), lengths_tensor([5]), max_len=5).shape == (1, 5, 0)
    assert lmkernels.unpack_seq(got, lengths).shape == (0, 4)
    z = lmkernels.unpack_seq(got, lengths, num_tokens=3)  # rows no packed row fills: zero
    assert z.shape == (3, 4) and not bits(z).any()
    z = lmkernels.unpack_seq(got[:, :0], lengths_tensor([2, 1]), num_tokens=3)  # Lmax = 0
    assert z.shape == (3, 4) and not bits(z).any()


def test_negative_lengths():
    """Refused where the host reads lengths anyway; counted as 0 where it does not (no sync)."""
    x = random_rows(6, (4,), torch.float32, 3)
    lengths = lengths_tensor([2, -3, 4])
    with pytest.raises(ValueError, match=r"lengths holds a negative length \(-3\)"):
        lmkernels.pack_seq(x, lengths)
    with pytest.raises(ValueError, match="negative length"):
        lmkernels.unpack_seq(torch.zeros(3, 4, 4, device=DEVICE), lengths)
    got = lmkernels.pack_seq(x, lengths, 0.0, max_len=4)
    assert_bits(got, ref.pack_seq(x, lengths_tensor([2, 0, 4]), 0.0, max_len=4))
    assert_bits(lmkernels.unpack_seq(got, lengths, num_tokens=6), x, "unpack_seq")


# ---------------------------------------------------------------- pad values and dtypes

@pytest.mark.parametrize("pad", [float("-inf"), 0.0, -0.0, float("nan"), -float("nan"), 2.5, 1e6, 3], ids=repr)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float8_e4m3fn], ids=dtype_id)
def test_pad_bits_are_torchs_cast(dtype, pad):
    """The pad rows hold exactly torch.tensor(pad, dtype=x.dtype)'s bits (1e6 overflows fp16 to inf)."""
    x = random_rows(3, (6,), dtype, seed_of("pad", dtype))
    got = lmkernels.pack_seq(x, lengths_tensor([1, 2]), pad, max_len=4)
    want = int(bits(torch.tensor(pad, dtype=dtype)))
    assert bool((bits(got[0, 1:]) == want).all()) and bool((bits(got[1, 2:]) == want).all())
    assert torch.equal(bits(got[0, 0]), bits(x[0])) and torch.equal(bits(got[1, :2]), bits(x[1:]))


def test_fp8_e4m3fn_has_no_infinity():
    """What the docstring says of -inf in float8_e4m3fn: the pad is torch's cast, never an infinity."""
    x = random_rows(2, (16,), torch.float8_e4m3fn, 5)
    got = lmkernels.pack_seq(x, lengths_tensor([1]), max_len=2)
    pad = got[0, 1].float()
    assert not bool(pad.isinf().any())
    if torch.__version__.startswith("2.13"):
        assert bool((bits(got[0, 1]) == 0xFE).all()), "torch 2.13 rounds -inf to -448 (0xFE) in e4m3fn"


@pytest.mark.parametrize("pad", [0, 255, 7.0])
def test_uint8_exact_bytes(pad):
    x = random_rows(3, (5,), torch.uint8, 6)
    got = lmkernels.pack_seq(x, lengths_tensor([3, 0]), pad, max_len=4)
    assert bool((got[0, 3] == int(pad)).all()) and bool((got[1] == int(pad)).all())


@pytest.mark.parametrize("pad", [3.5, 300, -1, float("-inf"), float("nan")], ids=repr)
def test_uint8_pad_not_a_byte_is_refused(pad):
    x = random_rows(3, (5,), torch.uint8, 7)
    with pytest.raises(ValueError, match=rf"pad_value={pad!r} must be an exact byte 0..255"):
        lmkernels.pack_seq(x, lengths_tensor([3]), pad, max_len=4)


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_word_size_follows_alignment(offset):
    """Rows of 12 bf16 (24 bytes) at element offsets 0-3: 8-, 2-, 4- and 2-byte words, all exact."""
    base = random_rows(200, (), torch.bfloat16, seed_of("align", offset))
    x = base[offset:offset + 12 * 15].view(15, 12)
    lengths = lengths_tensor([4, 7, 4])
    got = lmkernels.pack_seq(x, lengths, float("-inf"), max_len=7)
    assert_bits(got, ref.pack_seq(x, lengths, float("-inf"), max_len=7))
    assert_bits(lmkernels.unpack_seq(got, lengths, num_tokens=15), x, "unpack_seq")


def test_strided_tokens_and_packed():
    """x with a token stride (a column slice and every other row), packed as a slice of a wider buffer."""
    wide = random_rows(26, (48,), torch.float16, 8)
    x = wide[::2, :40]
    lengths = lengths_tensor([5, 0, 8])
    got = lmkernels.pack_seq(x, lengths, 1.0, max_len=8)
    assert_bits(got, ref.pack_seq(x, lengths, 1.0, max_len=8))
    buf = random_rows(3 * 10, (40,), torch.float16, 9).view(3, 10, 40)
    buf[:, :8] = got
    for packed in (buf[:, :8], buf[:, :8].transpose(0, 1).contiguous().transpose(0, 1)):
        assert_bits(lmkernels.unpack_seq(packed, lengths, num_tokens=13), x, "unpack_seq")


@pytest.mark.parametrize("scan_block", [4, 1024])
def test_many_sequences_use_the_starts_kernel(monkeypatch, scan_block):
    """Beyond INLINE_MAX_B sequences a starts kernel runs first (lowered here so the interpreter
    stays quick; scan_block 4: three programs, each adding the blocks before its own)."""
    monkeypatch.setattr(pk, "INLINE_MAX_B", 4)
    monkeypatch.setattr(pk, "SCAN_BLOCK", scan_block)
    values = [3, 0, 2, 5, 1, 0, 4, 2, 2, 0, 1]
    lengths = lengths_tensor(values, torch.int32)
    x = random_rows(sum(values), (16,), torch.bfloat16, 10)
    got = lmkernels.pack_seq(x, lengths, 0.0, max_len=5)
    assert_bits(got, ref.pack_seq(x, lengths, 0.0, max_len=5))
    assert_bits(lmkernels.unpack_seq(got, lengths, num_tokens=sum(values)), x, "unpack_seq")


def test_lengths_with_a_stride():
    values = torch.tensor([[2, 9], [0, 9], [3, 9]], device=DEVICE)[:, 0]
    x = random_rows(5, (4,), torch.float32, 11)
    assert_bits(lmkernels.pack_seq(x, values, 0.0, max_len=3), ref.pack_seq(x, values, 0.0, max_len=3))


def test_max_len_path_reads_nothing_on_the_host(monkeypatch):
    """The CPU stand-in for the CUDA-graph test: with max_len / num_tokens, no tensor is read by
    the host (item, tolist, bool and int of a tensor raise; the sync paths show that they do)."""
    x = random_rows(7, (8,), torch.bfloat16, 12)
    lengths = lengths_tensor([3, 4])
    lmkernels.pack_seq(x, lengths, 0.0, max_len=4)  # first call: compile outside the guard
    lmkernels.unpack_seq(lmkernels.pack_seq(x, lengths, 0.0, max_len=4), lengths, num_tokens=7)

    def boom(*a, **k):
        raise AssertionError("a host read of device data")
    for name in ("item", "tolist", "__bool__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, boom)
    with pytest.raises(AssertionError, match="host read"):
        lmkernels.pack_seq(x, lengths, 0.0)  # the sync path does read lengths
    with pytest.raises(AssertionError, match="host read"):
        lmkernels.unpack_seq(x.view(1, 7, 8), lengths_tensor([7]))
    p = lmkernels.pack_seq(x, lengths, 0.0, max_len=4)
    lmkernels.unpack_seq(p, lengths, num_tokens=7)


def _forbid(*_a, **_k):
    raise AssertionError("the careful path ran for a call the fast path should take")


def test_common_calls_take_the_fast_path(monkeypatch):
    """Contiguous rows, max_len / num_tokens given, pointer mode: the straight-line branch, on the
    CPU too (so the suite runs it), with the careful path forbidden."""
    monkeypatch.setattr(pk, "_pack_careful", _forbid)
    monkeypatch.setattr(pk, "_unpack_careful", _forbid)
    x = random_rows(9, (8, 16), torch.bfloat16, 20)
    lengths = lengths_tensor([4, 0, 5], torch.int32)
    p = lmkernels.pack_seq(x, lengths, float("nan"), max_len=5)
    assert_bits(p, ref.pack_seq(x, lengths, float("nan"), max_len=5))
    assert_bits(lmkernels.unpack_seq(p, lengths, num_tokens=9), x, "unpack_seq")


@pytest.mark.skipif(not (ON_GPU and launch.FAST_LAUNCH), reason="the launch fast path exists only for compiled "
                    "kernels on a GPU")
@pytest.mark.parametrize("B", [3, 2000])  # 2000: the starts kernel launches first
def test_repeat_calls_skip_tritons_launch(B):
    """After the first call, both ops launch through Launcher.fast (Triton's own launch is not
    entered again: no new misses) and stay right."""
    lengths = torch.full((B,), 3, device=DEVICE)
    x = random_rows(3 * B, (8, 128), torch.bfloat16, 21)
    p = lmkernels.pack_seq(x, lengths, max_len=4)
    lmkernels.unpack_seq(p, lengths, num_tokens=3 * B)
    misses = (pk._pack.misses, pk._pack_rows.misses, pk._unpack.misses, pk._starts.misses)
    for _ in range(3):
        p = lmkernels.pack_seq(x, lengths, max_len=4)
        assert_bits(p, ref.pack_seq(x, lengths, max_len=4))
        assert_bits(lmkernels.unpack_seq(p, lengths, num_tokens=3 * B), x, "unpack_seq")
    assert (pk._pack.misses, pk._pack_rows.misses, pk._unpack.misses, pk._starts.misses) == misses


# ---------------------------------------------------------------- bad inputs

def _bad_cases():
    x = random_rows(6, (4,), torch.float32, 13)
    ln = lengths_tensor([2, 4])
    return {
        "lengths dtype": (lambda: lmkernels.pack_seq(x, ln.float(), max_len=4), TypeError, r"lengths.dtype=torch.float32"),
        "lengths shape": (lambda: lmkernels.pack_seq(x, ln[None], max_len=4), ValueError, r"lengths.shape=\(1, 2\)"),
        "lengths device": (lambda: lmkernels.pack_seq(x, ln.to("meta"), max_len=4), ValueError,
                           r"lengths is on meta but x is on"),
        "lengths type": (lambda: lmkernels.pack_seq(x, [2, 4], max_len=4), TypeError, "lengths must be a torch.Tensor"),
        "x 0-dim": (lambda: lmkernels.pack_seq(x[0, 0], ln, max_len=4), ValueError, r"x must have at least 1 dim"),
        "x dtype": (lambda: lmkernels.pack_seq(x.int(), ln, max_len=4), TypeError, r"x.dtype=torch.int32"),
        "x not a tensor": (lambda: lmkernels.pack_seq([1.0], ln, max_len=4), TypeError, "x must be a torch.Tensor"),
        "max_len negative": (lambda: lmkernels.pack_seq(x, ln, max_len=-1), ValueError, r"max_len=-1 must be >= 0"),
        "max_len float": (lambda: lmkernels.pack_seq(x, ln, max_len=4.0), TypeError, r"max_len must be an int"),
        "max_len bool": (lambda: lmkernels.pack_seq(x, ln, max_len=True), TypeError, r"max_len must be an int"),
        "rows not contiguous": (lambda: lmkernels.pack_seq(random_rows(6, (4, 2), torch.float32, 14).transpose(1, 2),
                                                           ln, max_len=4), ValueError, r"x has shape \(6, 2, 4\)"),
        "rows strided": (lambda: lmkernels.pack_seq(x[:, ::2], ln, max_len=4), ValueError, r"must be contiguous"),
        "pad type": (lambda: lmkernels.pack_seq(x, ln, "0", max_len=4), TypeError, r"pad_value must be a Python float"),
        "pad tensor": (lambda: lmkernels.pack_seq(x, ln, torch.tensor(0.0), max_len=4), TypeError, r"pad_value"),
        "access": (lambda: lmkernels.pack_seq(x, ln, max_len=4, access="tma"), ValueError, r"access='tma'"),
        "packed 1-d": (lambda: lmkernels.unpack_seq(x[:, 0], ln), ValueError, r"packed must have at least 2 dim"),
        "unpack lengths B": (lambda: lmkernels.unpack_seq(x.view(3, 2, 4), ln), ValueError,
                             r"lengths.shape=\(2,\) must be \[B\] with B = packed.shape\[0\] = 3"),
        "num_tokens negative": (lambda: lmkernels.unpack_seq(x.view(2, 3, 4), ln, num_tokens=-2), ValueError,
                                r"num_tokens=-2 must be >= 0"),
        "num_tokens type": (lambda: lmkernels.unpack_seq(x.view(2, 3, 4), ln, num_tokens="6"), TypeError, r"num_tokens"),
        "pack pdl": (lambda: lmkernels.pack_seq(x, ln, max_len=4, pdl=1), TypeError, r"pdl must be a bool or None"),
        "unpack pdl": (lambda: lmkernels.unpack_seq(x.view(2, 3, 4), ln, num_tokens=6, pdl="yes"), TypeError,
                       r"pdl must be a bool or None"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_inputs_are_refused_with_clear_errors(case):
    call, exc, match = _bad_cases()[case]
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("mode", ["descriptor"])
def test_descriptor_refuses_unaligned_rows(mode):
    """An explicit descriptor mode refuses rows TMA cannot address; the default serves them."""
    skip_unavailable(mode)
    x = random_rows(6, (7,), torch.bfloat16, 15)
    ln = lengths_tensor([2, 4])
    with pytest.raises(ValueError, match="access='descriptor' cannot serve this call"):
        lmkernels.pack_seq(x, ln, max_len=4, access=mode)
    assert_bits(lmkernels.pack_seq(x, ln, max_len=4), ref.pack_seq(x, ln, max_len=4))


# ---------------------------------------------------------------- GPU shapes and CUDA graphs

@pytest.mark.skipif(not ON_GPU, reason=GPU_ONLY)
@pytest.mark.parametrize("mode", MODES)
def test_decode_and_big_shapes(mode):
    skip_unavailable(mode)
    gen = torch.Generator(device=DEVICE).manual_seed(16)
    for B, L, trailing in ((64, 4, (72, 128)), (8, 2048, (1024,)), (5000, 3, (64,))):
        lengths = torch.randint(0, L + 1, (B,), device=DEVICE, generator=gen)
        N = int(lengths.sum())
        x = random_rows(N, trailing, torch.bfloat16, seed_of("gpu", B, L))
        got = lmkernels.pack_seq(x, lengths, max_len=L, access=mode)
        assert_bits(got, ref.pack_seq(x, lengths, max_len=L))
        assert_bits(lmkernels.unpack_seq(got, lengths, num_tokens=N, access=mode), x, "unpack_seq")


@pytest.mark.parametrize("pdl", [False, True])
def test_pdl_chain_round_trips(pdl):
    """pack -> unpack -> pack -> ... each launch reading what the one before wrote: with PDL (where
    the GPU has it; a plain launch elsewhere) the unpack's L2 prefetch of its packed tile runs
    before the wait, while the pack before it may still be writing that tile. Every step bit-exact,
    eager and replayed from one CUDA graph with new data."""
    B, L = (64, 4) if ON_GPU else (3, 4)
    lengths = lengths_tensor([4, 0, 3, 1] * (B // 4) if ON_GPU else [4, 0, 3])
    N = int(lengths.sum())
    x = random_rows(N, (8, 128), torch.bfloat16, seed_of("pdl chain", pdl))

    def chain():
        y, p = x, None
        for _ in range(3):
            p = lmkernels.pack_seq(y, lengths, 0.0, max_len=L, pdl=pdl)
            y = lmkernels.unpack_seq(p, lengths, num_tokens=N, pdl=pdl)
        return p, y

    p, y = chain()
    assert_bits(p, ref.pack_seq(x, lengths, 0.0, max_len=L))
    assert_bits(y, x, "unpack_seq")
    if not ON_GPU:
        return
    graph, (p, y) = capture(chain)
    x.copy_(random_rows(N, (8, 128), torch.bfloat16, seed_of("pdl chain, replay", pdl)))
    graph.replay()
    torch.cuda.synchronize()
    assert_bits(p, ref.pack_seq(x, lengths, 0.0, max_len=L))
    assert_bits(y, x, "unpack_seq")


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a GPU (the CPU stand-in: test_max_len_path_reads_nothing_on_the_host)")
@pytest.mark.parametrize("B", [64, 3000])  # 3000: the starts kernel runs first, in the graph too
def test_cuda_graph_capture(B):
    """With max_len and num_tokens, both ops capture (no sync: set_sync_debug_mode would raise) and
    replay right on new data and new lengths of the same B and total."""
    L, N = 4, 2 * B
    x = random_rows(N, (8, 128), torch.bfloat16, 17)
    lengths = torch.full((B,), 2, device=DEVICE)
    lmkernels.unpack_seq(lmkernels.pack_seq(x, lengths, max_len=L), lengths, num_tokens=N)  # compile first
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            p = lmkernels.pack_seq(x, lengths, max_len=L)
            y = lmkernels.unpack_seq(p, lengths, num_tokens=N)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for seed in (18, 19):
        gen = torch.Generator(device=DEVICE).manual_seed(seed)
        x.copy_(random_rows(N, (8, 128), torch.bfloat16, seed))
        lengths.copy_(torch.randint(0, L + 1, (B,), device=DEVICE, generator=gen))
        graph.replay()
        torch.cuda.synchronize()
        assert_bits(p, ref.pack_seq(x, lengths, max_len=L))
        assert_bits(y, ref.unpack_seq(p, lengths, num_tokens=N), "unpack_seq")
