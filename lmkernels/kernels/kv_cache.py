"""Paged KV-cache write: reshape_and_cache_flash (vLLM's), copies and fp8 quantisation in one body.

Layout. key and value are [n, H, D] views (token stride and head stride free, last dim contiguous:
slices of a [T, 3, H, D] qkv tensor are fine). The caches are logical [num_blocks, block_size, H, D]
with strides (stride_cb, stride_co, stride_ch, 1): NHD ([nb, bs, H, D] contiguous) and HND ([nb, H,
bs, D] contiguous, transposed) are both just strides; key and value caches share them. Token t
goes to slot = slot_mapping[t]: block slot // block_size, offset slot % block_size.

Skipping. A negative slot, or one at or beyond num_blocks x block_size, is never written: its
block index becomes num_blocks, one past the last, which every access mode leaves unwritten (the
pointer mask, block_ptr's boundary check, the TMA box clipped whole). Tokens at or past n (the
slot_mapping's length; CUDA-graph padding beyond it) are neither read nor written.

Values. FP8 == 0: a copy, rounded once to the cache's dtype on store (bit-exact when the dtypes are
equal). FP8 == 1 (e4m3fn) / 2 (e5m2): q = x / scale in fp32 with IEEE division (tl.math.div_rn:
torch's CUDA division is IEEE, and q is then rounded to 3 mantissa bits, so an approximate quotient
1 ulp off would flip the fp8 result wherever q sits within 1 fp32 ulp of an fp8 midpoint; the
interpreter's div_rn is numpy's, also IEEE), then clamped to +-448 / +-57344 (NaN kept, +-inf
saturated), then one round-to-nearest-even cast. The fp8 bits go into an fp8 or a uint8 cache.

SOFT_FP8: fp8 bits from integer arithmetic (_fp8_soft) instead of the cast, bit-identical to it.
On where the cast cannot be trusted or compiled: the interpreter's own fp32 -> fp8 cast rounds half
up, drops the carry into the exponent (e4m3: 124.6 -> 64 where 128 is right) and makes NaN 384;
Triton refuses fp8e4nv below sm89 (those GPUs get uint8 views of fp8 caches), and its
conversions there and on AMD are not documented as one round-to-nearest-even step. On sm89+ the
cast is cvt.rn.satfinite, one instruction for two values.
"""
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .access import bitcast_to, load_index, load_strided, load_tile_3d, store_rows_4d

COPY: tl.constexpr = tl.constexpr(0)
E4M3: tl.constexpr = tl.constexpr(1)
E5M2: tl.constexpr = tl.constexpr(2)


@triton.jit
def _fp8_soft(q, MBITS: tl.constexpr, EMIN: tl.constexpr, BIAS: tl.constexpr, SUB_SCALE: tl.constexpr):
    """uint8 bits of q (fp32 within the format's finite range, or NaN) rounded to the nearest fp8
    value, ties to even, in integer and exact fp32 arithmetic (SOFT_FP8).

    Rounding: the fp8 spacing at |q| is 2^(max(e, EMIN) - MBITS), e = floor(log2 |q|); adding
    c = 2^23 times that spacing leaves |q| rounded to a multiple of it in the sum's last bits (the
    fp32 add rounds to nearest even), and subtracting c again is exact. Encoding: a normal r keeps
    its top MBITS mantissa bits under exponent e + BIAS; a subnormal one (e < EMIN, zero included)
    is r / 2^(EMIN - MBITS), an integer below 2^MBITS (SUB_SCALE = 2^(MBITS - EMIN)). The sign is
    put back as a bit (Triton's -r is 0 - r, +0.0 at r = 0, where -0.0 must give 0x80); NaN is 0x7F."""
    bits = q.to(tl.int32, bitcast=True)
    mag = bits & 0x7FFFFFFF
    e = (mag >> 23) - 127  # -127 for zero and fp32 subnormals: max() takes EMIN there
    c = ((tl.maximum(e, EMIN) - MBITS + 150) << 23).to(tl.float32, bitcast=True)
    r = (mag.to(tl.float32, bitcast=True) + c) - c
    rbits = r.to(tl.int32, bitcast=True)
    re = (rbits >> 23) - 127
    normal = ((re + BIAS) << MBITS) | ((rbits >> (23 - MBITS)) & ((1 << MBITS) - 1))
    sub = (tl.where(re >= EMIN, 0.0, r) * SUB_SCALE).to(tl.int32)  # NaN has re = 128: never cast to int
    out = tl.where(re >= EMIN, normal, sub) | ((bits >> 24) & 0x80)
    return tl.where(q != q, 0x7F, out).to(tl.uint8)


@triton.jit
def _quantise(x, scale, FP8: tl.constexpr, HAS_SCALE: tl.constexpr, SOFT_FP8: tl.constexpr):
    """fp8 bits (uint8) of saturate(x / scale); scale is [1, BLOCK_H, 1] (per head or broadcast).
    Saturation before the cast: clamp with NaN propagated (tl.maximum alone would turn NaN into
    -448 on a GPU, whose max.f32 returns the non-NaN operand)."""
    q = x.to(tl.float32)
    if HAS_SCALE:
        q = tl.math.div_rn(q, scale)
    if FP8 == E4M3:
        q = tl.clamp(q, -448.0, 448.0, propagate_nan=tl.PropagateNan.ALL)
        if SOFT_FP8:
            bits = _fp8_soft(q, 3, -6, 7, 512.0)
        else:  # cvt.rn.satfinite.e4m3x2.f32 on sm89+: round to nearest even
            bits = q.to(tl.float8e4nv).to(tl.uint8, bitcast=True)
    else:
        q = tl.clamp(q, -57344.0, 57344.0, propagate_nan=tl.PropagateNan.ALL)
        if SOFT_FP8:
            bits = _fp8_soft(q, 2, -14, 15, 65536.0)
        else:
            bits = q.to(tl.float8e5).to(tl.uint8, bitcast=True)
    return bits


