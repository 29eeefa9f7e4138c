"""Sampling logprobs (what an engine returns to a user who asked for logprobs) without a [B, V]
intermediate: token_logprobs, token_ranks, and topk_logprobs built from the two.

Each op is two launches (kernels/sampling.py): a partial kernel reads every logit once on a grid of
B x progs_per_row programs and gathers the tokens' logits, then a one-row-a-program kernel combines
the partials in a fixed order. Scratch partials are allocated with torch.empty per call: no
zeroing, no host sync, nothing cached between calls, so the ops run inside CUDA graphs and under
torch.compile (through torch.ops.lmkernels.token_logprobs / token_ranks, which library.py registers
on token_logprobs_into / token_ranks_into, with check_token_logprobs / check_token_ranks as the
fake implementations' checks).
"""
from __future__ import annotations

import torch
import triton

from ..kernels.sampling import (_lse_partial_kernel, _rank_partial_kernel, _token_logprobs_kernel,
                                _token_ranks_kernel)
from ..runtime import access as _access
from ..runtime.launch import Launcher
from ._common import (FLOAT_DTYPES, check_float, check_runnable, check_same_device, cpu_interpreted, pointer_mode,
                      resident_programs, resolve_pdl, tile_descriptor, use_dispatcher)

_lse = Launcher(_lse_partial_kernel, "tttt" "n" "i" "n" "iii" "nn")
_lse_desc = Launcher(_lse_partial_kernel, "dttt" "n" "i" "n" "iii" "nn")  # access="descriptor"
_lp = Launcher(_token_logprobs_kernel, "tt" "n" "i" "n" "ii")
_rank = Launcher(_rank_partial_kernel, "tttt" "n" "iii" "nn")
_rank_desc = Launcher(_rank_partial_kernel, "dttt" "n" "iii" "nn")
_rank_sum = Launcher(_token_ranks_kernel, "tt" "n" "i" "n")

ID_DTYPES = (torch.int64, torch.int32)
MAX_VOCAB = 2**30  # column indices are int32 in the kernels (col0 + arange must not overflow)
# Streaming programs a split aims at, in waves of resident programs (2048 threads an SM). H100, bf16,
# B = 256, V = 151936 (sweep of BLOCK_V 2048-8192 x 4-16 warps x 1, 2, 4, 8 waves): 4 waves beat 1
# by 1-5 % (token_logprobs 32.4 -> 30.8 µs without PDL), 8 were within noise of 4; the last wave's
# tail is shorter. token_logprobs: 4-warp programs, 132 x 16 x 4 = 8448 aimed at, 33 a row -> 2
# segments of 4096 a program, 19 a row, 4864 in all (one row a program would be 256 programs on
# 132 SMs, 124 of them with two rows). token_ranks: 8-warp programs, 4224 aimed at -> 5 segments of
# 2048, 15 a row, 3840 in all. B = 1: one segment a program (38 or 75), one load round trip each.
WAVES = 4
BLOCK_K = 32  # ids gathered a loop step; fixed so that a new K (num_logprobs) never recompiles
BLOCK_P = 64  # rank partials summed a loop step; fixed so that a new split never recompiles


