"""Ragged <-> padded sequence layouts for context parallel: pack_seq and unpack_seq. Pure copies.

Layout. x holds B sequences back to back, one token a row: the 2-D operand [N, D] (token stride
stride_xt); packed is the 3-D operand [B, Lmax, D] (strides stride_pb, stride_pt, 1). A row is the
flattened trailing dims, moved as WORD_BYTES-byte integers (access.as_words): the widest of 8, 4, 2,
1 that divides the row's bytes, the token strides and the base addresses (the host picks it), so
every dtype moves bit-exactly (NaN payloads, -0.0, fp8, uint8) and a bf16 row of 9216 elements is
2304 8-byte words, read in 16-byte vectors. D and the strides below are in words.

Two pack kernels. _pack_rows_kernel (pointer mode, B <= INLINE_MAX_B: the common call) indexes
its data programs by x's rows, so that their load does not wait for the lengths: program r0 loads x
rows [r0, r0 + BLOCK_T) at once and, in parallel, all the lengths (one BLOCK_B-wide load); their
inclusive cumsum `ends` gives each row r its sequence b = #{ends <= r} (empty sequences skipped) and
start (the largest end <= r, or 0); the row goes to out[b, r - start] when r - start < Lmax. Its
other programs, one a packed (b, token tile), store the pad rows (t >= the sequence's valid count)
and read only the lengths. Every x row is read once, a truncated sequence's rows past Lmax too
(loaded before the lengths say so, then dropped). At decode this takes one L2 round trip off each
program's chain (H100, B = 64, Lmax = 4, 9216-element rows: 3.46 -> 2.98 µs rotated, with the
one-warp tiles of ops/packing.py small_config; benchmarks/results/h100/probe_pack_rule.md).
_pack_kernel (the other access modes, and B > INLINE_MAX_B) and _unpack_kernel index programs by
the packed tile: grid axis 0 is (sequence b, token tile) with the token tiles of a sequence
adjacent, axis 1 the word tiles of a row. Program (b, tt, dt) owns the [BLOCK_T, BLOCK_D] tile at
tokens [tt BLOCK_T, ...) of sequence b, words [dt BLOCK_D, ...) of a row.

Sequence starts without a serial loop. start_b = sum(max(lengths[i], 0) for i < b) is a masked sum
over lengths[0:b] in BLOCK_B-wide vectors (one L2-resident load for B <= BLOCK_B, at most
INLINE_MAX_B / BLOCK_B of them: ops/packing.py), computed by every program at the cost of one
load; a negative length counts as 0. Beyond INLINE_MAX_B sequences the per-program sums would cost
O(B) each, so _seq_starts_kernel first writes every start (one program a BLOCK_B sequences, each
summing the blocks before its own, then a tl.cumsum) and the copy reads start_b (HAS_STARTS).

Which rows hold data. pack: token t of sequence b is x row start_b + t where t < len_b, t < Lmax
(a longer sequence is truncated) and start_b + t < N (x's end: rows past it are never read);
everything else in the packed tile is the pad word. unpack: out row start_b + t comes from
packed[b, t] where t < min(len_b, Lmax); out rows that no packed row fills (tokens of a sequence
past Lmax, and for the last sequence the rows past sum(lengths) up to num_tokens) are written 0.
In the tile-indexed kernels each program writes only its own sequence's rows: pointer and
block_ptr bound their tiles with the sequence's row limits; descriptor boxes clip at the tensor's
shape only, so unpack stores a sequence's partial last tile through pointers (the box load stays:
its extra rows are replaced).

A tile with no data (all pad) loads from an out-of-bounds row: nothing is read in any mode (TMA
fills out-of-bounds boxes without touching memory), so _pack_kernel reads only the tokens it copies.

USE_PDL (programmatic dependent launch, sm90+): every operand, the lengths included, may be the
previous kernel's output, so nothing is read before gdc_wait; then the next kernel may launch
(H100, decode B = 64, Lmax = 4, 9216-element rows: pack 4.04 -> 3.43 µs, unpack 4.00 -> 3.34).
Prefetching unpack's packed tile into L2 before the wait (as rms_norm does) was tried: +0.13 and
-0.09 µs on the two decode rows (benchmarks/results/h100/probe_prefetch.md), so it is not done.
"""
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .access import (DESCRIPTOR, POINTER, as_words, load_index, load_strided, load_tile, load_tile_3d, store_tile,
                     store_tile_3d)


@triton.jit
def _lengths_before(len_ptr, i_end, stride_l, BLOCK_B: tl.constexpr):
    """sum(max(lengths[i], 0) for i < i_end) as int64: BLOCK_B lengths a load, summed across the block."""
    acc = tl.zeros([BLOCK_B], dtype=tl.int64)
    for i0 in range(0, i_end, BLOCK_B):
        acc += tl.maximum(load_strided(len_ptr, i0, i_end, stride_l, BLOCK_B).to(tl.int64), 0)
    return tl.sum(acc, axis=0)


