"""Rotary position embeddings, in place: rotary_embedding (vLLM's) and mrope (Qwen2-VL / Qwen3-VL).

Shape of the module (for library.py):
  rotary_embedding / mrope   public: refuse non-tensors, route to torch.ops.lmkernels.<name> while
                             torch.compile traces (or for fake/subclass tensors), else call *_into.
  rotary_into / mrope_into   what the registered ops call: every check, then one launch, no
                             dispatcher question. The common call (2-D q/k on a GPU, int64
                             positions, contiguous last dims, pointer mode) is recognised by a
                             straight-line fast branch and launched through Launcher.fast with a
                             plan cached on (shape facts, dtypes, device); anything else takes
                             _rope_careful, which explains what is wrong or resolves another mode.
  check_rotary / check_mrope shape/dtype/device checks only (no data, no strides): usable in the
                             registered ops' fake implementations. Both ops mutate query and key
                             (mutates_args=("query", "key")) and return nothing there.

Both ops launch kernels/rotary.py:_rope_kernel; mrope with positions [T] is rotary_embedding (the
same launch, so bit-identical).
"""
from __future__ import annotations

import math

import torch
import triton

from ..kernels.rotary import _rope_kernel
from ..runtime import access as _access
from ..runtime.launch import Launcher
from ._common import (FLOAT_DTYPES, check_float, check_runnable, check_same_device, cpu_interpreted, resolve_pdl,
                      use_dispatcher)

# pos, q, k, cache | n_tokens | max_pos, stride_ps, stride_pt, stride_q, stride_k, stride_c
_launch = Launcher(_rope_kernel, "tttt" "n" "iiiiii")
_launch_desc = Launcher(_rope_kernel, "tddd" "n" "iiiiii")  # access="descriptor"

POS_DTYPES = (torch.int64, torch.int32)
_Tensor, _I64 = torch.Tensor, torch.int64  # read by the hot path without an attribute lookup
# A program's q tile holds at most this many elements (heads x padded rotary dims): 32 heads of 128
# in one program; more heads split over grid axis 1 so that registers stay modest.
MAX_TILE = 4096
# Up to this many tokens, a token's heads are spread over 4 programs (decode and short prefill):
# H100, bf16 32 + 8 heads of 128, 4 programs x 4 warps against 1 x 8 warps: T = 1 1.44 µs / 1.78,
# T = 16 1.60 / 1.85, T = 64 2.57 / 3.03, T = 256 4.24 / 4.68; at T = 4096 one program a token
# is ahead (32.0 / 33.2 µs) (benchmarks/sweep_rotary.py).
SMALL_T = 256
SMALL_T_GROUPS = 4
# Elements of q and k a thread holds (sets the warps from the tile size). H100 sweep, same shapes:
# small T: 10 (4 warps above); rotary at T >= 4096: 20 (8 warps: 2.62 / 2.84 TB/s at T = 4096 /
# 16384 against 2.59 / 2.80 with 4); MRoPE: 40 (4 warps: 2.54 / 2.75 TB/s against 2.44 / 2.64
# with 8; its three cos/sin rows a token take registers and latency of their own).
PER_THREAD_SMALL, PER_THREAD_ROPE, PER_THREAD_MROPE = 10, 20, 40
# Descriptor mode: a program waits out each TMA copy it issues (q box, k box, then the position and
# its cos/sin box), so it is latency-bound and wants many small resident programs, not wide ones:
# H100, T = 4096, one program a token: 2 warps 33.6 µs, 4 warps 34.9, 8 warps 40.1 (pointer: 32.0);
# T = 1 with 4 programs: 2 warps 2.34 µs, 4 warps 2.38. x and y travel in one [1, heads, 2, rot/2]
# box (kernels/access.py load_halves_4d): 2.5x faster than a box each (99.8 -> 40.5 µs at 8 warps).
DESCRIPTOR_WARPS = 2

_plans: dict = {}


