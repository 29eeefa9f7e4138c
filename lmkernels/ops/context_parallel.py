"""Attention-state merging and context parallelism's decode-time combine.

  merge_attn_states   two attention states (output, LSE) over disjoint keys -> their exact merge
  correct_attn_out    one rank's partial output, scaled by its share of the N ranks' LSEs, in place
  cp_lse_ag_out_rs    all-gather the LSEs, correct, reduce-scatter over heads: each rank its H heads
  cp_lse_ag_out_ar    the same with an all-reduce: every rank all H * W heads

Shape of the module (for library.py): merge_into / correct_into are what the registered ops call:
every check, then one launch. The common call (on a GPU, matching dtypes and devices, contiguous
last dims, pointer mode) is recognised by one straight-line branch and launched through
Launcher.fast with a plan cached on (shape facts, dtypes, device, PDL request); anything else takes
the careful path, which explains what is wrong or resolves another access mode. check_merge /
check_correct are the data-free checks the fake implementations run. The cp_* functions call
torch.distributed and are plain Python (eager only); their kernel is the one correct_attn_out uses.
"""
from __future__ import annotations

import torch
import triton

from ..kernels.context_parallel import _correct_attn_out_kernel, _merge_attn_states_kernel
from ..runtime import access as _access
from ..runtime.launch import Launcher
from ._common import (FLOAT_DTYPES, check_float, check_last_contiguous, check_runnable, check_same_device,
                      cpu_interpreted, pointer_mode, resolve_pdl, use_dispatcher)

# out, prefix, suffix, prefix_lse, suffix_lse, output_lse | T | H, 6 tile strides, 6 LSE strides
_merge = Launcher(_merge_attn_states_kernel, "tttttt" "n" "i" "iiiiii" "iiiiii")
_merge_desc = Launcher(_merge_attn_states_kernel, "dddttt" "n" "i" "iiiiii" "iiiiii")  # access="descriptor"
# src, dst, lses, lse_out | B | n_split, heads, 6 tile strides, 3 LSE strides | cp_rank
_correct = Launcher(_correct_attn_out_kernel, "tttt" "n" "ii" "iiiiii" "iii" "n")
_correct_desc = Launcher(_correct_attn_out_kernel, "ddtt" "n" "ii" "iiiiii" "iii" "n")

_Tensor = torch.Tensor
# Tiles. A program takes one row's BLOCK_H heads x BLOCK_D dims of every output it touches.
MAX_BLOCK_D = 256  # TMA boxes hold at most 256 elements a dim; larger head sizes loop over chunks
MAX_BLOCK_H = 256
MAX_TILE = 4096    # elements of one operand's tile: 32 heads of 128, 8 KB in bf16; a merge program
#                    then has 16 KB of loads in flight (rms_norm's 8 KB rows reached 2.79 TB/s)
PER_THREAD = 16    # tile elements a thread holds: two 16-byte vectors of bf16 (8 warps at 4096)
# Up to SMALL_ROWS rows (decode batches), a row's heads spread over SMALL_GROUPS programs, so that
# B = 64 runs 256 programs on the 132 SMs instead of 64 (the rotary kernel's rule; not yet swept
# for these kernels).
SMALL_ROWS = 256
SMALL_GROUPS = 4
MAX_RANKS = 1024   # the rank loop is unrolled (one compile per group size): bound its code size

_plans: dict = {}