# n changes every step: no recompile, no n == 1 variant. num_blocks (any count an engine allocates)
# and stride_slot (1 for every contiguous slot_mapping) gain nothing from Triton's % 16 and == 1
# variants, and leaving them out keeps a launch on the launcher's common-case key (runtime/launch.py)
@triton.jit(do_not_specialize=["n_tokens", "num_blocks", "stride_slot"])
def _reshape_and_cache_kernel(key_ptr, value_ptr, kc_ptr, vc_ptr, slot_ptr, n_tokens, ks_ptr, vs_ptr,
                              num_blocks, block_size,
                              stride_kt, stride_kh, stride_vt, stride_vh, stride_cb, stride_co, stride_ch,
                              stride_slot, stride_ks, stride_vs,
                              H: tl.constexpr, D: tl.constexpr, FP8: tl.constexpr, HAS_SCALE: tl.constexpr,
                              SOFT_FP8: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr,
                              BLOCK_D: tl.constexpr, ACCESS: tl.constexpr, USE_PDL: tl.constexpr,
                              HEAD_MAJOR: tl.constexpr):
    """Program (p, g) writes heads [g BLOCK_H, (g + 1) BLOCK_H) of tokens [p BLOCK_T, (p + 1) BLOCK_T).

    key_ptr, value_ptr, kc_ptr and vc_ptr are pointers, or host-made tensor descriptors of the
    [n, H, D] and [num_blocks, block_size, H, D] views when ACCESS is descriptor; slot_ptr, ks_ptr
    and vs_ptr are always pointers (a few scalars a program; the scales are per head with stride
    stride_ks, or one value with stride 0). H and D are constexprs (fixed per model): the compiler
    then drops the masks that are all-true and keeps 16-byte vectors.

    Pointer mode moves BLOCK_T tokens a program: one [BLOCK_T, BLOCK_H, BLOCK_D] load of key and
    one of value (all in flight together), then one scattered store each. block_ptr and descriptor
    address one box a store, so they run BLOCK_T = 1. HEAD_MAJOR (descriptor only): the caches'
    descriptors are over their memory order [num_blocks, H, block_size, D] (HND's), not the
    logical one (kernels/access.py store_rows_4d).
    """
    if USE_PDL:  # key, value, the slots or the cache may be the previous kernel's output
        gdc_wait()
        gdc_launch_dependents()
    # (no .to() on a runtime int below: Triton makes an int argument equal to 1 a constexpr, which has
    # none; a one-block cache would not compile)
    t0 = tl.program_id(0) * BLOCK_T
    h0 = tl.program_id(1) * BLOCK_H
    # the tiles first: their addresses need no slot, so they are in flight while the slots arrive
    k = load_tile_3d(key_ptr, n_tokens, H, D, stride_kt, stride_kh, t0, h0, 0, BLOCK_T, BLOCK_H, BLOCK_D, ACCESS)
    v = load_tile_3d(value_ptr, n_tokens, H, D, stride_vt, stride_vh, t0, h0, 0, BLOCK_T, BLOCK_H, BLOCK_D, ACCESS)
    if BLOCK_T == 1:  # t0 < n_tokens: the grid has one program a token
        slot = load_index(slot_ptr, t0, stride_slot).to(tl.int64)
        valid = (slot >= 0) & (slot // block_size < num_blocks)
    else:  # the last program's tokens past n read slot 0: the in-range test drops them
        slot = load_strided(slot_ptr, t0, n_tokens, stride_slot, BLOCK_T).to(tl.int64)
        in_range = t0 + tl.arange(0, BLOCK_T) < n_tokens
        valid = in_range & (slot >= 0) & (slot // block_size < num_blocks)
    blk = tl.where(valid, slot // block_size, num_blocks).to(tl.int32)
    off = tl.where(valid, slot % block_size, 0).to(tl.int32)
    if FP8 != COPY:
        if HAS_SCALE:
            # heads past H read 0 (x / 0 in lanes that are never stored)
            sk = load_strided(ks_ptr, h0, H, stride_ks, BLOCK_H)[None, :, None]
            sv = load_strided(vs_ptr, h0, H, stride_vs, BLOCK_H)[None, :, None]
        else:
            sk = 1.0
            sv = 1.0
        k = bitcast_to(kc_ptr, _quantise(k, sk, FP8, HAS_SCALE, SOFT_FP8), ACCESS)
        v = bitcast_to(vc_ptr, _quantise(v, sv, FP8, HAS_SCALE, SOFT_FP8), ACCESS)
    store_rows_4d(kc_ptr, k, num_blocks, block_size, H, D, stride_cb, stride_co, stride_ch, blk, off, h0,
                  BLOCK_T, BLOCK_H, BLOCK_D, ACCESS, HEAD_MAJOR)
    store_rows_4d(vc_ptr, v, num_blocks, block_size, H, D, stride_cb, stride_co, stride_ch, blk, off, h0,
                  BLOCK_T, BLOCK_H, BLOCK_D, ACCESS, HEAD_MAJOR)