@triton.jit
def _sequence(len_ptr, starts_ptr, b, stride_l, BLOCK_B: tl.constexpr, HAS_STARTS: tl.constexpr):
    """(first row of sequence b in the ragged layout, its length), int64, a negative length as 0."""
    length = tl.maximum(load_index(len_ptr, b, stride_l).to(tl.int64), 0)
    if HAS_STARTS:
        start = load_index(starts_ptr, b, 1)
    else:
        start = _lengths_before(len_ptr, b, stride_l, BLOCK_B)
    return start, length


@triton.jit(do_not_specialize=["n_seqs"])
def _seq_starts_kernel(len_ptr, starts_ptr, n_seqs, stride_l, BLOCK_B: tl.constexpr):
    """starts[i] = sum(max(lengths[j], 0) for j < i), int64, for i in this program's BLOCK_B sequences."""
    i0 = tl.program_id(0) * BLOCK_B
    carry = _lengths_before(len_ptr, i0, stride_l, BLOCK_B)
    lens = tl.maximum(load_strided(len_ptr, i0, n_seqs, stride_l, BLOCK_B).to(tl.int64), 0)
    starts = tl.cumsum(lens, axis=0) - lens + carry
    store_tile(starts_ptr, starts[None, :], 1, n_seqs, 0, 0, i0, 1, BLOCK_B, POINTER)


@triton.jit
def _packed_tokens(len_ptr, starts_ptr, b, n_rows, max_len, stride_l, BLOCK_B: tl.constexpr,
                   HAS_STARTS: tl.constexpr):
    """(start_b, n_valid): sequence b's first x row and how many of its tokens pack copies, the
    rest of its Lmax rows being pad: min(len_b, Lmax, rows left in x)."""
    start, length = _sequence(len_ptr, starts_ptr, b, stride_l, BLOCK_B, HAS_STARTS)
    return start, tl.minimum(tl.minimum(length, max_len), tl.maximum(n_rows - start, 0))


@triton.jit(do_not_specialize=["n_rows", "n_seqs", "max_len", "pad", "n_t_tiles"])
def _pack_kernel(x_view, out_view, len_ptr, starts_ptr, n_rows, n_seqs, max_len, row_words, stride_xt,
                 stride_ob, stride_ot, stride_l, pad, n_t_tiles,
                 BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_B: tl.constexpr, WORD_BYTES: tl.constexpr,
                 HAS_STARTS: tl.constexpr, ACCESS: tl.constexpr, USE_PDL: tl.constexpr = False):
    """out[b, t, :] = x[start_b + t, :] for t < n_valid, else the pad word (pad: its bits as a signed
    integer of WORD_BYTES bytes, or 0..255 for one byte). n_rows = N, max_len = Lmax."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    pid = tl.program_id(0)
    b = pid // n_t_tiles
    t0 = (pid - b * n_t_tiles) * BLOCK_T
    d0 = tl.program_id(1) * BLOCK_D
    start, n_valid = _packed_tokens(len_ptr, starts_ptr, b, n_rows, max_len, stride_l, BLOCK_B, HAS_STARTS)
    xw = as_words(x_view, WORD_BYTES, ACCESS)
    ow = as_words(out_view, WORD_BYTES, ACCESS)
    # rows past start + n_valid are not read (pointer, block_ptr: the bound; all modes: an all-pad
    # tile starts at row n_rows, past x's end); the descriptor's box may read the next sequence's
    # first rows in a partial tile, which the where below replaces
    row0 = tl.where(t0 < n_valid, start + t0, n_rows).to(tl.int32)
    v = load_tile(xw, start + n_valid, row_words, stride_xt, row0, d0, BLOCK_T, BLOCK_D, ACCESS)
    t = t0 + tl.arange(0, BLOCK_T)[:, None]
    v = tl.where(t < n_valid, v, pad)
    store_tile_3d(ow, v[None, :, :], n_seqs, max_len, row_words, stride_ob, stride_ot, b, t0, d0,
                  1, BLOCK_T, BLOCK_D, ACCESS)


@triton.jit
def _row_sequences(len_ptr, rows, n_rows, n_seqs, stride_l, BLOCK_B: tl.constexpr):
    """For each x row in `rows` (int64, [BLOCK_T]): (its sequence b, int32; its token t within it,
    int64), from all n_seqs <= BLOCK_B lengths in one load. A length counts as max(0, min(len, N)):
    the same rows below N, and the cumsum cannot overflow. Rows at or past sum(lengths) get
    b = BLOCK_B (>= n_seqs: no sequence)."""
    i = tl.arange(0, BLOCK_B)
    lens = tl.load(len_ptr + i.to(tl.int64) * stride_l, mask=i < n_seqs, other=0).to(tl.int64)
    ends = tl.cumsum(tl.minimum(tl.maximum(lens, 0), n_rows), axis=0)  # past n_seqs: the total
    before = ends[None, :] <= rows[:, None]  # [BLOCK_T, BLOCK_B]: sequences that end at or before r
    b = tl.sum(before.to(tl.int32), axis=1)
    start = tl.max(tl.where(before, ends[None, :], 0), axis=1)
    return b, rows - start


@triton.jit(do_not_specialize=["n_rows", "n_seqs", "max_len", "pad", "n_x_tiles", "n_t_tiles"])
def _pack_rows_kernel(x_ptr, out_ptr, len_ptr, n_rows, n_seqs, max_len, row_words, stride_xt, stride_ob, stride_ot,
                      stride_l, pad, n_x_tiles, n_t_tiles,
                      BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_B: tl.constexpr, WORD_BYTES: tl.constexpr,
                      USE_PDL: tl.constexpr = False):
    """pack_seq in pointer mode for n_seqs <= BLOCK_B (module docstring): programs [0, n_x_tiles)
    copy x rows, the next n_seqs x n_t_tiles store the pad rows of packed tiles (b, token tile)."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    pid = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < row_words
    xw = as_words(x_ptr, WORD_BYTES, POINTER)
    ow = as_words(out_ptr, WORD_BYTES, POINTER)
    if pid < n_x_tiles:
        rows = pid.to(tl.int64) * BLOCK_T + tl.arange(0, BLOCK_T)
        in_x = rows < n_rows
        v = tl.load(xw + rows[:, None] * stride_xt + cols[None, :], mask=in_x[:, None] & col_ok[None, :])
        b, t = _row_sequences(len_ptr, rows, n_rows, n_seqs, stride_l, BLOCK_B)
        keep = in_x & (b < n_seqs) & (t < max_len)
        dst = b.to(tl.int64) * stride_ob + t * stride_ot
        tl.store(ow + dst[:, None] + cols[None, :], v, mask=keep[:, None] & col_ok[None, :])
    else:
        q = pid - n_x_tiles
        seq = q // n_t_tiles
        tok = (q - seq * n_t_tiles) * BLOCK_T + tl.arange(0, BLOCK_T)
        n_valid = _packed_tokens(len_ptr, len_ptr, seq, n_rows, max_len, stride_l, BLOCK_B, False)[1]
        is_pad = (tok >= n_valid) & (tok < max_len)
        fill = tl.zeros([BLOCK_T, BLOCK_D], ow.dtype.element_ty) + pad.to(ow.dtype.element_ty)
        at = seq.to(tl.int64) * stride_ob + tok.to(tl.int64) * stride_ot
        tl.store(ow + at[:, None] + cols[None, :], fill, mask=is_pad[:, None] & col_ok[None, :])


