"""Sampling logprobs without a [B, V] intermediate: token_logprobs and token_ranks.

Both read the logits once, in segments of BLOCK_V columns, on a flat grid of n_rows x
progs_per_row streaming programs (program p of row b takes segments [p * segs_per_prog, ...)). A
second, small kernel combines a row's partials in a fixed order. The token gathers happen in the
first kernel (token_logprobs: n_rows gather programs ahead of the streaming ones; token_ranks: each
program loads its row's token logit), so the combine only reads freshly written partials.

token_logprobs keeps one (max, sum of exp) partial per *segment*, not per program: how segments are
dealt out to programs (which the host picks from B and the SM count) then cannot change a bit of
the result. A row's logprobs are the same whatever the batch it came in, the GPU's SM count, or the
access mode (checked on the H100), provided its storage is 16-byte aligned (base and row stride):
the fp32 sum within a segment follows the tile's register layout, and Triton lays out loads it
cannot vectorise differently. The combine is the online softmax over the segments, in segment order.

Logits rows are read through access.load_tile (ACCESS constexpr). The token gathers are plain
pointer loads in every mode: a gather of K scattered columns is not a tile any mode can address.

USE_PDL (programmatic dependent launch, sm90+; as in kernels/norm.py): every kernel waits for the
previous kernel in the stream before touching memory, then lets the next one launch. The combine's
programs are then resident and waiting when the partials land. H100, bf16, V = 151936, in CUDA
graphs: B = 256 token_logprobs 30.3 -> 29.2 µs, token_ranks 29.4 -> 28.2; B = 1 3.7 -> 2.7 and 2.8.
"""
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .access import load_tile

LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)
LN2: tl.constexpr = tl.constexpr(0.6931471805599453)


@triton.jit
def _pdl(USE_PDL: tl.constexpr):
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()