def rope_config(nq: int, nk: int, half: int, small: bool, mrope: bool = False) -> tuple[int, int, int, int, int]:
    """(groups, BLOCK_HQ, BLOCK_HK, BLOCK_HALF, num_warps) from the model's shape and whether the
    token count is small (<= SMALL_T); never from the data.

    One program rotates one token's q heads [g BLOCK_HQ, ...) and k heads [g BLOCK_HK, ...),
    reading its position and cos/sin row once for all of them; the heads split into `groups`
    programs on grid axis 1 where the q tile would exceed MAX_TILE elements, and at small T, where
    one program a token would leave most SMs idle.
    """
    block_half = max(2, triton.next_power_of_2(half))  # >= 2: a tile with no non-unit dim would be a scalar
    rot_pad = 2 * block_half
    groups = max(1, -(-nq * rot_pad // MAX_TILE))
    if small:
        groups = max(groups, min(SMALL_T_GROUPS, nk or nq))
    block_hq = triton.next_power_of_2(-(-nq // groups))
    groups = -(-nq // block_hq)
    block_hk = triton.next_power_of_2(-(-nk // groups)) if nk else 1
    per_thread = PER_THREAD_SMALL if small else PER_THREAD_MROPE if mrope else PER_THREAD_ROPE
    threads = (block_hq + (block_hk if nk else 0)) * rot_pad / per_thread
    warps = 1 << max(0, min(3, round(math.log2(max(1.0, threads / 32)))))  # nearest power of two, 1..8
    return groups, block_hq, block_hk, block_half, warps


def _plan(key):
    """(small-T token limit, (groups, consts, warps, meta) for T up to it, the same beyond) for one
    plan key, cached; None when the key's facts are invalid (the careful path then explains)."""
    width, kwidth, head, rot, dt, cdt, pdt, is_neox, sections, interleaved, dev, pdl = key
    if (dt not in FLOAT_DTYPES or cdt not in FLOAT_DTYPES or head <= 0 or width < head or width % head or kwidth % head
            or rot % 2 or not 0 < rot <= head or (kwidth and (width // head) % (kwidth // head))):
        return None
    nq, nk = width // head, kwidth // head
    use_pdl = resolve_pdl(pdl, dev)
    s_t, s_h, s_w = sections if sections is not None else (0, 0, 0)
    launches = []
    for small in (True, False):
        groups, bhq, bhk, block_half, warps = rope_config(nq, nk, rot // 2, small, sections is not None)
        consts = (nq, nk, head, rot // 2, is_neox, sections is not None, interleaved, s_t, s_h, s_w, nk > 0,
                  bhq, bhk, block_half, _access.POINTER, use_pdl)
        launches.append((groups, consts, warps, _launch.meta_id(consts, warps, 1, (pdt, dt, dt, cdt), use_pdl)))
    plan = _plans[key] = (SMALL_T, *launches, use_pdl)
    return plan


def _check_common(query, key, head_size, cos_sin_cache, is_neox):
    """(T, query heads, key heads or 0, rot_dim) after the checks both ops share."""
    check_float(query, "query")
    if query.dim() not in (2, 3):
        raise ValueError(f"query must be [T, heads * head_size] or [T, heads, head_size], "
                         f"got shape {tuple(query.shape)}")
    if type(head_size) is not int:
        raise TypeError(f"head_size must be an int, got {type(head_size).__name__} {head_size!r}")
    if head_size <= 0:
        raise ValueError(f"head_size={head_size} must be positive")
    if type(is_neox) is not bool:
        raise TypeError(f"is_neox must be a bool, got {type(is_neox).__name__}")
    nq = _heads(query, "query", head_size)
    T = query.shape[0]
    nk = 0
    if key is not None:
        if not isinstance(key, torch.Tensor):
            raise TypeError(f"key must be a torch.Tensor or None, got {type(key).__name__}")
        if key.dtype != query.dtype:
            raise TypeError(f"key.dtype={key.dtype} must equal query.dtype={query.dtype}")
        check_same_device(key, "key", query, "query")
        if key.dim() not in (2, 3) or key.shape[0] != T:
            raise ValueError(f"key.shape={tuple(key.shape)} must be [T, heads * head_size] or [T, heads, head_size] "
                             f"with T = query.shape[0] = {T}")
        nk = _heads(key, "key", head_size)
        if nq % nk:
            raise ValueError(f"query's {nq} heads must be a multiple of key's {nk} heads (head_size={head_size})")
    check_float(cos_sin_cache, "cos_sin_cache")
    check_same_device(cos_sin_cache, "cos_sin_cache", query, "query")
    if cos_sin_cache.dim() != 2 or cos_sin_cache.shape[0] == 0:
        raise ValueError(f"cos_sin_cache.shape={tuple(cos_sin_cache.shape)} must be [max_pos >= 1, rot_dim]")
    rot = cos_sin_cache.shape[1]
    if rot % 2 or not 0 < rot <= head_size:
        raise ValueError(f"cos_sin_cache.shape[1]={rot} is the rotary dim: it must be even and in "
                         f"[2, head_size={head_size}]")
    return T, nq, nk, rot


def _heads(x, name, head_size) -> int:
    if x.dim() == 3:
        if x.shape[2] != head_size:
            raise ValueError(f"{name}.shape[2]={x.shape[2]} must equal head_size={head_size}")
        heads = x.shape[1]
    else:
        if x.shape[1] % head_size:
            raise ValueError(f"{name}.shape[1]={x.shape[1]} is not a multiple of head_size={head_size}")
        heads = x.shape[1] // head_size
    if heads == 0:
        raise ValueError(f"{name} has no heads: shape {tuple(x.shape)}, head_size={head_size}")
    return heads


def _check_positions(positions, T, mrope: bool, query) -> None:
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
    if positions.dtype not in POS_DTYPES:
        raise TypeError(f"positions.dtype={positions.dtype} must be torch.int64 or torch.int32")
    check_same_device(positions, "positions", query, "query")
    if positions.shape != (T,) and not (mrope and positions.shape == (3, T)):
        want = f"[3, T] or [T] with T = query.shape[0] = {T}" if mrope else f"[T] with T = query.shape[0] = {T}"
        raise ValueError(f"positions.shape={tuple(positions.shape)} must be {want}")


def check_rotary(positions, query, key, head_size, cos_sin_cache, is_neox=True):
    """Shape/dtype/device checks of rotary_embedding (fake tensors too). Returns (T, Hq, Hkv or 0, rot_dim)."""
    facts = _check_common(query, key, head_size, cos_sin_cache, is_neox)
    _check_positions(positions, facts[0], False, query)
    return facts


def check_mrope(positions, query, key, cos_sin_cache, mrope_section, head_size, rotary_dim=None,
                interleaved=False, is_neox=True):
    """Shape/dtype/device checks of mrope (fake tensors too). Returns (T, Hq, Hkv or 0, rot_dim, sections)."""
    facts = _check_common(query, key, head_size, cos_sin_cache, is_neox)
    _check_positions(positions, facts[0], True, query)
    rot = facts[3]
    if rotary_dim is not None and rotary_dim != rot:
        raise ValueError(f"rotary_dim={rotary_dim!r} must equal cos_sin_cache.shape[1]={rot}")
    if type(interleaved) is not bool:
        raise TypeError(f"interleaved must be a bool, got {type(interleaved).__name__}")
    sections = tuple(mrope_section) if isinstance(mrope_section, (list, tuple)) else ()
    if (len(sections) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sections)
            or sum(sections) != rot // 2):
        raise ValueError(f"mrope_section={mrope_section!r} must be 3 non-negative ints [t, h, w] summing to "
                         f"rotary_dim / 2 = {rot // 2}")
    return (*facts, sections)


def rotary_into(positions, query, key, head_size, cos_sin_cache, is_neox, access, pdl=None) -> None:
    """query, key <- rotated in place; every check, then one launch (see the module docstring)."""
    qshape = query.shape
    dt = query.dtype
    dev = query.get_device()
    if (type(positions) is _Tensor and type(cos_sin_cache) is _Tensor and (key is None or type(key) is _Tensor)
            and (dev >= 0 or cpu_interpreted(query, positions, key, cos_sin_cache)) and len(qshape) == 2
            and type(head_size) is int and type(is_neox) is bool and positions.dtype is _I64
            and positions.get_device() == dev and cos_sin_cache.get_device() == dev
            and (key is None or (key.dtype is dt and key.get_device() == dev))
            and (access is None and _access._default == _access.POINTER
                 or type(access) is str and access == "pointer")
            and (pdl is None or type(pdl) is bool)):
        n_tokens, width = qshape
        cshape = cos_sin_cache.shape
        cs = cos_sin_cache.stride()
        qs = query.stride()
        if key is None:
            kshape, ks = (n_tokens, 0), qs
        else:
            kshape, ks = key.shape, key.stride()
        if (n_tokens > 0 and positions.shape == (n_tokens,) and qs[1] == 1 and ks[-1] == 1 and len(kshape) == 2
                and kshape[0] == n_tokens and len(cshape) == 2 and cshape[0] > 0 and cs[1] == 1):
            pkey = (width, kshape[1], head_size, cshape[1], dt, cos_sin_cache.dtype, _I64, is_neox, None, False, dev,
                    pdl)
            plan = _plans.get(pkey)
            if plan is None:
                plan = _plan(pkey)
            if plan is not None:
                groups, consts, warps, meta = plan[1] if n_tokens <= plan[0] else plan[2]
                k2 = query if key is None else key
                args = (positions, query, k2, cos_sin_cache, n_tokens, cshape[0], 0, positions.stride(0),
                        qs[0], ks[0], cs[0])
                if not _launch.fast(dev, meta, n_tokens, groups, *args):
                    _launch(dev, (n_tokens, groups), args, consts, num_warps=warps, pdl=plan[3])
                return
    facts = check_rotary(positions, query, key, head_size, cos_sin_cache, is_neox)
    _rope_careful(positions, query, key, facts, cos_sin_cache, is_neox, None, False, access, pdl)


def mrope_into(positions, query, key, cos_sin_cache, mrope_section, head_size, rotary_dim, interleaved,
               is_neox, access, pdl=None) -> None:
    """query, key <- MRoPE-rotated in place; every check, then one launch. Not timed as tightly as
    rotary_into (a prefill op): the checks run on every call, the plan is cached."""
    T, nq, nk, rot, sections = check_mrope(positions, query, key, cos_sin_cache, mrope_section, head_size,
                                           rotary_dim, interleaved, is_neox)
    if positions.dim() == 1:  # text only: exactly rotary_embedding
        _rope_careful(positions, query, key, (T, nq, nk, rot), cos_sin_cache, is_neox, None, False, access, pdl)
    else:
        _rope_careful(positions, query, key, (T, nq, nk, rot), cos_sin_cache, is_neox, sections, interleaved, access,
                      pdl)


def _as_2d(x, name: str, head_size: int):
    """(x as [T, heads * head_size], token stride); refuses layouts the kernel cannot address."""
    if x.stride(-1) != 1 and x.shape[-1] > 1:
        raise ValueError(f"{name}.stride(-1)={x.stride(-1)}: the last dim must be contiguous "
                         f"(shape {tuple(x.shape)}, strides {x.stride()})")
    if x.dim() == 3:
        if x.shape[1] > 1 and x.stride(1) != head_size:
            raise ValueError(f"{name}.stride(1)={x.stride(1)} must equal head_size={head_size}: the heads of a "
                             f"token must be adjacent (shape {tuple(x.shape)}, strides {x.stride()})")
        return x.view(x.shape[0], -1) if x.shape[0] > 0 else x.reshape(0, -1), x.stride(0)
    return x, x.stride(0)


def _rope_careful(positions, query, key, facts, cache, is_neox, sections, interleaved, access, pdl) -> None:
    T, nq, nk, rot = facts
    check_runnable(query, "query")
    use_pdl = resolve_pdl(pdl, query.get_device())  # also refuses a pdl that is not a bool or None
    if T == 0:
        _access.resolve(access, [])  # still refuses an unknown access
        return
    head = query.shape[-1] if query.dim() == 3 else query.shape[1] // nq  # nq >= 1 (_heads)
    q2, sq = _as_2d(query, "query", head)
    k2, sk = _as_2d(key, "key", head) if key is not None else (q2, sq)
    if cache.stride(1) != 1:
        raise ValueError(f"cos_sin_cache.stride(1)={cache.stride(1)}: the last dim must be contiguous")
    mrope = sections is not None and positions.dim() == 2
    stride_ps, stride_pt = (positions.stride(0), positions.stride(1)) if mrope else (0, positions.stride(0))
    dev = query.get_device()
    pkey = (nq * head, nk * head, head, rot, query.dtype, cache.dtype, positions.dtype, is_neox,
            sections if mrope else None, interleaved if mrope else False, dev, use_pdl)
    plan = _plans.get(pkey) or _plan(pkey)
    assert plan is not None, pkey  # the checks above refuse every invalid key
    groups, consts, warps, _ = plan[1] if T <= plan[0] else plan[2]
    half, bhq, bhk, block_half = rot // 2, consts[11], consts[12], consts[13]
    # the descriptor views (below): NeoX [T, H, 2, rot/2], GPT-J [T, H, rot], the cache [max_pos, 2, rot/2]
    q_strides = [sq, head, half] if is_neox else [sq, head]
    inner = block_half if is_neox else 2 * block_half
    mode = _access.resolve(access, [("query", q2, q_strides, inner)] + (
        [("key", k2, [sk] + q_strides[1:], inner)] if key is not None else []) + [
        ("cos_sin_cache", cache, [cache.stride(0), half], block_half)])
    consts = consts[:-2] + (mode, use_pdl)
    args = (T, cache.shape[0], stride_ps, stride_pt, sq, sk, cache.stride(0))
    if mode != _access.DESCRIPTOR:
        _launch(dev, (T, groups), (positions, q2, k2, cache, *args), consts, num_warps=warps, pdl=use_pdl)
        return
    from triton.tools.tensor_descriptor import TensorDescriptor

    def view(t, s, nh, bh):
        if is_neox:
            return TensorDescriptor(t, [T, nh, 2, half], [s, head, half, 1], [1, bh, 2, block_half])
        return TensorDescriptor(t, [T, nh, rot], [s, head, 1], [1, bh, 2 * block_half])
    dq = view(q2, sq, nq, bhq)
    dk = view(k2, sk, nk, bhk) if key is not None else dq
    dc = TensorDescriptor(cache, [cache.shape[0], 2, half], [cache.stride(0), half, 1], [1, 2, block_half])
    _launch_desc(dev, (T, groups), (positions, dq, dk, dc, *args), consts, num_warps=DESCRIPTOR_WARPS, pdl=use_pdl)


def rotary_embedding(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor | None, head_size: int,
                     cos_sin_cache: torch.Tensor, is_neox: bool = True, *,
                     access: str | None = None, pdl: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rotary position embedding, in place on query and key (vLLM's semantics). Returns (query, key).

    positions int64 (or int32) [T]; query [T, Hq * head_size] or [T, Hq, head_size] float16/
    bfloat16/float32, token stride arbitrary (q and k may be column slices of one qkv tensor), last
    dim contiguous; key likewise with Hkv heads (Hq % Hkv == 0), or None; cos_sin_cache [max_pos,
    rot_dim] of any float dtype, cos in the first rot_dim / 2 columns and sin in the rest. Only the
    first rot_dim (even, <= head_size) dims of each head rotate; the rest are untouched. NeoX pairs
    (i, i + rot_dim / 2), GPT-J (is_neox=False) pairs (2i, 2i + 1): x' = x cos - y sin,
    y' = y cos + x sin in fp32, one rounding. A position outside [0, max_pos) never reads out of
    bounds: the rotated dims of that token become NaN. pdl: programmatic dependent launch (None:
    where the GPU has it, sm90+); never changes the result.

    >>> q, k = lmkernels.rotary_embedding(pos, q, k, 128, cos_sin_cache)
    """
    if not isinstance(query, torch.Tensor):
        raise TypeError(f"query must be a torch.Tensor, got {type(query).__name__}")
    if use_dispatcher(query):
        torch.ops.lmkernels.rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox, access, pdl)
        return query, key
    rotary_into(positions, query, key, head_size, cos_sin_cache, is_neox, access, pdl)
    return query, key


def mrope(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor | None, cos_sin_cache: torch.Tensor,
          mrope_section, head_size: int, rotary_dim: int | None = None, interleaved: bool = False,
          is_neox: bool = True, *, access: str | None = None,
          pdl: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Multimodal rotary (Qwen2-VL / Qwen2.5-VL sections, Qwen3-VL interleaved), in place on query
    and key. Returns (query, key).

    positions int64 [3, T] (temporal, height, width), or [T] for text only (then exactly
    rotary_embedding); mrope_section [s_t, s_h, s_w] with s_t + s_h + s_w == rotary_dim / 2.
    Frequency j takes its position from: sections: t if j < s_t, h if j < s_t + s_h, else w;
    interleaved: h if j % 3 == 1 and j < 3 s_h, w if j % 3 == 2 and j < 3 s_w, else t.
    rotary_dim (None: cos_sin_cache.shape[1]) must equal cos_sin_cache.shape[1]. Other arguments,
    maths and out-of-range positions as rotary_embedding (a bad position gives NaN in the pairs whose
    frequency takes it). fp32 maths, one rounding (vLLM rounds cos/sin to the dtype first; we do not).
    pdl as for rotary_embedding.

    >>> q, k = lmkernels.mrope(pos3, q, k, cos_sin_cache, [16, 24, 24], 128)
    """
    if not isinstance(query, torch.Tensor):
        raise TypeError(f"query must be a torch.Tensor, got {type(query).__name__}")
    if use_dispatcher(query):
        torch.ops.lmkernels.mrope(positions, query, key, cos_sin_cache, list(mrope_section), head_size,
                                  rotary_dim, interleaved, is_neox, access, pdl)
        return query, key
    mrope_into(positions, query, key, cos_sin_cache, mrope_section, head_size, rotary_dim, interleaved,
               is_neox, access, pdl)
    return query, key
