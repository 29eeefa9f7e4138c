"""Rotary position embeddings, in place: standard (vLLM's rotary_embedding) and multimodal MRoPE
(Qwen2-VL sections, Qwen3-VL interleaved). One kernel body; MROPE, INTERLEAVED and IS_NEOX are
constexprs.

Layout. q is [T, NQ * HEAD] (or [T, NQ, HEAD]) with token stride stride_q, head stride HEAD and a
contiguous last dim; k likewise with NK heads. Only the first 2 * HALF dims of a head rotate; the
rest are never read or written. The cache is [max_pos, 2 * HALF]: cos in the first half, sin in
the second, read as the 3-D view [max_pos, 2, HALF] so a tile bounded by HALF never strays into
the other half.
  NeoX (pairs i, i + HALF): the 4-D view [T, NQ, 2, HALF] with strides (stride_q, HEAD, HALF, 1);
    x is the tile at [t, h, 0, :], y the tile at [t, h, 1, :]: two reads of HALF contiguous
    elements a head, bounded by HALF even where HALF is no power of two (head 80: HALF 40); the
    descriptor mode reads both in one [1, heads, 2, BLOCK_HALF] box (access.load_halves_4d).
  GPT-J (pairs 2i, 2i + 1): the 3-D view [T, NQ, 2 * HALF]; the tile is reshaped to [.., HALF, 2]
    and split into x and y, then joined back for the store.
Maths: fp32, x' = x c - y s, y' = y c + x s, one rounding on store.

Positions outside [0, max_pos) never index the cache (the row read is clamped to 0): the cos and
sin they would select are NaN instead, so a bad position shows as NaN in the rotated dims of that
token (MRoPE: in the pairs whose frequency takes its position from the bad one) rather than as
silently wrong numbers.
"""
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .access import load_halves_3d, load_halves_4d, load_index, load_tile_3d, store_halves_4d, store_tile_3d


@triton.jit
def _cos_sin_row(cache, p, max_pos, stride_c, HALF: tl.constexpr, BLOCK_HALF: tl.constexpr, ACCESS: tl.constexpr):
    """(cos, sin) of position p as fp32 [1, 1, BLOCK_HALF] tiles (0 past HALF); NaN if p is out of
    range, whose row is then never read (row 0 is, and discarded)."""
    valid = (p >= 0) & (p < max_pos)
    row = tl.where(valid, p, 0).to(tl.int32)
    c, s = load_halves_3d(cache, max_pos, HALF, stride_c, HALF, row, BLOCK_HALF, ACCESS)
    c = c.to(tl.float32)
    s = s.to(tl.float32)
    return tl.where(valid, c, float("nan")), tl.where(valid, s, float("nan"))


@triton.jit
def _cos_sin(pos_ptr, cache, t, max_pos, stride_ps, stride_pt, stride_c,
             HALF: tl.constexpr, MROPE: tl.constexpr, INTERLEAVED: tl.constexpr,
             SEC_T: tl.constexpr, SEC_H: tl.constexpr, SEC_W: tl.constexpr,
             BLOCK_HALF: tl.constexpr, ACCESS: tl.constexpr):
    """Token t's cos and sin per frequency j, fp32 [1, 1, BLOCK_HALF].

    MROPE: positions [3, T] (temporal, height, width; stride_ps between them). Frequency j takes
    its position from: sections: T if j < SEC_T, H if j < SEC_T + SEC_H, else W; interleaved: H if
    j % 3 == 1 and j < 3 SEC_H, W if j % 3 == 2 and j < 3 SEC_W, else T. The three rows are read
    whole (3 x 2 x HALF elements, L2-resident) and selected per frequency, which every access mode
    can address as tiles (a per-frequency gather could not go through a descriptor).
    """
    if MROPE:
        ct, st = _cos_sin_row(cache, load_index(pos_ptr, t, stride_pt), max_pos, stride_c, HALF, BLOCK_HALF, ACCESS)
        ch, sh = _cos_sin_row(cache, load_index(pos_ptr + stride_ps, t, stride_pt), max_pos, stride_c,
                              HALF, BLOCK_HALF, ACCESS)
        cw, sw = _cos_sin_row(cache, load_index(pos_ptr + 2 * stride_ps, t, stride_pt), max_pos, stride_c,
                              HALF, BLOCK_HALF, ACCESS)
        j = tl.arange(0, BLOCK_HALF)[None, None, :]
        if INTERLEAVED:
            from_h = (j % 3 == 1) & (j < 3 * SEC_H)
            from_w = (j % 3 == 2) & (j < 3 * SEC_W)
        else:
            from_h = (j >= SEC_T) & (j < SEC_T + SEC_H)
            from_w = j >= SEC_T + SEC_H
        cos = tl.where(from_h, ch, tl.where(from_w, cw, ct))
        sin = tl.where(from_h, sh, tl.where(from_w, sw, st))
    else:
        cos, sin = _cos_sin_row(cache, load_index(pos_ptr, t, stride_pt), max_pos, stride_c, HALF, BLOCK_HALF, ACCESS)
    return cos, sin


