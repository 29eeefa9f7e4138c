"""Attention-state merging and the context-parallel correction: two elementwise kernels over
[rows, heads, head_size] attention outputs, scaled per (row, head) by weights computed from LSEs.

Both compute, per (row, head), from log-sum-exps (LSEs) of attention states over disjoint key sets:
  m = max_i lse_i, shift = m (0 where m = -inf), w_i = exp(lse_i - shift), L = shift + log(sum_i w_i)
in fp32, and scale outputs by exp(lse_i - L) (merge: w_i / sum w). An LSE that is NaN or +inf is
taken as -inf: a state with no keys. A state whose LSE is -inf contributes exactly 0, selected, not
multiplied: its output may hold NaN or garbage (an empty shard's accumulator), and 0 * NaN is NaN.
When every state is -inf, sum w = 0, L = 0 + log(0) = -inf and the output is 0.

_merge_attn_states_kernel: program (t, g) takes token t, heads [g BLOCK_H, (g + 1) BLOCK_H), the
whole head dim in chunks of BLOCK_D: out = p * w_p / W + s * w_s / W (vLLM's formula, W = w_p + w_s).

_correct_attn_out_kernel: N ranks' LSEs lses[n, b, h]; out[b, h] *= exp(lses[cp_rank, b, h] - L).
The heads are seen as n_split chunks of `heads` ([B, n_split, heads, D]), so that the corrected
output can go straight into a [n_split, B, heads, D] buffer whose rank chunks a reduce-scatter
takes without a transpose (ops/context_parallel.py); the public op uses n_split = 1. The sum over
ranks is a static loop in rank order (N is a constexpr: one compile per group size): no layout
decides its order, and its N loads are independent straight-line code, in flight together.

Outputs are tiles through kernels/access.py (ACCESS constexpr); the LSEs are per-head scalars read
with plain pointers in every mode (access.load_strided), so every mode computes the same weights
and all modes give bit-identical results. The pointer mode widens its tile offsets to int64, so a
head stride times a head index past 2^31 elements (a heads-major layout) stays right.

Maths: fp32 after every load, exp/log (BASE_E) or exp2/log2 (base-2 LSEs), one rounding on store.
USE_PDL (sm90+; as kernels/norm.py): wait for the previous kernel before the first memory access,
then let the next one launch.
"""
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .access import POINTER, load_strided, load_tile_3d, load_tile_4d, store_strided, store_tile_3d, store_tile_4d


@triton.jit
def _clean_lse(x):
    """x in fp32 with NaN and +inf taken as -inf (a state without keys)."""
    x = x.to(tl.float32)
    return tl.where((x != x) | (x == float("inf")), float("-inf"), x)


@triton.jit
def _exp(x, BASE_E: tl.constexpr):
    if BASE_E:
        return tl.exp(x)
    else:
        return tl.exp2(x)


@triton.jit
def _log(x, BASE_E: tl.constexpr):
    if BASE_E:
        return tl.log(x)
    else:
        return tl.log2(x)


@triton.jit
def _merge_tile(p, s, wp, ws, keep_p, keep_s):
    """p w_p + s w_s in fp32, each term 0 (selected) where its state has no keys."""
    return tl.where(keep_p, p.to(tl.float32) * wp, 0.0) + tl.where(keep_s, s.to(tl.float32) * ws, 0.0)