@triton.jit
def _program_segments(pid, V, segs_per_prog, progs_per_row, BLOCK_V: tl.constexpr):
    """(row, first segment, end of the whole segments, end of all segments) of streaming program pid."""
    row = pid // progs_per_row
    seg0 = (pid - row * progs_per_row) * segs_per_prog
    seg1 = tl.minimum(seg0 + segs_per_prog, tl.cdiv(V, BLOCK_V))
    return row, seg0, tl.minimum(seg1, V // BLOCK_V), seg1


@triton.jit
def _segment_lse(x, part_ptr, idx, n_parts):
    """Store the segment's max m (natural units) and sum(exp(x - m)) at part[idx], part[n_parts + idx].
    exp(d) is exp2(d * log2 e): one MUFU op an element. An all -inf segment stores (-inf, 0), not
    NaN: the shift is 0 there. A +inf logit gives inf - inf = NaN in the sum, as log_softmax does;
    so does a NaN (tl.max skips it, the sum does not).

    Both reductions run along axis 1 of the [1, BLOCK_V] tile, in its register layout. Not tl.sum(x)
    over all axes: that flattens the tile with can_reorder, and on the H100 the descriptor mode's
    sums then came out in another order than the pointer mode's (1 ulp apart)."""
    m = tl.max(x, axis=1)  # [1]
    shift = tl.where(m == float("-inf"), 0.0, m)
    one = tl.arange(0, 1)
    tl.store(part_ptr + idx + one, m)
    tl.store(part_ptr + n_parts + idx + one, tl.sum(tl.exp2((x - shift[:, None]) * LOG2E), axis=1))


@triton.jit
def _gather_row(x_ptr, ids_ptr, gx_ptr, row, V, K, stride_x, stride_ib, stride_ik, BLOCK_K: tl.constexpr):
    """gx[row, k] <- x[row, ids[row, k]] in fp32, NaN for an id outside [0, V) (nothing read for it)."""
    row = row.to(tl.int64)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        tok = tl.load(ids_ptr + row * stride_ib + k * stride_ik, mask=k < K, other=0).to(tl.int64)
        valid = (tok >= 0) & (tok < V) & (k < K)
        x = tl.load(x_ptr + row * stride_x + tok, mask=valid, other=0.0).to(tl.float32)
        tl.store(gx_ptr + row * K + k, tl.where(valid, x, float("nan")), mask=k < K)


@triton.jit(do_not_specialize=["n_rows", "K", "segs_per_prog", "progs_per_row"])  # B, K move every step: no recompiles
def _lse_partial_kernel(x_view, x_ptr, ids_ptr, part_ptr, n_rows, V, K, stride_xv, stride_ib, stride_ik,
                        segs_per_prog, progs_per_row, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr,
                        VEC: tl.constexpr, ACCESS: tl.constexpr, USE_PDL: tl.constexpr):
    """part fp32 <- [max | sum of exp(x - max)], each [n_rows, cdiv(V, BLOCK_V)], one pair per segment,
    then the gathered logits [n_rows, K].

    Programs 0..n_rows-1 only gather their row's K token logits (two dependent round trips, ids then
    logits): first in the grid, their latency passes while the streaming programs run, and the
    combine kernel then reads nothing but these fresh partials (H100, B = 256: the combine with the
    gathers in it took 2.1 µs, most of it those round trips). The other programs stream segments.

    Whole segments are loaded against n_cols = (V // BLOCK_V) * BLOCK_V, a multiple of BLOCK_V the
    compiler can see: the pointer mode's mask is then uniform over 16-byte groups and the loads stay
    vectorised whatever V is. Only the ragged last segment is masked against V (and set to -inf
    past it: load_tile zero-fills).

    The row stride comes as stride_xv = stride / VEC: VEC = 16 bytes of elements when the stride is
    a multiple of it (else 1), so the compiler sees 16-byte aligned rows even where Triton's own
    specialisation (divisible by 16 elements) cannot tell. The pointer mode then lays the tile out
    as TMA loads do, and the segment sums reduce in the same order (H100: bf16 rows of 1000, 16-byte
    but not 16-element aligned, summed in another order than the descriptor mode and came out 1 ulp
    apart). B = 1 passes stride 0: its row offset is 0 whatever the stride."""
    _pdl(USE_PDL)
    stride_x = stride_xv * VEC
    n_segs = tl.cdiv(V, BLOCK_V)
    n_parts = n_rows * n_segs
    if tl.program_id(0) < n_rows:
        _gather_row(x_ptr, ids_ptr, part_ptr + 2 * n_parts, tl.program_id(0), V, K, stride_x, stride_ib, stride_ik,
                    BLOCK_K)
    else:
        row, seg0, full_end, seg1 = _program_segments(tl.program_id(0) - n_rows, V, segs_per_prog, progs_per_row,
                                                      BLOCK_V)
        base = row * n_segs
        full_cols = (V // BLOCK_V) * BLOCK_V
        for seg in range(seg0, full_end):
            x = load_tile(x_view, n_rows, full_cols, stride_x, row, seg * BLOCK_V, 1, BLOCK_V, ACCESS)
            _segment_lse(x.to(tl.float32), part_ptr, base + seg, n_parts)
        if seg1 > full_end:  # this program owns the ragged last segment
            x = load_tile(x_view, n_rows, V, stride_x, row, full_cols, 1, BLOCK_V, ACCESS).to(tl.float32)
            cols = full_cols + tl.arange(0, BLOCK_V)[None, :]
            _segment_lse(tl.where(cols < V, x, float("-inf")), part_ptr, base + full_end, n_parts)


@triton.jit(do_not_specialize=["n_rows", "K"])
def _token_logprobs_kernel(part_ptr, out_ptr, n_rows, V, K, stride_ob, stride_ok, BLOCK_V: tl.constexpr,
                           BLOCK_SEG: tl.constexpr, BLOCK_K: tl.constexpr, USE_PDL: tl.constexpr):
    """One row a program: merge the row's segment partials in segment order (online softmax, BLOCK_SEG
    at a time), then out[b, k] = (x[b, id] - M) - ln(L) in fp32 from the gathered logits (NaN stays
    NaN: an invalid id). The first K block is loaded before the merge, so that its load and the
    partials' are in flight together."""
    _pdl(USE_PDL)
    row = tl.program_id(0).to(tl.int64)
    n_segs = tl.cdiv(V, BLOCK_V)
    n_parts = n_rows * n_segs
    gx_ptr = part_ptr + 2 * n_parts + row * K
    k = tl.arange(0, BLOCK_K)
    x_first = tl.load(gx_ptr + k, mask=k < K, other=0.0)
    M = tl.full([1], float("-inf"), tl.float32)
    L = tl.zeros([1], tl.float32)
    for j0 in range(0, n_segs, BLOCK_SEG):
        j = j0 + tl.arange(0, BLOCK_SEG)
        m_j = tl.load(part_ptr + row * n_segs + j, mask=j < n_segs, other=float("-inf"))
        l_j = tl.load(part_ptr + n_parts + row * n_segs + j, mask=j < n_segs, other=0.0)
        M_new = tl.maximum(M, tl.max(m_j))
        shift = tl.where(M_new == float("-inf"), 0.0, M_new)
        L = L * tl.exp2((M - shift) * LOG2E) + tl.sum(l_j * tl.exp2((m_j - shift) * LOG2E))
        M = M_new
    ln_L = tl.log2(L) * LN2  # -inf when the row is -inf everywhere: the logprobs are then NaN
    for k0 in range(0, K, BLOCK_K):
        x = tl.where(k0 == 0, x_first, tl.load(gx_ptr + k0 + k, mask=(k0 + k < K) & (k0 > 0), other=0.0))
        tl.store(out_ptr + row * stride_ob + (k0 + k) * stride_ok, (x - M) - ln_L, mask=k0 + k < K)


@triton.jit(do_not_specialize=["n_rows", "segs_per_prog", "progs_per_row"])
def _rank_partial_kernel(x_view, x_ptr, ids_ptr, part_ptr, n_rows, V, stride_x, stride_i, segs_per_prog,
                         progs_per_row, BLOCK_V: tl.constexpr, ACCESS: tl.constexpr, USE_PDL: tl.constexpr):
    """part [n_rows, progs_per_row] int32 <- #{v in this program's segments : x[b, v] >= x[b, token]},
    or -1 for an id outside [0, V) (every program of the row: the combine then reads no ids).

    The token's logit is one scalar gather (plain pointer x_ptr, whatever ACCESS); an invalid id
    reads nothing and counts nothing. Counts are integers, so a partial per program is exact
    however the row is split. NaN compares false: NaN logits never count, and a NaN at the token
    counts nothing (rank 0)."""
    _pdl(USE_PDL)
    row, seg0, full_end, seg1 = _program_segments(tl.program_id(0), V, segs_per_prog, progs_per_row, BLOCK_V)
    tok = tl.load(ids_ptr + row.to(tl.int64) * stride_i).to(tl.int64)
    valid = (tok >= 0) & (tok < V)
    t = tl.load(x_ptr + row.to(tl.int64) * stride_x + tok, mask=valid, other=0.0).to(tl.float32)
    full_end = tl.where(valid, full_end, seg0)
    seg1 = tl.where(valid, seg1, seg0)
    full_cols = (V // BLOCK_V) * BLOCK_V
    count = tl.zeros([1, BLOCK_V], tl.int32)
    for seg in range(seg0, full_end):
        x = load_tile(x_view, n_rows, full_cols, stride_x, row, seg * BLOCK_V, 1, BLOCK_V, ACCESS)
        count += (x.to(tl.float32) >= t).to(tl.int32)
    if seg1 > full_end:
        x = load_tile(x_view, n_rows, V, stride_x, row, full_cols, 1, BLOCK_V, ACCESS).to(tl.float32)
        cols = full_cols + tl.arange(0, BLOCK_V)[None, :]
        count += ((x >= t) & (cols < V)).to(tl.int32)
    tl.store(part_ptr + tl.program_id(0), tl.where(valid, tl.sum(count), -1))


@triton.jit(do_not_specialize=["n_rows", "progs_per_row"])
def _token_ranks_kernel(part_ptr, out_ptr, n_rows, stride_o, progs_per_row, BLOCK_P: tl.constexpr,
                        USE_PDL: tl.constexpr):
    """One row a program: rank = the sum of the row's counts (int64); -1 where they are -1 (invalid id)."""
    _pdl(USE_PDL)
    row = tl.program_id(0).to(tl.int64)
    total = tl.zeros([1], tl.int64)
    for p0 in range(0, progs_per_row, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        total += tl.sum(tl.load(part_ptr + row * progs_per_row + p, mask=p < progs_per_row, other=0).to(tl.int64))
    tl.store(out_ptr + row * stride_o + tl.arange(0, 1), tl.where(total < 0, -1, total))