def tile_config(heads: int, D: int, small: bool) -> tuple[int, int, int]:
    """(BLOCK_H, BLOCK_D, num_warps) from the head count, head size and whether the rows are few;
    never from the data. Every element's result is independent of the tiling (no reduction crosses
    a tile), so a config that moves with the row count changes no bit."""
    block_d = max(2, min(MAX_BLOCK_D, triton.next_power_of_2(D)))  # >= 2: a tile of only unit dims is a scalar
    block_h = min(triton.next_power_of_2(heads), MAX_BLOCK_H, max(1, MAX_TILE // block_d))
    if small:
        block_h = max(1, min(block_h, triton.next_power_of_2(-(-heads // SMALL_GROUPS))))
    threads = block_h * block_d // PER_THREAD
    warps = 1 << max(0, min(3, (max(1, threads // 32)).bit_length() - 1))  # power of two, 1..8
    return block_h, block_d, warps


def _tma_strides(t) -> list[int]:
    """t's strides but the last, a size-1 dim's replaced by the dense one (it is never stepped, and
    TMA wants 16-byte multiples): a single token or row passes whatever stride its view has."""
    out, dense = [], t.shape[-1]
    for size, stride in reversed(list(zip(t.shape[:-1], t.stride()[:-1]))):
        out.append(dense if size == 1 else stride)
        dense = (dense if size == 1 else stride) * size
    return out[::-1]


# ---------------------------------------------------------------- merge_attn_states

def _merge_plan(key):
    """(small-row limit, (groups, constexprs, warps, meta id) for rows up to it, the same beyond)."""
    H, D, dt, ldt, has_out_lse, dev, pdl = key
    use_pdl = resolve_pdl(pdl, dev)
    launches = []
    for small in (True, False):
        block_h, block_d, warps = tile_config(H, D, small)
        consts = (D, has_out_lse, block_h, block_d, _access.POINTER, use_pdl)
        meta = _merge.meta_id(consts, warps, 1, (dt, dt, dt, ldt, ldt, ldt), use_pdl)
        launches.append((-(-H // block_h), consts, warps, meta))
    plan = _plans[key] = (SMALL_ROWS, *launches)
    return plan


def check_merge(output, prefix_output, prefix_lse, suffix_output, suffix_lse, output_lse=None) -> None:
    """Shape/dtype/device checks of merge_attn_states (no data, no strides: fake tensors too)."""
    check_float(output, "output")
    if output.dim() != 3:
        raise ValueError(f"output must be [T, H, D], got shape {tuple(output.shape)}")
    T, H, D = output.shape
    for name, t in (("prefix_output", prefix_output), ("suffix_output", suffix_output)):
        check_float(t, name)
        if t.dtype != output.dtype:
            raise TypeError(f"{name}.dtype={t.dtype} must equal output.dtype={output.dtype}")
        check_same_device(t, name, output, "output")
        if t.shape != output.shape:
            raise ValueError(f"{name}.shape={tuple(t.shape)} must equal output.shape={tuple(output.shape)}")
    lses = (("prefix_lse", prefix_lse), ("suffix_lse", suffix_lse))
    for name, t in lses + ((("output_lse", output_lse),) if output_lse is not None else ()):
        check_float(t, name)
        if t.dtype != prefix_lse.dtype:
            raise TypeError(f"{name}.dtype={t.dtype} must equal prefix_lse.dtype={prefix_lse.dtype}")
        check_same_device(t, name, output, "output")
        if t.shape != (H, T):
            raise ValueError(f"{name}.shape={tuple(t.shape)} must be [H, T] = {(H, T)} (output is [T, H, D] = "
                             f"{tuple(output.shape)})")


def merge_into(output, prefix_output, prefix_lse, suffix_output, suffix_lse, output_lse, access, pdl=None) -> None:
    """output (and output_lse) <- the merged state: every check, then one launch (see the module docstring)."""
    shape = output.shape
    dt = output.dtype
    dev = output.get_device()
    ldt = prefix_lse.dtype
    if (type(prefix_output) is _Tensor and type(suffix_output) is _Tensor and type(prefix_lse) is _Tensor
            and type(suffix_lse) is _Tensor and (output_lse is None or type(output_lse) is _Tensor)
            and (dev >= 0 or (cpu_interpreted(output, prefix_output, suffix_output, prefix_lse)
                              and cpu_interpreted(suffix_lse, suffix_lse, output_lse, None)))
            and len(shape) == 3 and dt in FLOAT_DTYPES and ldt in FLOAT_DTYPES
            and prefix_output.dtype is dt and suffix_output.dtype is dt and suffix_lse.dtype is ldt
            and prefix_output.get_device() == dev and suffix_output.get_device() == dev
            and prefix_lse.get_device() == dev and suffix_lse.get_device() == dev
            and (output_lse is None or (output_lse.dtype is ldt and output_lse.get_device() == dev))
            and pointer_mode(access) and (pdl is None or type(pdl) is bool)):
        T, H, D = shape
        so = output.stride()
        sp = prefix_output.stride()
        ss = suffix_output.stride()
        if (T > 0 and H > 0 and D > 0 and so[2] == 1 and sp[2] == 1 and ss[2] == 1 and prefix_output.shape == shape
                and suffix_output.shape == shape and prefix_lse.shape == (H, T) and suffix_lse.shape == (H, T)
                and (output_lse is None or output_lse.shape == (H, T))):
            key = (H, D, dt, ldt, output_lse is not None, dev, pdl)
            plan = _plans.get(key)
            if plan is None:
                plan = _merge_plan(key)
            groups, consts, warps, meta = plan[1] if T <= plan[0] else plan[2]
            pl = prefix_lse.stride()
            sl = suffix_lse.stride()
            o_lse, ol = (prefix_lse, (0, 0)) if output_lse is None else (output_lse, output_lse.stride())
            args = (output, prefix_output, suffix_output, prefix_lse, suffix_lse, o_lse, T, H, so[0], so[1], sp[0],
                    sp[1], ss[0], ss[1], pl[0], pl[1], sl[0], sl[1], ol[0], ol[1])
            if not _merge.fast(dev, meta, T, groups, *args):
                _merge(dev, (T, groups), args, consts, num_warps=warps, pdl=consts[-1])
            return
    _merge_careful(output, prefix_output, prefix_lse, suffix_output, suffix_lse, output_lse, access, pdl)


def _merge_careful(output, p, p_lse, s, s_lse, o_lse, access, pdl) -> None:
    check_merge(output, p, p_lse, s, s_lse, o_lse)
    check_runnable(output, "output")
    for name, t in (("output", output), ("prefix_output", p), ("suffix_output", s)):
        check_last_contiguous(t, name)
    T, H, D = output.shape
    dev = output.get_device()
    if output.numel() == 0:
        _access.resolve(access, [])  # still refuses an unknown access
        return
    key = (H, D, output.dtype, p_lse.dtype, o_lse is not None, dev, resolve_pdl(pdl, dev))
    plan = _plans.get(key) or _merge_plan(key)
    groups, consts, warps, _ = plan[1] if T <= plan[0] else plan[2]
    block_h, block_d = consts[2], consts[3]
    tiles = (("output", output), ("prefix_output", p), ("suffix_output", s))
    mode = _access.resolve(access, [(name, t, _tma_strides(t), block_d) for name, t in tiles])
    consts = consts[:4] + (mode, consts[5])
    o_lse2, ol = (p_lse, (0, 0)) if o_lse is None else (o_lse, o_lse.stride())
    strides = [x for _, t in tiles for x in t.stride()[:2]]
    args = (p_lse, s_lse, o_lse2, T, H, *strides, *p_lse.stride(), *s_lse.stride(), *ol)
    if mode != _access.DESCRIPTOR:
        _merge(dev, (T, groups), (output, p, s, *args), consts, num_warps=warps, pdl=consts[-1])
        return
    from triton.tools.tensor_descriptor import TensorDescriptor
    views = [TensorDescriptor(t, [T, H, D], [*_tma_strides(t), 1], [1, block_h, block_d]) for _, t in tiles]
    _merge_desc(dev, (T, groups), (*views, *args), consts, num_warps=warps, pdl=consts[-1])


def merge_attn_states(output: torch.Tensor, prefix_output: torch.Tensor, prefix_lse: torch.Tensor,
                      suffix_output: torch.Tensor, suffix_lse: torch.Tensor, output_lse: torch.Tensor | None = None,
                      *, access: str | None = None, pdl: bool | None = None) -> None:
    """Merge two attention states over disjoint keys (a cached prefix and a new suffix), in place.

    output, prefix_output, suffix_output [T, H, D] of one dtype (float16/bfloat16/float32), token
    and head strides arbitrary, last dim contiguous (output may be prefix_output); prefix_lse,
    suffix_lse [H, T] natural-log LSEs of one float dtype, any strides; output_lse None or [H, T] of
    that dtype, written with the merged LSE. With m = max(p, s), an LSE that is NaN or +inf taken
    as -inf (a state with no keys):
      output = (e^(p-m) O_p + e^(s-m) O_s) / (e^(p-m) + e^(s-m)),  lse = m + log(e^(p-m) + e^(s-m));
    a state whose LSE is -inf contributes exactly 0 (its output may be NaN); both -inf give output 0
    and lse -inf. fp32 maths, one rounding. Returns None. pdl: programmatic dependent launch (None:
    where the GPU has it, sm90+); it never changes the result.

    >>> lmkernels.merge_attn_states(out, o_prefix, lse_prefix, o_suffix, lse_suffix)  # out [T, H, D]
    """
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"output must be a torch.Tensor, got {type(output).__name__}")
    if use_dispatcher(output):
        torch.ops.lmkernels.merge_attn_states(output, prefix_output, prefix_lse, suffix_output, suffix_lse,
                                              output_lse, access, pdl)
        return None
    if not isinstance(prefix_lse, torch.Tensor):
        check_merge(output, prefix_output, prefix_lse, suffix_output, suffix_lse, output_lse)  # raises, naming it
    merge_into(output, prefix_output, prefix_lse, suffix_output, suffix_lse, output_lse, access, pdl)
    return None


# ---------------------------------------------------------------- correct_attn_out

def _correct_plan(key):
    """As _merge_plan, for the correction: key (heads, D, N, dtype, LSE dtype, base e, device, pdl)."""
    heads, D, N, dt, ldt, base_e, dev, pdl = key
    use_pdl = resolve_pdl(pdl, dev)
    launches = []
    for small in (True, False):
        block_h, block_d, warps = tile_config(heads, D, small)
        consts = (N, D, base_e, block_h, block_d, _access.POINTER, use_pdl)
        meta = _correct.meta_id(consts, warps, 1, (dt, dt, ldt, ldt), use_pdl)
        launches.append((-(-heads // block_h), consts, warps, meta))
    plan = _plans[key] = (SMALL_ROWS, *launches)
    return plan


def check_correct(out, lses, cp_rank, lse_base_e=True) -> None:
    """Shape/dtype/device/argument checks of correct_attn_out (no data: fake tensors too)."""
    check_float(out, "out")
    if out.dim() != 3:
        raise ValueError(f"out must be [B, H, D], got shape {tuple(out.shape)}")
    check_float(lses, "lses")
    check_same_device(lses, "lses", out, "out")
    if lses.dim() != 3 or lses.shape[1:] != out.shape[:2] or lses.shape[0] == 0:
        raise ValueError(f"lses.shape={tuple(lses.shape)} must be [N >= 1, B, H] with B, H = out.shape[:2] = "
                         f"{tuple(out.shape[:2])}")
    N = lses.shape[0]
    if N > MAX_RANKS:
        raise ValueError(f"lses.shape[0]={N} ranks exceeds {MAX_RANKS} (the rank loop is unrolled)")
    if type(cp_rank) is not int:
        raise TypeError(f"cp_rank must be an int, got {type(cp_rank).__name__} {cp_rank!r}")
    if not 0 <= cp_rank < N:
        raise ValueError(f"cp_rank={cp_rank} must be in [0, N) with N = lses.shape[0] = {N}")
    if type(lse_base_e) is not bool:
        raise TypeError(f"lse_base_e must be a bool, got {type(lse_base_e).__name__}")


def correct_into(out, lses, cp_rank, lse_out, lse_base_e, access, pdl=None) -> None:
    """out <- out * exp(lses[cp_rank] - L) in place, lse_out [B, H] (contiguous, lses' dtype) <- L:
    every check, then one launch."""
    shape = out.shape
    dt = out.dtype
    dev = out.get_device()
    ldt = lses.dtype
    if (type(lses) is _Tensor and (dev >= 0 or cpu_interpreted(out, lses, lse_out, None)) and len(shape) == 3
            and dt in FLOAT_DTYPES and ldt in FLOAT_DTYPES and lses.get_device() == dev and type(cp_rank) is int
            and type(lse_base_e) is bool and pointer_mode(access) and (pdl is None or type(pdl) is bool)):
        B, H, D = shape
        lshape = lses.shape
        so = out.stride()
        if (B > 0 and H > 0 and D > 0 and so[2] == 1 and len(lshape) == 3 and lshape[1] == B and lshape[2] == H
                and 0 <= cp_rank < lshape[0] <= MAX_RANKS):
            key = (H, D, lshape[0], dt, ldt, lse_base_e, dev, pdl)
            plan = _plans.get(key)
            if plan is None:
                plan = _correct_plan(key)
            groups, consts, warps, meta = plan[1] if B <= plan[0] else plan[2]
            sl = lses.stride()
            args = (out, out, lses, lse_out, B, 1, H, so[0], 0, so[1], so[0], 0, so[1], sl[0], sl[1], sl[2], cp_rank)
            if not _correct.fast(dev, meta, B, groups, *args):
                _correct(dev, (B, groups), args, consts, num_warps=warps, pdl=consts[-1])
            return
    check_correct(out, lses, cp_rank, lse_base_e)
    check_runnable(out, "out")
    check_last_contiguous(out, "out")
    sb, sh = _tma_strides(out)
    H = out.shape[1]
    _correct_launch(out, out, (sb, H * sh, sh), 1, H, lses, cp_rank, lse_out, lse_base_e, access, pdl)


def _correct_launch(src, dst, dst_strides, n_split, heads, lses, cp_rank, lse_out, lse_base_e, access, pdl) -> None:
    """The correction's launch for src [B, n_split * heads, D] (last dim contiguous, checked) into dst,
    whose [B, n_split, heads, D] view has strides dst_strides (3 ints, the last dim contiguous)."""
    B, _, D = src.shape
    dev = src.get_device()
    if src.numel() == 0:
        _access.resolve(access, [])  # still refuses an unknown access
        return
    use_pdl = resolve_pdl(pdl, dev)
    key = (heads, D, lses.shape[0], src.dtype, lses.dtype, lse_base_e, dev, use_pdl)
    plan = _plans.get(key) or _correct_plan(key)
    groups, consts, warps, _ = plan[1] if B <= plan[0] else plan[2]
    block_h, block_d = consts[3], consts[4]
    sb, sh = _tma_strides(src)
    src_strides = [sb, heads * sh, sh]
    mode = _access.resolve(access, [("out", src, src_strides, block_d), ("out", dst, list(dst_strides), block_d)])
    consts = consts[:5] + (mode, use_pdl)
    args = (lses, lse_out, B, n_split, heads, *src_strides, *dst_strides, *lses.stride(), cp_rank)
    grid = (B, n_split * groups)
    if mode != _access.DESCRIPTOR:
        _correct(dev, grid, (src, dst, *args), consts, num_warps=warps, pdl=use_pdl)
        return
    from triton.tools.tensor_descriptor import TensorDescriptor
    box = [1, 1, block_h, block_d]
    shape4 = [B, n_split, heads, D]
    dsrc = TensorDescriptor(src, shape4, [*src_strides, 1], box)
    ddst = dsrc if dst is src else TensorDescriptor(dst, shape4, [*dst_strides, 1], box)
    _correct_desc(dev, grid, (dsrc, ddst, *args), consts, num_warps=warps, pdl=use_pdl)


def correct_attn_out(out: torch.Tensor, lses: torch.Tensor, cp_rank: int, *, lse_base_e: bool = True,
                     access: str | None = None, pdl: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale one context-parallel rank's partial attention output by its share of the group's keys,
    in place. Returns (out, L).

    out [B, H, D] float16/bfloat16/float32, row and head strides arbitrary, last dim contiguous:
    this rank's attention over its shard of the KV cache; lses [N, B, H] of any float dtype and any
    strides: the LSEs of the N ranks (lses[cp_rank] is this rank's); cp_rank in [0, N). Any N (up to
    1024; one compile per N) and any D. An LSE that is NaN or +inf is taken as -inf (a shard with no
    keys); with L = logsumexp_n(lses[n]) (base 2 with lse_base_e=False: log2 of the sum of 2^lse):
      out <- out * exp(lses[cp_rank] - L)   (exp2 for base 2), fp32 maths, one rounding;
    a rank whose LSE is -inf gives out = 0 there, even where out held NaN; L is -inf where every rank
    is. L [B, H] is a new contiguous tensor of lses' dtype. Summing the corrected outputs of all N
    ranks gives the full attention output (cp_lse_ag_out_rs / _ar do that over torch.distributed).

    >>> out, lse = lmkernels.correct_attn_out(out, lses, cp_rank=1)  # lses [N, B, H]
    """
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if use_dispatcher(out):
        return out, torch.ops.lmkernels.correct_attn_out(out, lses, cp_rank, lse_base_e, access, pdl)
    if not isinstance(lses, torch.Tensor) or lses.dim() != 3:
        check_correct(out, lses, cp_rank, lse_base_e)  # raises, naming the argument
    lse_out = lses.new_empty(lses.shape[1:])
    correct_into(out, lses, cp_rank, lse_out, lse_base_e, access, pdl)
    return out, lse_out


# ---------------------------------------------------------------- the combine over torch.distributed

# Backends seen to lack a tensor collective (probed on first use: the call raises before any
# communication, on every rank alike). gloo has had reduce_scatter_tensor and all_gather_into_tensor
# since torch 2.2 (an all-reduce underneath for the former); older gloo, MPI or third-party
# backends may lack them. Tests add a backend here to run the fallbacks.
LACKS_REDUCE_SCATTER: set = set()
LACKS_ALL_GATHER: set = set()


def _dist():
    import torch.distributed as dist
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    return dist


def _unsupported(e: Exception) -> bool:
    msg = str(e).lower()
    return isinstance(e, NotImplementedError) or "not support" in msg or "unsupported" in msg or "not implemented" in msg


def _native(names: tuple, lacks: set, out, inp, group) -> bool:
    """Run the flat tensor collective (the first of `names` torch.distributed has: renamed to
    *_single in torch 2.13) out <- inp; False, with the backend remembered in `lacks`, where the
    backend refuses it as unsupported (the caller then takes its fallback)."""
    dist = _dist()
    backend = str(dist.get_backend(group))
    if backend in lacks:
        return False
    native = next(getattr(dist, n) for n in names if hasattr(dist, n))
    try:
        native(out.view(-1), inp.view(-1), group=group)
        return True
    except (RuntimeError, NotImplementedError, ValueError) as e:
        if not _unsupported(e):
            raise
        lacks.add(backend)
        return False


def _all_gather(out, inp, group) -> None:
    """out [W, ...] <- every rank's inp [...] (contiguous), rank order."""
    if not _native(("all_gather_single", "all_gather_into_tensor"), LACKS_ALL_GATHER, out, inp, group):
        # the list all-gather into out's W rows (contiguous views, so nothing is copied back)
        _dist().all_gather(list(out.unbind(0)), inp, group=group)


def _reduce_scatter(out, buf, group, rank: int) -> None:
    """out <- sum over ranks of buf[rank] (buf [W, ...] contiguous, out contiguous like buf[0])."""
    if not _native(("reduce_scatter_single", "reduce_scatter_tensor"), LACKS_REDUCE_SCATTER, out, buf, group):
        # all-reduce the whole buffer and keep this rank's chunk: the same sums, twice the traffic
        # of a reduce-scatter (an all-reduce is a reduce-scatter plus an all-gather)
        _dist().all_reduce(buf, group=group)
        out.copy_(buf[rank])


def _group_facts(group) -> tuple[int, int]:
    dist = _dist()
    if group is not None and not isinstance(group, dist.ProcessGroup):
        raise TypeError(f"group must be a torch.distributed.ProcessGroup or None, got {type(group).__name__}")
    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call init_process_group first")
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError("this process is not a member of group")
    return dist.get_world_size(group), rank


def _check_cp(out, lse, world: int) -> None:
    check_float(out, "cp_attn_out")
    if out.dim() != 3:
        raise ValueError(f"cp_attn_out must be [B, H * W, D], got shape {tuple(out.shape)}")
    check_float(lse, "cp_attn_lse")
    check_same_device(lse, "cp_attn_lse", out, "cp_attn_out")
    if lse.shape != out.shape[:2]:
        raise ValueError(f"cp_attn_lse.shape={tuple(lse.shape)} must be [B, H * W] = {tuple(out.shape[:2])}")
    if out.shape[1] % world:
        raise ValueError(f"cp_attn_out.shape[1]={out.shape[1]} heads must be a multiple of the group's world size "
                         f"{world}")
    check_last_contiguous(out, "cp_attn_out")


def _combine(cp_attn_out, cp_attn_lse, group, reduce_scatter: bool, return_lse, lse_base_e, access):
    if type(return_lse) is not bool or type(lse_base_e) is not bool:
        raise TypeError(f"return_lse and lse_base_e must be bools, got {type(return_lse).__name__} and "
                        f"{type(lse_base_e).__name__}")
    world, rank = _group_facts(group)
    _check_cp(cp_attn_out, cp_attn_lse, world)
    if world == 1:
        return (cp_attn_out, cp_attn_lse) if return_lse else cp_attn_out
    check_runnable(cp_attn_out, "cp_attn_out")
    B, HW, D = cp_attn_out.shape
    lse_c = cp_attn_lse.contiguous()
    lses = lse_c.new_empty((world, B, HW))
    _all_gather(lses, lse_c, group)
    lse_all = lses.new_empty((B, HW))
    if reduce_scatter:
        # the corrected output goes straight into [W, B, H, D]: rank w's heads are chunk w, which the
        # reduce-scatter hands to rank w as a contiguous [B, H, D] (no transpose before or after)
        H = HW // world
        buf = cp_attn_out.new_empty((world, B, H, D))
        _correct_launch(cp_attn_out, buf, (H * D, B * H * D, D), world, H, lses, rank, lse_all, lse_base_e, access,
                        None)
        out = cp_attn_out.new_empty((B, H, D))
        _reduce_scatter(out, buf, group, rank)
        return (out, lse_all[:, rank * H:(rank + 1) * H]) if return_lse else out
    out = cp_attn_out.new_empty((B, HW, D))
    _correct_launch(cp_attn_out, out, (HW * D, HW * D, D), 1, HW, lses, rank, lse_all, lse_base_e, access, None)
    _dist().all_reduce(out, group=group)
    return (out, lse_all) if return_lse else out


def cp_lse_ag_out_rs(cp_attn_out: torch.Tensor, cp_attn_lse: torch.Tensor, group, *, return_lse: bool = False,
                     lse_base_e: bool = True, access: str | None = None):
    """The decode-time combine of context parallelism, reduce-scatter form: each of the W ranks of
    `group` holds its partial attention output over its shard of the KV cache; every rank ends with
    its own H heads of the exact full-attention output. Not in place (cp_attn_out is only read).

    cp_attn_out [B, H * W, D] float16/bfloat16/float32 (row and head strides arbitrary, last dim
    contiguous); cp_attn_lse [B, H * W] its LSEs (natural log, base 2 with lse_base_e=False), any
    float dtype. The LSEs are all-gathered, each rank corrects its output (correct_attn_out's kernel,
    writing into a [W, B, H, D] buffer) and a reduce-scatter sums the W corrected outputs in the
    output dtype, rank w receiving heads [w H, (w + 1) H). Returns out [B, H, D] (contiguous), or
    (out, lse) with lse [B, H] the combined LSE of those heads (a view of a [B, H * W] tensor) when
    return_lse. World size 1 returns the inputs unchanged, in the same form. Collectives the
    backend lacks fall back to equivalents (see LACKS_REDUCE_SCATTER). Eager only (torch.distributed).

    >>> out = lmkernels.cp_lse_ag_out_rs(attn_out, attn_lse, dist.group.WORLD)  # [B, H*W, D] -> [B, H, D]
    """
    return _combine(cp_attn_out, cp_attn_lse, group, True, return_lse, lse_base_e, access)


def cp_lse_ag_out_ar(cp_attn_out: torch.Tensor, cp_attn_lse: torch.Tensor, group, *, return_lse: bool = False,
                     lse_base_e: bool = True, access: str | None = None):
    """As cp_lse_ag_out_rs, with an all-reduce: every rank ends with all H * W heads of the exact
    full-attention output, out [B, H * W, D] (new, contiguous), and with return_lse the combined LSE
    [B, H * W]. World size 1 returns the inputs unchanged.

    >>> out = lmkernels.cp_lse_ag_out_ar(attn_out, attn_lse, dist.group.WORLD)  # [B, H*W, D] everywhere
    """
    return _combine(cp_attn_out, cp_attn_lse, group, False, return_lse, lse_base_e, access)
