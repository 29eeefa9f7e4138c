"""pack_seq / unpack_seq: B sequences stored back to back ([N, ...]) <-> padded [B, Lmax, ...].

Shape of the module (for library.py):
  pack_seq / unpack_seq     public: refuse non-tensors, route to torch.ops.lmkernels.<name> while
                            torch.compile traces (or for fake/subclass tensors), else call *_impl.
  pack_impl / unpack_impl   what the registered ops call: checks, the output size (max_len /
                            num_tokens, or one host sync), the allocation, one launch (two beyond
                            INLINE_MAX_B sequences). The common call (on a GPU, contiguous rows,
                            pointer mode, max_len / num_tokens given) takes a straight-line branch
                            with a plan cached on (row shape, Lmax bucket, B bucket, dtypes,
                            device) and Launcher.fast; anything else the careful path.
  kernels                   pack in pointer mode with B <= INLINE_MAX_B: _pack_rows_kernel (data
                            programs by x row); otherwise _pack_kernel / _unpack_kernel (programs
                            by packed tile). Tiles: small_config's where the grid is one wave
                            (decode; pointer mode), copy_config's otherwise.
  check_pack / check_unpack shape/dtype/device checks only (no data: fake tensors too).

Both copy bit patterns (kernels/packing.py), so every dtype is bit-exact and the access modes agree
bit for bit. Given max_len (pack) or num_tokens (unpack) nothing waits for the device: the ops then
run inside CUDA graphs.
"""
from __future__ import annotations

import math

import torch
import triton

from ..kernels.packing import _pack_kernel, _pack_rows_kernel, _seq_starts_kernel, _unpack_kernel
from ..runtime import access as _access
from ..runtime.device import num_sms
from ..runtime.launch import Launcher
from ._common import check_runnable, check_same_device, cpu_interpreted, resolve_pdl, use_dispatcher

# x, out, lengths, starts | N, B, Lmax | D, stride_xt, stride_ob, stride_ot, stride_l | pad, token tiles
_pack = Launcher(_pack_kernel, "tttt" "nnn" "iiiii" "nn")
_pack_desc = Launcher(_pack_kernel, "ddtt" "nnn" "iiiii" "nn")  # access="descriptor"
# x, out, lengths | N, B, Lmax | D, stride_xt, stride_ob, stride_ot, stride_l | pad, x tiles, token tiles
_pack_rows = Launcher(_pack_rows_kernel, "ttt" "nnn" "iiiii" "nnn")  # pointer mode, B <= INLINE_MAX_B
# packed, out, out (pointer), lengths, starts | N, B, Lmax | D, stride_pb, stride_pt, stride_ot, stride_l | token tiles
_unpack = Launcher(_unpack_kernel, "ttttt" "nnn" "iiiii" "n")
_unpack_desc = Launcher(_unpack_kernel, "ddttt" "nnn" "iiiii" "n")
_starts = Launcher(_seq_starts_kernel, "tt" "n" "i")

DTYPES = tuple(d for d in (torch.float16, torch.bfloat16, torch.float32, torch.uint8, torch.float8_e4m3fn,
                           torch.float8_e5m2, getattr(torch, "float8_e4m3fnuz", None),
                           getattr(torch, "float8_e5m2fnuz", None)) if d is not None)
LEN_DTYPES = (torch.int32, torch.int64)
_WORDS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
MAX_I32 = 2**31 - 1  # token rows and tile coordinates are int32 in the kernels
MAX_GRID_Y = 65535   # CUDA's limit on grid axis 1, which carries a row's word tiles

# Sequence starts (kernels/packing.py): every program sums lengths[0:b] in BLOCK_B-wide loads, up to
# INLINE_MAX_B sequences (4 loads of 1-2 KB, L2 hits); beyond, a starts kernel runs first (one
# launch, SCAN_BLOCK sequences a program). Decode (B = 64) is one load of 256 lengths a program.
BLOCK_B = 256
INLINE_MAX_B = 1024
SCAN_BLOCK = 1024
# Tiles: a row's word tile is at most ROW_TILE_BYTES (split evenly where a row is longer), a program's
# tile about TILE_BYTES (16 KB: 8 x 16-byte vectors a thread at 4 warps, enough bytes in flight for
# HBM at a few resident programs an SM) and at most MAX_TILE_WORDS words (registers, for 1-2-byte words).
ROW_TILE_BYTES = 4096
TILE_BYTES = 16384
MAX_TILE_WORDS = 4096
# Small calls (decode) are latency chains, not bandwidth: where the whole grid of one-token,
# ROW_TILE_BYTES, one-warp programs is resident at once (RESIDENT_PROGRAMS a multiprocessor: the
# H100's 32-block limit, 4224 programs), pointer mode takes those instead of the 16 KB tiles. H100
# (probe_pack_config.md, probe_pack_rule.md), B = 64, Lmax = 4, 9216-element rows: pack 3.46 ->
# 2.98 µs rotated, unpack 3.32 -> 3.22; one program an SM more than that (B = 64, Lmax = 16: 7865
# programs) and they lose 10 % (pack) and 40 % on one input set (unpack).
RESIDENT_PROGRAMS = 32