@triton.jit(do_not_specialize=["n_tokens"])  # T moves every step: no recompiles
def _merge_attn_states_kernel(out_view, p_view, s_view, p_lse_ptr, s_lse_ptr, o_lse_ptr, n_tokens, H,
                              stride_ot, stride_oh, stride_pt, stride_ph, stride_st, stride_sh,
                              stride_plh, stride_plt, stride_slh, stride_slt, stride_olh, stride_olt,
                              D: tl.constexpr, HAS_OUT_LSE: tl.constexpr, BLOCK_H: tl.constexpr,
                              BLOCK_D: tl.constexpr, ACCESS: tl.constexpr, USE_PDL: tl.constexpr):
    """out [T, H, D] <- merge of (p [T, H, D], p_lse [H, T]) and (s, s_lse); o_lse [H, T] <- the
    merged LSE when HAS_OUT_LSE. D (the head size) is a constexpr: fixed per model, and the compiler
    then sees which masks are all-true and which strides are 16-byte multiples."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    t64 = tl.program_id(0).to(tl.int64)
    h64 = tl.program_id(1).to(tl.int64) * BLOCK_H
    if ACCESS == POINTER:
        t = t64
        h0 = h64
    else:  # descriptors and block pointers take int32 coordinates (and address in 64 bits)
        t = tl.program_id(0)
        h0 = tl.program_id(1) * BLOCK_H
    # the first chunk's tiles before the LSEs: their loads need no weight, so all four are in flight together
    p = load_tile_3d(p_view, n_tokens, H, D, stride_pt, stride_ph, t, h0, 0, 1, BLOCK_H, BLOCK_D, ACCESS)
    s = load_tile_3d(s_view, n_tokens, H, D, stride_st, stride_sh, t, h0, 0, 1, BLOCK_H, BLOCK_D, ACCESS)
    lp = _clean_lse(load_strided(p_lse_ptr + t64 * stride_plt, h64, H, stride_plh, BLOCK_H))
    ls = _clean_lse(load_strided(s_lse_ptr + t64 * stride_slt, h64, H, stride_slh, BLOCK_H))
    m = tl.maximum(lp, ls)
    shift = tl.where(m == float("-inf"), 0.0, m)
    ep = tl.exp(lp - shift)
    es = tl.exp(ls - shift)
    total = ep + es  # in [1, 2] unless both are -inf (then 0: the weights are NaN and never selected)
    wp = (ep / total)[None, :, None]
    ws = (es / total)[None, :, None]
    keep_p = (lp > float("-inf"))[None, :, None]
    keep_s = (ls > float("-inf"))[None, :, None]
    store_tile_3d(out_view, _merge_tile(p, s, wp, ws, keep_p, keep_s), n_tokens, H, D, stride_ot, stride_oh,
                  t, h0, 0, 1, BLOCK_H, BLOCK_D, ACCESS)
    if HAS_OUT_LSE:
        store_strided(o_lse_ptr + t64 * stride_olt, shift + tl.log(total), h64, H, stride_olh, BLOCK_H)
    for d0 in tl.static_range(BLOCK_D, D, BLOCK_D):  # head sizes above BLOCK_D (256): further chunks
        p = load_tile_3d(p_view, n_tokens, H, D, stride_pt, stride_ph, t, h0, d0, 1, BLOCK_H, BLOCK_D, ACCESS)
        s = load_tile_3d(s_view, n_tokens, H, D, stride_st, stride_sh, t, h0, d0, 1, BLOCK_H, BLOCK_D, ACCESS)
        store_tile_3d(out_view, _merge_tile(p, s, wp, ws, keep_p, keep_s), n_tokens, H, D, stride_ot, stride_oh,
                      t, h0, d0, 1, BLOCK_H, BLOCK_D, ACCESS)


@triton.jit(do_not_specialize=["n_rows", "cp_rank"])  # B moves every step; a rank of 1 gets no variant of its own
def _correct_attn_out_kernel(src_view, dst_view, lses_ptr, lse_out_ptr, n_rows, n_split, heads,
                             stride_sb, stride_sw, stride_sh, stride_db, stride_dw, stride_dh,
                             stride_ln, stride_lb, stride_lh, cp_rank,
                             N: tl.constexpr, D: tl.constexpr, BASE_E: tl.constexpr, BLOCK_H: tl.constexpr,
                             BLOCK_D: tl.constexpr, ACCESS: tl.constexpr, USE_PDL: tl.constexpr):
    """dst[b, w, h] <- src[b, w, h] * exp(lses[cp_rank, b, w heads + h] - L[b, w heads + h]) over the
    [B, n_split, heads, D] views of src and dst (each with its own strides; dst may be src), and
    lse_out [B, n_split * heads] (contiguous) <- L. Program (b, j): row b, chunk w = j // groups,
    heads [g BLOCK_H, (g + 1) BLOCK_H) of it with g = j % groups, groups = cdiv(heads, BLOCK_H)."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    groups = tl.cdiv(heads, BLOCK_H)
    w32 = tl.program_id(1) // groups
    b64 = tl.program_id(0).to(tl.int64)
    w64 = w32.to(tl.int64)
    h64 = (tl.program_id(1) - w32 * groups).to(tl.int64) * BLOCK_H
    if ACCESS == POINTER:
        b = b64
        w = w64
        h0 = h64
    else:
        b = tl.program_id(0)
        w = w32
        h0 = (tl.program_id(1) - w32 * groups) * BLOCK_H
    x = load_tile_4d(src_view, n_rows, n_split, heads, D, stride_sb, stride_sw, stride_sh, b, w, h0, 0,
                     1, 1, BLOCK_H, BLOCK_D, ACCESS)
    # LSE index of this tile's heads in [B, n_split * heads]: w heads + h, for h < heads
    hw0 = w64 * heads + h64
    hw_end = w64 * heads + heads
    row = lses_ptr + b64 * stride_lb
    m = tl.full([BLOCK_H], float("-inf"), tl.float32)
    mine = tl.full([BLOCK_H], float("-inf"), tl.float32)
    ptr = row
    for n in tl.static_range(N):
        lse = _clean_lse(load_strided(ptr, hw0, hw_end, stride_lh, BLOCK_H))
        m = tl.maximum(m, lse)
        mine = tl.where(cp_rank == n, lse, mine)
        ptr += stride_ln
    shift = tl.where(m == float("-inf"), 0.0, m)
    total = tl.zeros([BLOCK_H], tl.float32)
    ptr = row
    for n in tl.static_range(N):  # the same loads again (cache hits), summed in rank order
        total += _exp(_clean_lse(load_strided(ptr, hw0, hw_end, stride_lh, BLOCK_H)) - shift, BASE_E)
        ptr += stride_ln
    lse_all = shift + _log(total, BASE_E)  # -inf when every rank is empty
    store_strided(lse_out_ptr + b64 * (n_split * heads), lse_all, hw0, hw_end, 1, BLOCK_H)
    factor = _exp(mine - lse_all, BASE_E)[None, None, :, None]
    keep = (mine > float("-inf"))[None, None, :, None]
    store_tile_4d(dst_view, tl.where(keep, x.to(tl.float32) * factor, 0.0), n_rows, n_split, heads, D,
                  stride_db, stride_dw, stride_dh, b, w, h0, 0, 1, 1, BLOCK_H, BLOCK_D, ACCESS)
    for d0 in tl.static_range(BLOCK_D, D, BLOCK_D):
        x = load_tile_4d(src_view, n_rows, n_split, heads, D, stride_sb, stride_sw, stride_sh, b, w, h0, d0,
                         1, 1, BLOCK_H, BLOCK_D, ACCESS)
        store_tile_4d(dst_view, tl.where(keep, x.to(tl.float32) * factor, 0.0), n_rows, n_split, heads, D,
                      stride_db, stride_dw, stride_dh, b, w, h0, d0, 1, 1, BLOCK_H, BLOCK_D, ACCESS)