def sampling_config(V: int, elem_bytes: int, ranks: bool = False) -> tuple[int, int]:
    """(BLOCK_V, num_warps) from V, the dtype and the op, never from B or the GPU: the segments are
    the unit of token_logprobs' reduction, so a row's logprobs are bit-identical in any batch, on
    any SM count (16-byte aligned rows: see kernels/sampling.py). H100 sweep at B = 256, V = 151936, 4 waves (partial kernel alone; of the 3.0 TB/s
    copy):
      token_logprobs: 8 KB segments, 4 warps (64 bytes, four 16-byte loads, a thread): 0.93 of copy
        (bf16 4096 x 4 warps 27.7 µs; 2048 x 4 warps 28.9; 4096 x 8 warps 29.4). Each segment costs
        a max and a sum across the block; fewer, wider segments amortise them. 16 warps lose 20 %.
      token_ranks: 2048 columns, 8 warps (one or two 16-byte loads a thread): no reduction in the
        loop, so more, lighter threads win (bf16 29.5 µs whole op against 30.9 at 4096 x 4 warps).
    Small V: one segment of next_pow2(V)."""
    if ranks:
        block = min(2048, triton.next_power_of_2(V))
        return block, max(1, min(8, block * elem_bytes // (32 * 16)))
    block = min(8192 // elem_bytes, triton.next_power_of_2(V))
    return block, max(1, min(4, block * elem_bytes // (32 * 64)))


def _split(B: int, n_segs: int, target: int) -> tuple[int, int]:
    """(segments a program, programs a row): about `target` programs in all, equal segment counts."""
    per_row = min(n_segs, max(1, target // B))
    segs = -(-n_segs // per_row)
    return segs, -(-n_segs // segs)


_plans: dict = {}


def _plan(V: int, dtype, id_dtype, device: int, ranks: bool, pdl):
    """(BLOCK_V, segments a row, target programs, num_warps, partial constexprs + meta id, combine
    constexprs + meta id, use PDL) for pointer mode, cached per (V, dtype, id dtype, device, op, pdl
    request). The partial constexprs end with (ACCESS, USE_PDL)."""
    key = (V, dtype, id_dtype, device, ranks, pdl)
    plan = _plans.get(key)
    if plan is None:
        use_pdl = resolve_pdl(pdl, device)
        block, warps = sampling_config(V, dtype.itemsize, ranks)
        n_segs = -(-V // block)
        if ranks:
            part = (block, _access.POINTER, use_pdl)
            meta_p = _rank.meta_id(part, warps, 1, (dtype, dtype, id_dtype, torch.int32), use_pdl)
            comb = (BLOCK_P, use_pdl)
            meta_c = _rank_sum.meta_id(comb, 1, 1, (torch.int32, torch.int64), use_pdl)
        else:  # two variants: rows 16-byte aligned (VEC = 16 bytes of elements; see the kernel), or not
            dts = (dtype, dtype, id_dtype, torch.float32)
            part = tuple((block, BLOCK_K, vec, _access.POINTER, use_pdl) for vec in (16 // dtype.itemsize, 1))
            meta_p = tuple(_lse.meta_id(c, warps, 1, dts, use_pdl) for c in part)
            comb = (block, min(256, triton.next_power_of_2(n_segs)), BLOCK_K, use_pdl)
            meta_c = _lp.meta_id(comb, 1, 1, (torch.float32, torch.float32), use_pdl)
        plan = _plans[key] = (block, n_segs, resident_programs(device, warps, WAVES), warps, part, meta_p,
                              comb, meta_c, use_pdl)
    return plan


def _careful_plan(logits, token_ids, ranks: bool, access, pdl):
    """(plan with the resolved access mode in its partial constexprs, mode, row stride)."""
    mode, sx = _resolve(logits, access)
    plan = _plan(logits.shape[1], logits.dtype, token_ids.dtype, logits.get_device(), ranks,
                 resolve_pdl(pdl, logits.get_device()))
    part = plan[4][:-2] + (mode, plan[8]) if ranks else tuple(c[:-2] + (mode, plan[8]) for c in plan[4])
    return plan[:4] + (part,) + plan[5:], mode, sx


# ---------------------------------------------------------------- checks (no data: fake tensors too)

def _check_logits(logits) -> None:
    check_float(logits, "logits")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [B, V], got shape {tuple(logits.shape)}")
    V = logits.shape[1]
    if not 1 <= V <= MAX_VOCAB:
        raise ValueError(f"logits.shape[1]={V} (V) must be in [1, {MAX_VOCAB}]")
    if logits.stride(1) != 1 and V > 1:
        raise ValueError(f"logits.stride(1)={logits.stride(1)}: the last dim must be contiguous "
                         f"(shape {tuple(logits.shape)}, strides {logits.stride()})")


def _check_ids(token_ids, logits, want: str, name: str = "token_ids") -> None:
    if not isinstance(token_ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(token_ids).__name__}")
    if token_ids.dtype not in ID_DTYPES:
        raise TypeError(f"{name}.dtype={token_ids.dtype} is not supported; expected torch.int64 or torch.int32")
    if token_ids.dim() != want.count(",") + 1 or token_ids.shape[0] != logits.shape[0]:
        raise ValueError(f"{name}.shape={tuple(token_ids.shape)} must be [{want}] with "
                         f"B = logits.shape[0] = {logits.shape[0]}")
    check_same_device(token_ids, name, logits, "logits")


def _check_out(out, dtype, shape, logits) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out.dtype={out.dtype} must be {dtype}")
    if out.shape != shape:
        raise ValueError(f"out.shape={tuple(out.shape)} must be {tuple(shape)}")
    check_same_device(out, "out", logits, "logits")


def check_token_logprobs(logits, token_ids, out=None) -> None:
    """Shape/dtype/device checks of token_logprobs (no data read: also for fake tensors)."""
    _check_logits(logits)
    _check_ids(token_ids, logits, "B, K")
    if out is not None:
        _check_out(out, torch.float32, token_ids.shape, logits)


def check_token_ranks(logits, token_ids, out=None) -> None:
    """Shape/dtype/device checks of token_ranks (no data read: also for fake tensors)."""
    _check_logits(logits)
    _check_ids(token_ids, logits, "B")
    if out is not None:
        _check_out(out, torch.int64, token_ids.shape, logits)


def _resolve(logits, access) -> tuple[int, int]:
    """(access mode, row stride): one row's stride is immaterial, so a single row passes V (TMA can
    then address a [1, V] slice of a wider tensor)."""
    B, V = logits.shape
    stride = logits.stride(0) if B > 1 else V
    return _access.resolve(access, [("logits", logits, stride)]), stride


# ---------------------------------------------------------------- token_logprobs

def token_logprobs_into(logits, token_ids, out, access, pdl=None) -> None:
    """out [B, K] fp32 <- log_softmax(logits)[b, token_ids[b, k]]: checks, then two launches.

    The common call (on a GPU, 2-D, valid dtypes and devices, pointer mode) is recognised in one
    straight-line branch and launched from a cached plan (see ops/norm.py: every Python operation
    costs 0.1-0.9 µs on the H100 hosts); anything else takes the careful path."""
    shape = logits.shape
    dt = logits.dtype
    dev = logits.get_device()
    idt = token_ids.dtype
    if ((dev >= 0 or cpu_interpreted(logits, token_ids, out, None)) and len(shape) == 2 and dt in FLOAT_DTYPES
            and idt in ID_DTYPES and token_ids.get_device() == dev and out.get_device() == dev
            and out.dtype is torch.float32 and pointer_mode(access) and (pdl is None or type(pdl) is bool)):
        B, V = shape
        ishape = token_ids.shape
        xs = logits.stride()
        if (xs[1] == 1 and len(ishape) == 2 and ishape[0] == B and out.shape == ishape and B > 0
                and ishape[1] > 0 and 0 < V <= MAX_VOCAB):
            plan = _plans.get((V, dt, idt, dev, False, pdl))
            if plan is None:
                plan = _plan(V, dt, idt, dev, False, pdl)
            _launch_logprobs(logits, token_ids, out, plan, xs[0], dev, _lse, logits, plan[5])
            return
    _careful(logits, token_ids, out, access, pdl, False)


def _launch_logprobs(logits, token_ids, out, plan, sx, dev, launcher, view, meta_p) -> None:
    """The two launches; meta_p is the partial launch's fast-path meta id, None off the fast path."""
    n_segs, target, warps, comb_consts, meta_c = plan[1], plan[2], plan[3], plan[6], plan[7]
    B, V = logits.shape
    K = token_ids.shape[1]
    segs, per_row = _split(B, n_segs, target)
    part = logits.new_empty(B * (2 * n_segs + K), dtype=torch.float32)  # [max | sum of exp | gathered logits]
    si = token_ids.stride()
    grid = B * (per_row + 1)  # B gather programs, then B x per_row streaming programs
    vec = plan[4][0][2]
    if B == 1:  # the stride in units of VEC (the kernel's stride_xv); a single row's is immaterial
        sxv, i = 0, 0
    elif sx % vec == 0:
        sxv, i = sx // vec, 0
    else:
        sxv, i = sx, 1
    args = (view, logits, token_ids, part, B, V, K, sxv, si[0], si[1], segs, per_row)
    if meta_p is None or not launcher.fast(dev, meta_p[i], grid, 1, *args):
        launcher(dev, (grid,), args, plan[4][i], num_warps=warps, pdl=plan[8])
    so = out.stride()
    if not _lp.fast(dev, meta_c, B, 1, part, out, B, V, K, so[0], so[1]):
        _lp(dev, (B,), (part, out, B, V, K, so[0], so[1]), comb_consts, num_warps=1, pdl=plan[8])


def _careful(logits, token_ids, out, access, pdl, ranks: bool) -> None:
    """Either op off the fast branch: every check, any access mode, then its two launches."""
    (check_token_ranks if ranks else check_token_logprobs)(logits, token_ids, out)
    check_runnable(logits, "logits")
    if out.numel() == 0:
        return
    plan, mode, sx = _careful_plan(logits, token_ids, ranks, access, pdl)
    launch = _launch_ranks if ranks else _launch_logprobs
    if mode != _access.DESCRIPTOR:
        launch(logits, token_ids, out, plan, sx, logits.get_device(), _rank if ranks else _lse, logits, None)
    else:
        desc = tile_descriptor(logits, logits.shape[0], logits.shape[1], sx, 1, plan[0])
        launch(logits, token_ids, out, plan, sx, logits.get_device(), _rank_desc if ranks else _lse_desc, desc, None)


# ---------------------------------------------------------------- token_ranks

def token_ranks_into(logits, token_ids, out, access, pdl=None) -> None:
    """out [B] int64 <- rank of token_ids[b] in row b (see token_ranks); fast branch as above."""
    shape = logits.shape
    dt = logits.dtype
    dev = logits.get_device()
    idt = token_ids.dtype
    if ((dev >= 0 or cpu_interpreted(logits, token_ids, out, None)) and len(shape) == 2 and dt in FLOAT_DTYPES
            and idt in ID_DTYPES and token_ids.get_device() == dev and out.get_device() == dev
            and out.dtype is torch.int64 and pointer_mode(access) and (pdl is None or type(pdl) is bool)):
        B, V = shape
        xs = logits.stride()
        if (xs[1] == 1 and token_ids.shape == (B,) and out.shape == (B,) and B > 0 and 0 < V <= MAX_VOCAB):
            plan = _plans.get((V, dt, idt, dev, True, pdl))
            if plan is None:
                plan = _plan(V, dt, idt, dev, True, pdl)
            _launch_ranks(logits, token_ids, out, plan, xs[0], dev, _rank, logits, plan[5])
            return
    _careful(logits, token_ids, out, access, pdl, True)


def _launch_ranks(logits, token_ids, out, plan, sx, dev, launcher, view, meta_p) -> None:
    n_segs, target, warps, part_consts, comb_consts, meta_c = plan[1], plan[2], plan[3], plan[4], plan[6], plan[7]
    B, V = logits.shape
    segs, per_row = _split(B, n_segs, target)
    part = logits.new_empty(B * per_row, dtype=torch.int32)  # a count a program
    si = token_ids.stride(0)
    args = (view, logits, token_ids, part, B, V, sx, si, segs, per_row)
    if meta_p is None or not launcher.fast(dev, meta_p, B * per_row, 1, *args):
        launcher(dev, (B * per_row,), args, part_consts, num_warps=warps, pdl=plan[8])
    so = out.stride(0)
    if not _rank_sum.fast(dev, meta_c, B, 1, part, out, B, so, per_row):
        _rank_sum(dev, (B,), (part, out, B, so, per_row), comb_consts, num_warps=1, pdl=plan[8])


# ---------------------------------------------------------------- public ops

def _route(logits) -> bool:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    return use_dispatcher(logits)


def token_logprobs(logits: torch.Tensor, token_ids: torch.Tensor, *, access: str | None = None,
                   pdl: bool | None = None) -> torch.Tensor:
    """``log_softmax(logits, -1)[b, token_ids[b, k]]`` as fp32 [B, K], natural log, one read of the
    logits and no [B, V] intermediate. Not in place.

    logits [B, V] float16/bfloat16/float32, any V, row stride arbitrary, last dim contiguous;
    token_ids [B, K] int64/int32. fp32 maths: logprob = (logit - max) - ln(sum exp(logit - max)).
    An id outside [0, V) gives NaN in its cell (nothing is read for it). Non-finite logits follow
    torch.log_softmax: a NaN or +inf anywhere in a row makes the row's logprobs NaN, a row of -inf
    only gives NaN, and a -inf logit elsewhere gives -inf. A row's result is bit-identical in any
    batch, on any SM count and in every access mode. pdl: programmatic dependent launch (None: on
    where the GPU has it, sm90+; it never changes the result).

    >>> lp = lmkernels.token_logprobs(logits, torch.tensor([[42, 7]], device="cuda"))  # logits [1, V]
    """
    if _route(logits):
        return torch.ops.lmkernels.token_logprobs(logits, token_ids, access, pdl)
    if not isinstance(token_ids, torch.Tensor):
        check_token_logprobs(logits, token_ids)  # raises, naming the argument
    out = logits.new_empty(token_ids.shape, dtype=torch.float32)
    token_logprobs_into(logits, token_ids, out, access, pdl)
    return out


def token_ranks(logits: torch.Tensor, token_ids: torch.Tensor, *, access: str | None = None,
                pdl: bool | None = None) -> torch.Tensor:
    """Rank of each row's token: ``#{v : logits[b, v] >= logits[b, token_ids[b]]}`` as int64 [B].

    1-based; ties count against the token (a token tied with the max has rank = the number tied);
    NaN logits never count; a NaN logit at the token itself gives 0 (nothing compares >= NaN);
    an id outside [0, V) gives -1. logits, access and pdl as for token_logprobs; token_ids [B]
    int64/int32.

    >>> r = lmkernels.token_ranks(logits, sampled)  # logits [B, V], sampled [B]
    """
    if _route(logits):
        return torch.ops.lmkernels.token_ranks(logits, token_ids, access, pdl)
    if not isinstance(token_ids, torch.Tensor):
        check_token_ranks(logits, token_ids)
    out = logits.new_empty(token_ids.shape, dtype=torch.int64)
    token_ranks_into(logits, token_ids, out, access, pdl)
    return out


def topk_logprobs(logits: torch.Tensor, num_logprobs: int, sampled_token_ids: torch.Tensor, *,
                  access: str | None = None, pdl: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What an engine returns for a request with logprobs: (ids [B, k+1] int64, column 0 the sampled
    token then torch.topk's top k ids by logit; their logprobs [B, k+1] fp32; the sampled token's
    rank [B] int64), k = num_logprobs (0 allowed). Reads the logits three times: topk, then
    token_logprobs and token_ranks.

    >>> ids, lps, rank = lmkernels.topk_logprobs(logits, 5, sampled)
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    _check_logits(logits)
    if type(num_logprobs) is not int:
        raise TypeError(f"num_logprobs must be an int, got {type(num_logprobs).__name__}")
    if not 0 <= num_logprobs <= logits.shape[1]:
        raise ValueError(f"num_logprobs={num_logprobs} must be in [0, V] with V = logits.shape[1] = {logits.shape[1]}")
    _check_ids(sampled_token_ids, logits, "B", "sampled_token_ids")
    sampled = sampled_token_ids.to(torch.int64)[:, None]
    if num_logprobs:
        ids = torch.cat([sampled, torch.topk(logits, num_logprobs, dim=-1).indices], dim=1)
    else:
        ids = sampled.contiguous()
    return (ids, token_logprobs(logits, ids, access=access, pdl=pdl),
            token_ranks(logits, sampled_token_ids, access=access, pdl=pdl))