@triton.jit
def _load_pair(view, t, h0, n_tokens, stride_t, NH: tl.constexpr, HEAD: tl.constexpr, HALF: tl.constexpr,
               IS_NEOX: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_HALF: tl.constexpr, ACCESS: tl.constexpr):
    """(x, y) fp32 of heads [h0, h0 + BLOCK_H) of token t: [1, BLOCK_H, 1, BLOCK_HALF] for NeoX,
    [1, BLOCK_H, BLOCK_HALF] for GPT-J."""
    if IS_NEOX:
        x, y = load_halves_4d(view, n_tokens, NH, HALF, stride_t, HEAD, HALF, t, h0, BLOCK_H, BLOCK_HALF, ACCESS)
        x = x.to(tl.float32)
        y = y.to(tl.float32)
    else:
        v = load_tile_3d(view, n_tokens, NH, 2 * HALF, stride_t, HEAD, t, h0, 0,
                         1, BLOCK_H, 2 * BLOCK_HALF, ACCESS).to(tl.float32)
        x, y = tl.split(tl.reshape(v, [1, BLOCK_H, BLOCK_HALF, 2]))
    return x, y


@triton.jit
def _rotate_store(view, x, y, cos, sin, t, h0, n_tokens, stride_t, NH: tl.constexpr, HEAD: tl.constexpr,
                  HALF: tl.constexpr, IS_NEOX: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_HALF: tl.constexpr,
                  ACCESS: tl.constexpr):
    """x' = x c - y s and y' = y c + x s in fp32, stored where _load_pair read them (one rounding)."""
    if IS_NEOX:
        store_halves_4d(view, x * cos - y * sin, y * cos + x * sin, n_tokens, NH, HALF, stride_t, HEAD, HALF, t, h0,
                        BLOCK_H, BLOCK_HALF, ACCESS)
    else:
        out = tl.reshape(tl.join(x * cos - y * sin, y * cos + x * sin), [1, BLOCK_H, 2 * BLOCK_HALF])
        store_tile_3d(view, out, n_tokens, NH, 2 * HALF, stride_t, HEAD, t, h0, 0,
                      1, BLOCK_H, 2 * BLOCK_HALF, ACCESS)


@triton.jit(do_not_specialize=["n_tokens"])  # T changes every step: no recompile, no T == 1 variant
def _rope_kernel(pos_ptr, q_ptr, k_ptr, cache_ptr, n_tokens, max_pos, stride_ps, stride_pt, stride_q, stride_k,
                 stride_c, NQ: tl.constexpr, NK: tl.constexpr, HEAD: tl.constexpr, HALF: tl.constexpr,
                 IS_NEOX: tl.constexpr, MROPE: tl.constexpr, INTERLEAVED: tl.constexpr, SEC_T: tl.constexpr,
                 SEC_H: tl.constexpr, SEC_W: tl.constexpr, HAS_KEY: tl.constexpr, BLOCK_HQ: tl.constexpr,
                 BLOCK_HK: tl.constexpr, BLOCK_HALF: tl.constexpr, ACCESS: tl.constexpr,
                 USE_PDL: tl.constexpr = False):
    """Program (t, g) rotates q heads [g BLOCK_HQ, (g + 1) BLOCK_HQ) and k heads [g BLOCK_HK, ...)
    of token t, reading the token's position(s) and cos/sin once for all of them.

    The head count, head size and rotary size are constexprs (fixed per model, so one compile a
    model): the compiler then knows HEAD and HALF's divisibility (HALF = 40 is a multiple of 8: 16-
    byte vectors for bf16, which a runtime 40 would not give) and drops the masks that are all-true.
    q_ptr, k_ptr and cache_ptr are pointers, or host-made tensor descriptors of the views above when
    ACCESS is descriptor; pos_ptr is always a pointer (load_index).
    USE_PDL (programmatic dependent launch, sm90+): q and k are the QKV projection's output, so wait
    for the previous kernel before the first read, then let the next one launch (as kernels/norm.py).
    """
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    t = tl.program_id(0)
    g = tl.program_id(1)
    # q and k first: their addresses need no position, so their loads are in flight while the
    # position, then the cos/sin rows it selects, arrive (a chain of two dependent reads)
    qx, qy = _load_pair(q_ptr, t, g * BLOCK_HQ, n_tokens, stride_q, NQ, HEAD, HALF, IS_NEOX, BLOCK_HQ,
                        BLOCK_HALF, ACCESS)
    if HAS_KEY:
        kx, ky = _load_pair(k_ptr, t, g * BLOCK_HK, n_tokens, stride_k, NK, HEAD, HALF, IS_NEOX, BLOCK_HK,
                            BLOCK_HALF, ACCESS)
    cos, sin = _cos_sin(pos_ptr, cache_ptr, t, max_pos, stride_ps, stride_pt, stride_c, HALF, MROPE, INTERLEAVED,
                        SEC_T, SEC_H, SEC_W, BLOCK_HALF, ACCESS)
    if IS_NEOX:
        cos = tl.reshape(cos, [1, 1, 1, BLOCK_HALF])
        sin = tl.reshape(sin, [1, 1, 1, BLOCK_HALF])
    _rotate_store(q_ptr, qx, qy, cos, sin, t, g * BLOCK_HQ, n_tokens, stride_q, NQ, HEAD, HALF, IS_NEOX,
                  BLOCK_HQ, BLOCK_HALF, ACCESS)
    if HAS_KEY:
        _rotate_store(k_ptr, kx, ky, cos, sin, t, g * BLOCK_HK, n_tokens, stride_k, NK, HEAD, HALF, IS_NEOX,
                      BLOCK_HK, BLOCK_HALF, ACCESS)