_Tensor = torch.Tensor
_plans: dict = {}
_fast_plans: dict = {}
_pad_words: dict = {}


def copy_config(row_words: int, word_bytes: int, max_len: int, descriptor: bool = False) -> tuple[int, int, int]:
    """(BLOCK_T, BLOCK_D, num_warps) from the row length in words, the word size and Lmax.

    A row up to ROW_TILE_BYTES is one tile; a longer one splits into ROW_TILE_BYTES tiles or half or
    a quarter of that, whichever leaves the fewest masked words in the last tile (bf16 9216 = 2304
    words: 9 tiles of 256). Tokens fill the tile to TILE_BYTES, but not past next_pow2(Lmax) (decode:
    Lmax <= 4 gives [4, 256] tiles, 576 programs at B = 64). Descriptor boxes are at most 256 a side.
    Not yet swept on a GPU: the sizes are the design's predictions (16 KB a program, 16-byte vectors).
    """
    cap = ROW_TILE_BYTES // word_bytes
    if descriptor:
        cap = min(cap, 256)
    if row_words <= cap:
        block_d = triton.next_power_of_2(row_words)
    else:
        block_d = min((cap >> k for k in range(3)), key=lambda p: (-(-row_words // p) * p - row_words, -p))
    tile_words = min(TILE_BYTES // word_bytes, MAX_TILE_WORDS)
    block_t = max(1, min(tile_words // block_d, triton.next_power_of_2(max(max_len, 1)), 256 if descriptor else 1024))
    warps = max(1, min(4, block_t * block_d * word_bytes // 2048))
    return block_t, block_d, warps


def small_config(row_words: int, word_bytes: int) -> tuple[int, int, int]:
    """(BLOCK_T, BLOCK_D, num_warps) for a call whose grid is one wave (RESIDENT_PROGRAMS): one
    token, at most ROW_TILE_BYTES of its row, one warp (the decode sweep's winner for both ops; a
    9216-element bf16 row is 5 tiles of 512 words, the last half masked: 1 x 256 gave 4.77 µs, 1 x
    512 2.96, as 2304 programs against 2030)."""
    return 1, min(ROW_TILE_BYTES // word_bytes, triton.next_power_of_2(row_words)), 1


def _plan(row_words, w, lmax, seq_block, dt, ldt, dev, unpack, mode=_access.POINTER, use_pdl=False, small=False):
    """(BLOCK_T, BLOCK_D, num_warps, constexprs, fast-path meta id, word tiles, use PDL, rows kernel)
    for one geometry, cached; None when a row needs more word tiles than grid axis 1 takes.
    seq_block: pack_seq in pointer mode with B <= INLINE_MAX_B: _pack_rows_kernel's BLOCK_B (a power
    of two >= B, _seq_block); otherwise 0, or -1 beyond INLINE_MAX_B sequences (the starts kernel
    first). small: small_config's tiles (pointer mode). use_pdl: already resolved (resolve_pdl)."""
    key = (row_words, w, lmax, seq_block, dt, ldt, dev, unpack, mode, use_pdl, small)
    plan = _plans.get(key)
    if plan is None:
        if small:
            block_t, block_d, warps = small_config(row_words, w)
        else:
            block_t, block_d, warps = copy_config(row_words, w, lmax, mode == _access.DESCRIPTOR)
        n_d = -(-row_words // block_d)
        if n_d > MAX_GRID_Y:
            return None
        rows_kernel = seq_block > 0
        many_seqs = seq_block < 0
        sdt = torch.int64 if many_seqs else ldt
        if rows_kernel:
            consts = (block_t, block_d, seq_block, w, use_pdl)
            meta = _pack_rows.meta_id(consts, warps, 1, (dt, dt, ldt), use_pdl)
        elif unpack:
            consts = (block_t, block_d, BLOCK_B, w, many_seqs, mode, use_pdl)
            meta = _unpack.meta_id(consts, warps, 1, (dt, dt, dt, ldt, sdt), use_pdl)
        else:
            consts = (block_t, block_d, BLOCK_B, w, many_seqs, mode, use_pdl)
            meta = _pack.meta_id(consts, warps, 1, (dt, dt, ldt, sdt), use_pdl)
        plan = _plans[key] = (block_t, block_d, warps, consts, meta, n_d, use_pdl, rows_kernel)
    return plan


def _seq_block(B: int) -> int:
    """pack_seq's seq_block in pointer mode (_plan): _pack_rows_kernel's BLOCK_B, a power of two
    >= max(B, 16), or -1 beyond INLINE_MAX_B sequences (_pack_kernel after the starts kernel)."""
    return max(16, 1 << (B - 1).bit_length()) if B <= INLINE_MAX_B else -1


# _seq_block(B) for B <= INLINE_MAX_B, read by pack's fast path (a list index, not a call)
_SEQ_BLOCKS = [_seq_block(B) for B in range(INLINE_MAX_B + 1)]


def _fast_plan(trailing, lmax, seq_block, dt, ldt, dev, unpack, pdl):
    """For the fast paths (contiguous rows of known shape, pointer mode): (widest word the row
    allows, row words, the most grid rows the small tiles serve in one wave, small plan, plan),
    cached under the row's shape and the pdl request (None or a bool); grid rows are N + B x Lmax for
    pack (x's rows, then the packed rows) and B x Lmax for unpack. None where the careful path must
    decide (bad dtypes, empty rows, rows too long)."""
    key = (trailing, lmax, seq_block, dt, ldt, dev, unpack, pdl)
    plan = _fast_plans.get(key)
    if plan is None:
        if dt not in DTYPES or ldt not in LEN_DTYPES:
            return None
        row_bytes = math.prod(trailing) * dt.itemsize
        w = _word_bytes(row_bytes)
        dw = row_bytes // w
        if not dw:
            return None
        use_pdl = resolve_pdl(pdl, dev)
        big = _plan(dw, w, lmax, seq_block, dt, ldt, dev, unpack, _access.POINTER, use_pdl)
        small = _plan(dw, w, lmax, seq_block, dt, ldt, dev, unpack, _access.POINTER, use_pdl, True)
        if big is None or small is None:
            return None
        plan = _fast_plans[key] = (w, dw, _small_rows(small, dev), small, big)
    return plan


def _small_rows(small_plan, dev) -> int:
    """The most grid rows (token tiles of one token) small_config serves: one wave of programs."""
    return RESIDENT_PROGRAMS * num_sms(max(dev, 0)) // small_plan[5]


def _check_pad(pad_value, dtype) -> None:
    if isinstance(pad_value, bool) or not isinstance(pad_value, (float, int)):
        raise TypeError(f"pad_value must be a Python float or int, got {type(pad_value).__name__}")
    if dtype == torch.uint8 and not (math.isfinite(pad_value) and float(pad_value).is_integer()
                                     and 0 <= pad_value <= 255):
        raise ValueError(f"pad_value={pad_value!r} must be an exact byte 0..255 for a uint8 tensor")


def pad_word(pad_value, dtype, w: int) -> int:
    """pad_value's bits in `dtype` (as torch.tensor(pad_value, dtype=dtype) gives them; uint8: the
    byte, which must equal pad_value exactly), repeated over a word of w bytes, as the kernel's
    word: a signed integer (0..255 for one byte). Cached, except NaN (a new NaN object each call
    would grow the cache); -0.0 and 0.0 are told apart by their sign."""
    _check_pad(pad_value, dtype)
    key = (pad_value, math.copysign(1.0, pad_value), dtype, w)
    word = _pad_words.get(key)
    if word is not None:
        return word
    e = dtype.itemsize
    if dtype == torch.uint8:
        bits = int(pad_value)
    else:
        bits = int(torch.tensor(pad_value, dtype=dtype).view(_WORDS[e]).item()) & ((1 << 8 * e) - 1)
    word = sum(bits << (8 * e * i) for i in range(w // e))
    if w > 1 and word >= 1 << (8 * w - 1):
        word -= 1 << (8 * w)
    if pad_value == pad_value:
        _pad_words[key] = word
    return word


def _alloc(like, shape):
    """The output, uninitialised (every element is written). One hook: the tests poison it here."""
    return like.new_empty(shape)


def _word_bytes(*quantities) -> int:
    """The widest word (8, 4, 2 or 1 bytes) that divides every quantity (byte counts, addresses)."""
    g = 8
    for q in quantities:
        g |= q
    return g & -g


# ---------------------------------------------------------------- checks (no data: fake tensors too)

def _check_lengths(lengths, ref, ref_name: str, B=None) -> None:
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"lengths must be a torch.Tensor, got {type(lengths).__name__}")
    if lengths.dtype not in LEN_DTYPES:
        raise TypeError(f"lengths.dtype={lengths.dtype} is not supported; expected torch.int32 or torch.int64")
    if lengths.dim() != 1 or (B is not None and lengths.shape[0] != B):
        want = "[B]" if B is None else f"[B] with B = {ref_name}.shape[0] = {B}"
        raise ValueError(f"lengths.shape={tuple(lengths.shape)} must be {want}")
    check_same_device(lengths, "lengths", ref, ref_name)


def _check_data(t, name: str, min_dim: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in DTYPES:
        raise TypeError(f"{name}.dtype={t.dtype} is not supported; expected one of "
                        f"{', '.join(str(d).split('.')[-1] for d in DTYPES)}")
    if t.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension{'s' if min_dim > 1 else ''}, "
                         f"got shape {tuple(t.shape)}")


def _check_count(v, name: str) -> None:
    if v is None:
        return
    if type(v) is not int:
        raise TypeError(f"{name} must be an int or None, got {type(v).__name__} {v!r}")
    if v < 0:
        raise ValueError(f"{name}={v} must be >= 0")
    if v > MAX_I32:
        raise ValueError(f"{name}={v} exceeds {MAX_I32} (int32 token indices)")


def check_pack(x, lengths, pad_value=float("-inf"), max_len=None) -> None:
    """Shape/dtype/device checks of pack_seq (fake tensors too), pad_value's type and, for uint8 x, its value."""
    _check_data(x, "x", 1)
    _check_lengths(lengths, x, "x")
    _check_count(max_len, "max_len")
    _check_pad(pad_value, x.dtype)
    if x.shape[0] > MAX_I32:
        raise ValueError(f"x.shape[0]={x.shape[0]} exceeds {MAX_I32} tokens (int32 token indices)")


def check_unpack(packed, lengths, num_tokens=None) -> None:
    """Shape/dtype/device checks of unpack_seq (fake tensors too)."""
    _check_data(packed, "packed", 2)
    _check_lengths(lengths, packed, "packed", packed.shape[0])
    _check_count(num_tokens, "num_tokens")
    if packed.shape[1] > MAX_I32:
        raise ValueError(f"packed.shape[1]={packed.shape[1]} exceeds {MAX_I32} (int32 token indices)")


def _rows(t, name: str, lead: int):
    """(t as [*t.shape[:lead], D], D): the dims past `lead` flattened; they must be contiguous."""
    want = 1
    for size, stride in zip(reversed(t.shape[lead:]), reversed(t.stride()[lead:])):
        if size != 1 and stride != want:
            raise ValueError(f"{name} has shape {tuple(t.shape)} and strides {t.stride()}: the dims after "
                             f"dim {lead - 1} (a token's row) must be contiguous")
        want *= size
    return t.view(*t.shape[:lead], want), want


def _lengths_stats(lengths, with_sum: bool) -> tuple[int, int]:
    """(min or 0, max or sum), in one host synchronisation; refuses a negative length (this is
    the one place it can be seen without another sync) and a max or sum past int32."""
    if lengths.shape[0] == 0:
        return 0, 0
    lo, hi = torch.aminmax(lengths)
    mn, v = torch.stack([lo.long(), lengths.long().sum() if with_sum else hi.long()]).tolist()
    if mn < 0:
        raise ValueError(f"lengths holds a negative length ({mn}); lengths must be >= 0")
    if v > MAX_I32:
        raise ValueError(f"{'sum' if with_sum else 'max'}(lengths)={v} exceeds {MAX_I32} (int32 token indices)")
    return mn, v


# ---------------------------------------------------------------- pack

def pack_impl(x, lengths, pad_value, max_len, access, pdl=None):
    """The packed [B, Lmax, *x.shape[1:]] tensor (see pack_seq): checks, Lmax, allocation, launch.

    The common call (contiguous x on a GPU, max_len given, pointer mode) takes one straight-line
    branch: every Python operation costs 0.1-0.9 µs on the H100 hosts (ops/norm.py), so the row
    geometry, config and launch metadata come from one dict lookup on the row's shape."""
    xs = x.shape
    dev = x.get_device()
    if (type(lengths) is _Tensor and type(max_len) is int and (type(pad_value) is float or type(pad_value) is int)
            and (dev >= 0 or cpu_interpreted(x, lengths, None, None)) and lengths.get_device() == dev
            and (access is None and _access._default == _access.POINTER or access == "pointer")
            and (pdl is None or type(pdl) is bool) and x.is_contiguous() and len(xs) > 0):
        ls = lengths.shape
        n = xs[0]
        if len(ls) == 1 and 0 < max_len <= MAX_I32 and 0 < n <= MAX_I32:
            B = ls[0]
            dt = x.dtype
            sb = _SEQ_BLOCKS[B] if B <= INLINE_MAX_B else -1  # _seq_block(B)
            lb = 1 << (max_len - 1).bit_length()
            plan = _fast_plans.get((xs[1:], lb, sb, dt, lengths.dtype, dev, False, pdl))
            if plan is None:
                plan = _fast_plan(xs[1:], lb, sb, dt, lengths.dtype, dev, False, pdl)
            if plan is not None and B > 0:
                w, dw, small_rows, small, big = plan
                block_t, _, warps, consts, meta, n_d, use_pdl, rows_kernel = (small if n + B * max_len <= small_rows
                                                                              else big)
                n_t = -(-max_len // block_t)
                out = _alloc(x, (B, max_len) + xs[1:])
                word = _pad_words.get((pad_value, math.copysign(1.0, pad_value), dt, w))
                if word is None:
                    word = pad_word(pad_value, dt, w)
                if (x.data_ptr() | out.data_ptr()) & (w - 1) == 0 and max_len * dw <= MAX_I32 and B * n_t <= MAX_I32:
                    if rows_kernel:
                        n_x = -(-n // block_t)
                        if n_x + B * n_t <= MAX_I32:
                            args = (x, out, lengths, n, B, max_len, dw, dw, max_len * dw, dw, lengths.stride(0), word,
                                    n_x, n_t)
                            if not _pack_rows.fast(dev, meta, n_x + B * n_t, n_d, *args):
                                _pack_rows(dev, (n_x + B * n_t, n_d), args, consts, num_warps=warps, pdl=use_pdl)
                            return out
                    else:
                        starts = lengths if B <= INLINE_MAX_B else _starts_for(lengths, B, dev)
                        args = (x, out, lengths, starts, n, B, max_len, dw, dw, max_len * dw, dw, lengths.stride(0),
                                word, n_t)
                        if not _pack.fast(dev, meta, B * n_t, n_d, *args):
                            _pack(dev, (B * n_t, n_d), args, consts, num_warps=warps, pdl=use_pdl)
                        return out
    return _pack_careful(x, lengths, pad_value, max_len, access, pdl)


def _pack_careful(x, lengths, pad_value, max_len, access, pdl):
    check_pack(x, lengths, pad_value, max_len)
    check_runnable(x, "x")
    use_pdl = resolve_pdl(pdl, x.get_device())  # also refuses a pdl that is not a bool or None
    B, N = lengths.shape[0], x.shape[0]
    x2, D = _rows(x, "x", 1)
    if max_len is None:
        max_len = _lengths_stats(lengths, False)[1]
    out = _alloc(x, (B, max_len) + tuple(x.shape[1:]))
    e = x.dtype.itemsize
    if out.numel() == 0 or N == 0:  # nothing to copy (no kernel reads an empty x): all pad
        _access.resolve(access, [])  # still refuses an unknown access
        return out.view(_WORDS[e]).fill_(pad_word(pad_value, x.dtype, e)).view(x.dtype) if out.numel() else out
    sx = x2.stride(0) if N > 1 else D  # one row's stride is immaterial
    w = _word_bytes(D * e, sx * e, x2.data_ptr(), x2.storage_offset() * e, out.data_ptr())
    dw, sx = D * e // w, sx * e // w
    if max_len * dw > MAX_I32:
        raise ValueError(f"a packed sequence holds max_len x row = {max_len} x {dw} words of {w} bytes, "
                         f"over {MAX_I32} (int32 offsets within a sequence)")
    xw = x2.as_strided((N, D), (sx * w // e, 1)).view(_WORDS[w])
    ow = out.view(B, max_len, D).view(_WORDS[w])
    dev = x.get_device()
    mode, plan = _careful_plan(access, dw, w, max_len, B, N + B * max_len, x.dtype, lengths.dtype, dev, False, use_pdl,
                               lambda bd: [("x", xw, sx, bd), ("out", ow, [max_len * dw, dw], bd)])
    word = pad_word(pad_value, x.dtype, w)
    if mode == _access.DESCRIPTOR:
        from triton.tools.tensor_descriptor import TensorDescriptor
        block_t, block_d = plan[0], plan[1]
        xv = TensorDescriptor(xw, [N, dw], [sx, 1], [block_t, block_d])
        ov = TensorDescriptor(ow, [B, max_len, dw], [max_len * dw, dw, 1], [1, block_t, block_d])
        _launch_pack(lengths, B, N, max_len, dw, sx, word, plan, dev, xv, ov, _pack_desc)
    else:
        _launch_pack(lengths, B, N, max_len, dw, sx, word, plan, dev, x2, out, _pack)
    return out


def _careful_plan(access, dw, w, lmax, B, grid_rows, dt, ldt, dev, unpack, use_pdl, operands):
    """(access mode, plan for it). operands(box width) -> access.resolve's operands: the width is
    the descriptor config's, which a descriptor launch would use. Pointer mode: pack takes
    _pack_rows_kernel up to INLINE_MAX_B sequences, and both ops small_config's tiles where
    grid_rows (pack: N + B x Lmax, unpack: B x Lmax) fit one wave of them."""
    lb = 1 << (lmax - 1).bit_length()
    tiled = -1 if B > INLINE_MAX_B else 0
    dplan = _plan(dw, w, lb, tiled, dt, ldt, dev, unpack, _access.DESCRIPTOR, use_pdl)
    if dplan is None:
        raise ValueError(f"a row of {dw} words of {w} bytes needs more than {MAX_GRID_Y} tiles")
    mode = _access.resolve(access, operands(dplan[1]))
    if mode != _access.POINTER:
        return mode, _plan(dw, w, lb, tiled, dt, ldt, dev, unpack, mode, use_pdl)
    sb = tiled if unpack else _seq_block(B)
    small = _plan(dw, w, lb, sb, dt, ldt, dev, unpack, mode, use_pdl, True)
    if small is not None and grid_rows <= _small_rows(small, dev):
        return mode, small
    return mode, _plan(dw, w, lb, sb, dt, ldt, dev, unpack, mode, use_pdl)


def _starts_for(lengths, B: int, dev: int):
    """The int64 start of every sequence, from the starts kernel (B > INLINE_MAX_B), else lengths
    itself (unread: the copy kernel sums the lengths)."""
    if B <= INLINE_MAX_B:
        return lengths
    starts = lengths.new_empty(B, dtype=torch.int64)
    args = (lengths, starts, B, lengths.stride(0))
    _starts(dev, (-(-B // SCAN_BLOCK),), args, (SCAN_BLOCK,), num_warps=4)
    return starts


def _grid(B: int, n_t: int) -> int:
    if B * n_t > MAX_I32:
        raise ValueError(f"{B} sequences x {n_t} token tiles exceed {MAX_I32} programs (grid axis 0)")
    return B * n_t


def _launch_pack(lengths, B, N, max_len, dw, sx, word, plan, dev, xv, ov, launcher) -> None:
    """The careful path's launch (the fast path launches inline): _pack_rows_kernel where the plan
    says so (pointer mode), else `launcher`."""
    block_t, _, warps, consts, _, n_d, use_pdl, rows_kernel = plan
    n_t = -(-max_len // block_t)
    g0 = _grid(B, n_t)
    if rows_kernel:
        n_x = -(-N // block_t)
        if n_x + g0 > MAX_I32:
            raise ValueError(f"{n_x} tiles of x's {N} rows plus {g0} pad tiles exceed {MAX_I32} programs (grid axis 0)")
        args = (xv, ov, lengths, N, B, max_len, dw, sx, max_len * dw, dw, lengths.stride(0), word, n_x, n_t)
        _pack_rows(dev, (n_x + g0, n_d), args, consts, num_warps=warps, pdl=use_pdl)
        return
    args = (xv, ov, lengths, _starts_for(lengths, B, dev), N, B, max_len, dw, sx, max_len * dw, dw, lengths.stride(0),
            word, n_t)
    launcher(dev, (g0, n_d), args, consts, num_warps=warps, pdl=use_pdl)


# ---------------------------------------------------------------- unpack

def unpack_impl(packed, lengths, num_tokens, access, pdl=None):
    """The [N, *packed.shape[2:]] tensor (see unpack_seq): checks, N, allocation, launch; the common
    call (contiguous packed on a GPU, num_tokens given, pointer mode) as pack_impl's."""
    ps = packed.shape
    dev = packed.get_device()
    if (type(lengths) is _Tensor and type(num_tokens) is int and (dev >= 0 or cpu_interpreted(packed, lengths, None, None))
            and lengths.get_device() == dev and (access is None and _access._default == _access.POINTER
                                                 or access == "pointer")
            and (pdl is None or type(pdl) is bool) and packed.is_contiguous() and len(ps) > 1):
        B, L = ps[0], ps[1]
        if lengths.shape == (B,) and B > 0 and 0 < L <= MAX_I32 and 0 < num_tokens <= MAX_I32:
            dt = packed.dtype
            tiled = -1 if B > INLINE_MAX_B else 0
            plan = _fast_plans.get((ps[2:], 1 << (L - 1).bit_length(), tiled, dt, lengths.dtype, dev, True, pdl))
            if plan is None:
                plan = _fast_plan(ps[2:], 1 << (L - 1).bit_length(), tiled, dt, lengths.dtype, dev, True, pdl)
            if plan is not None:
                w, dw, small_rows, small, big = plan
                block_t, _, warps, consts, meta, n_d, use_pdl, _ = small if B * L <= small_rows else big
                n_t = -(-L // block_t)
                out = _alloc(packed, (num_tokens,) + ps[2:])
                if (packed.data_ptr() | out.data_ptr()) & (w - 1) == 0 and L * dw <= MAX_I32 and B * n_t <= MAX_I32:
                    starts = lengths if B <= INLINE_MAX_B else _starts_for(lengths, B, dev)
                    args = (packed, out, out, lengths, starts, num_tokens, B, L, dw, L * dw, dw, dw, lengths.stride(0),
                            n_t)
                    if not _unpack.fast(dev, meta, B * n_t, n_d, *args):
                        _unpack(dev, (B * n_t, n_d), args, consts, num_warps=warps, pdl=use_pdl)
                    return out
    return _unpack_careful(packed, lengths, num_tokens, access, pdl)


def _unpack_careful(packed, lengths, num_tokens, access, pdl):
    check_unpack(packed, lengths, num_tokens)
    check_runnable(packed, "packed")
    use_pdl = resolve_pdl(pdl, packed.get_device())  # also refuses a pdl that is not a bool or None
    B, L = packed.shape[0], packed.shape[1]
    p3, D = _rows(packed, "packed", 2)
    if num_tokens is None:
        num_tokens = _lengths_stats(lengths, True)[1]
    out = _alloc(packed, (num_tokens,) + tuple(packed.shape[2:]))
    if out.numel() == 0 or B == 0 or L == 0:  # no packed row to copy: any rows are zero
        _access.resolve(access, [])
        return out.zero_()
    e = packed.dtype.itemsize
    st = p3.stride(1) if L > 1 else D  # strides of a single sequence or token are immaterial
    sb = p3.stride(0) if B > 1 else L * st
    w = _word_bytes(D * e, sb * e, st * e, p3.data_ptr(), p3.storage_offset() * e, out.data_ptr())
    dw, sb, st = D * e // w, sb * e // w, st * e // w
    if L * max(st, dw) > MAX_I32:
        raise ValueError(f"packed's sequences span {L} x {max(st, dw)} words of {w} bytes, over {MAX_I32} "
                         f"(int32 offsets within a sequence)")
    pw = p3.as_strided((B, L, D), (sb * w // e, st * w // e, 1)).view(_WORDS[w])
    o2 = out.view(num_tokens, D).view(_WORDS[w])
    dev = packed.get_device()
    mode, plan = _careful_plan(access, dw, w, L, B, B * L, packed.dtype, lengths.dtype, dev, True, use_pdl,
                               lambda bd: [("packed", pw, [sb, st], bd), ("out", o2, dw, bd)])
    if mode == _access.DESCRIPTOR:
        from triton.tools.tensor_descriptor import TensorDescriptor
        block_t, block_d = plan[0], plan[1]
        pv = TensorDescriptor(pw, [B, L, dw], [sb, st, 1], [1, block_t, block_d])
        ov = TensorDescriptor(o2, [num_tokens, dw], [dw, 1], [block_t, block_d])
        _launch_unpack(out, lengths, B, num_tokens, L, dw, sb, st, dw, plan, dev, pv, ov, _unpack_desc)
    else:
        _launch_unpack(out, lengths, B, num_tokens, L, dw, sb, st, dw, plan, dev, p3, out, _unpack)
    return out


def _launch_unpack(out, lengths, B, N, L, dw, sb, st, so, plan, dev, pv, ov, launcher) -> None:
    block_t, _, warps, consts, _, n_d, use_pdl, _ = plan
    n_t = -(-L // block_t)
    g0 = _grid(B, n_t)
    args = (pv, ov, out, lengths, _starts_for(lengths, B, dev), N, B, L, dw, sb, st, so, lengths.stride(0), n_t)
    launcher(dev, (g0, n_d), args, consts, num_warps=warps, pdl=use_pdl)


# ---------------------------------------------------------------- public ops

def pack_seq(x: torch.Tensor, lengths: torch.Tensor, pad_value: float = float("-inf"), *, max_len: int | None = None,
             access: str | None = None, pdl: bool | None = None) -> torch.Tensor:
    """Pad B sequences stored back to back into one [B, Lmax, ...] tensor. Not in place.

    x [N, ...] (any trailing shape, rows contiguous, token stride arbitrary) of float16, bfloat16,
    float32, float8 (e4m3fn, e5m2, and the fnuz variants) or uint8; lengths [B] int32/int64 on x's
    device: sequence b is rows [start_b, start_b + lengths[b]) of x, start_b the sum of the lengths
    before it. Returns out [B, Lmax, *x.shape[1:]] of x's dtype: out[b, t] = x[start_b + t] for
    t < lengths[b], pad_value elsewhere. A pure copy of bit patterns: bit-exact for every dtype.

    Lmax = max_len when given: no host synchronisation (CUDA-graph safe), and a sequence longer than
    max_len is truncated to its first max_len tokens; else max(lengths), which reads lengths on the
    host (one sync) and refuses a negative length. Without that sync a negative length counts as 0.
    Rows past x's end are never read: a token whose row would be at or past N is padding.

    pad_value is stored as torch.tensor(pad_value, dtype=x.dtype) rounds it (NaN, -0.0 and their
    bits kept). float8_e4m3fn has no infinity: torch 2.13 rounds -inf to -448 (bits 0xFE), the most
    negative finite value; the fnuz types give their NaN (0x80). uint8 x needs an exact byte 0..255
    (the default -inf, 3.5 or 300 raise ValueError). access: "pointer" (default), "block_ptr",
    "descriptor" (TMA; 16-byte aligned rows). pdl: programmatic dependent launch (None: where the
    GPU has it, sm90+); never changes the result.

    >>> x = torch.randn(7, 8, 128, device="cuda", dtype=torch.bfloat16)
    >>> lengths = torch.tensor([3, 0, 4], device="cuda")
    >>> p = lmkernels.pack_seq(x, lengths, 0.0, max_len=4)  # [3, 4, 8, 128]; p[1] and p[0, 3] are 0
    """
    if use_dispatcher(x):
        if type(pad_value) not in (float, int):
            check_pack(x, lengths, pad_value, max_len)  # raises, naming pad_value
        return torch.ops.lmkernels.pack_seq(x, lengths, float(pad_value), max_len, access, pdl)
    return pack_impl(x, lengths, pad_value, max_len, access, pdl)


def unpack_seq(packed: torch.Tensor, lengths: torch.Tensor, *, num_tokens: int | None = None,
               access: str | None = None, pdl: bool | None = None) -> torch.Tensor:
    """The inverse of pack_seq: the first lengths[b] tokens of each packed[b], back to back. Not in place.

    packed [B, Lmax, ...] (rows contiguous, batch and token strides arbitrary), dtypes as pack_seq;
    lengths [B] int32/int64 on packed's device. Returns out [N, *packed.shape[2:]]: out[start_b + t]
    = packed[b, t] for t < min(lengths[b], Lmax); rows of packed past a sequence's length are not
    read (descriptor mode: but for the rest of its last box). N = num_tokens when given: no host synchronisation (CUDA-graph safe); rows at or past N are
    not written, and out rows that no packed row fills (tokens past Lmax of a longer sequence, rows
    past sum(lengths)) are 0. Without num_tokens, N = sum(lengths): one host sync, which also
    refuses a negative length (otherwise counted as 0). unpack_seq(pack_seq(x, l), l) == x bit for bit.
    access and pdl as for pack_seq.

    >>> x2 = lmkernels.unpack_seq(p, lengths, num_tokens=7)  # p, lengths as in pack_seq's example; x2 == x
    """
    if not isinstance(packed, torch.Tensor):
        raise TypeError(f"packed must be a torch.Tensor, got {type(packed).__name__}")
    if use_dispatcher(packed):
        return torch.ops.lmkernels.unpack_seq(packed, lengths, num_tokens, access, pdl)
    return unpack_impl(packed, lengths, num_tokens, access, pdl)