@triton.jit(do_not_specialize=["n_rows", "n_seqs", "max_len", "n_t_tiles"])
def _unpack_kernel(packed_view, out_view, out_ptr, len_ptr, starts_ptr, n_rows, n_seqs, max_len, row_words,
                   stride_pb, stride_pt, stride_ot, stride_l, n_t_tiles,
                   BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_B: tl.constexpr, WORD_BYTES: tl.constexpr,
                   HAS_STARTS: tl.constexpr, ACCESS: tl.constexpr, USE_PDL: tl.constexpr = False):
    """out[start_b + t, :] = packed[b, t, :] for t < min(len_b, Lmax), 0 for the other rows sequence
    b owns (see the module docstring). n_rows = out's rows (num_tokens), max_len = Lmax.

    Rows past Lmax exist only for truncated sequences and the last one's tail: the token tiles of
    the sequence then stride on past Lmax (one pass of the loop in the common case)."""
    pid = tl.program_id(0)
    b = pid // n_t_tiles
    d0 = tl.program_id(1) * BLOCK_D
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    start, length = _sequence(len_ptr, starts_ptr, b, stride_l, BLOCK_B, HAS_STARTS)
    n_valid = tl.minimum(length, max_len)
    n_own = tl.where(b == n_seqs - 1, tl.maximum(length, n_rows - start), length)
    row_end = tl.minimum(start + n_own, n_rows)
    pw = as_words(packed_view, WORD_BYTES, ACCESS)
    ow = as_words(out_view, WORD_BYTES, ACCESS)
    for t0 in range((pid - b * n_t_tiles) * BLOCK_T, n_own, n_t_tiles * BLOCK_T):
        # a tile past the data loads at token max_len (out of bounds): nothing is read for it
        t_src = tl.where(t0 < n_valid, t0, max_len).to(tl.int32)
        v = load_tile_3d(pw, n_seqs, n_valid, row_words, stride_pb, stride_pt, b, t_src, d0,
                         1, BLOCK_T, BLOCK_D, ACCESS)
        t = t0 + tl.arange(0, BLOCK_T)[None, :, None]
        v = tl.reshape(tl.where(t < n_valid, v, 0), [BLOCK_T, BLOCK_D])
        row0 = tl.minimum(start + t0, n_rows).to(tl.int32)
        if ACCESS == DESCRIPTOR:
            if row0 + BLOCK_T > row_end:  # a box would spill into the next sequence's rows
                store_tile(as_words(out_ptr, WORD_BYTES, POINTER), v, row_end, row_words, stride_ot, row0, d0,
                           BLOCK_T, BLOCK_D, POINTER)
            else:
                store_tile(ow, v, row_end, row_words, stride_ot, row0, d0, BLOCK_T, BLOCK_D, ACCESS)
        else:
            store_tile(ow, v, row_end, row_words, stride_ot, row0, d0, BLOCK_T, BLOCK_D, ACCESS)
