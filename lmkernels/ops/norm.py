"""RMSNorm and fused residual-add RMSNorm (vLLM's rms_norm and fused_add_rms_norm).

Shape of the module (for library.py):
  rms_norm, fused_add_rms_norm   public: eager calls on plain tensors go to _eager, which launches
                            from the memo (_memo: the operand facts of a call the fast branch has
                            launched -> its bound launches, so a repeat call is one tuple of facts,
                            one lookup and the C launch) or else calls norm_into; torch.compile
                            tracing, fake and subclass tensors go to torch.ops.lmkernels.<name>.
  norm_into                 what the registered ops call: a straight-line fast branch for the common
                            call, else _norm_into_careful (every check, other access modes, [..., H]).
  check_norm                shape/dtype/device checks only (no data: the fake implementations).
"""
from __future__ import annotations

import torch
import triton

from ..kernels.norm import _rms_norm_kernel
from ..runtime import access as _access
from ..runtime.device import num_sms, pdl_prefetch
from ..runtime.launch import LaunchMemo, Launcher
from ._common import (FLOAT_DTYPES, as_rows, check_float, check_like, check_runnable, check_tensor,
                      cpu_interpreted, new_rows_like, resolve_pdl, tile_descriptor)

_launch = Launcher(_rms_norm_kernel, "tttt" "n" "iiii" "f")
_launch_desc = Launcher(_rms_norm_kernel, "ddtd" "n" "iiii" "f")  # access="descriptor": the weight stays a pointer

# One row is one register tile. sm90 compile (cuobjdump): no spills up to H = 16384 (bf16 and fp32) and
# bf16 32768; fp32 32768 spills 96 bytes a thread and H = 65536 700-1000, correct but slower.
MAX_HIDDEN = 65536


_plans: dict = {}
# The facts tuple of _eager -> [H, the prefetching config's row limit, its bound launch, the plain
# config's bound launch] (a config's launch is bound once it has run: Launcher.bind). Filled by
# norm_into's fast branch after it launched.
_memo = LaunchMemo()
_Tensor = torch.Tensor  # read by the hot path without an attribute lookup
_is_compiling = torch.compiler.is_compiling


def norm_config(H: int, elem_bytes: int) -> tuple[int, int]:
    """(BLOCK_H, num_warps) from the hidden size and dtype alone, never from the row count: the
    reduction's order follows the tile layout, so a config that moved with T would break batch
    invariance.

    Warps: one 16-byte vector a thread across the whole tile (BLOCK_H / (32 x 16/elem) warps), at
    most 8. A tile that threads x vectors over-cover (e.g. fp32 H = 136 at 4 warps) is replicated,
    and the descriptor mode then laid it out differently and reduced in another order (2-3 ulp
    apart on the H100); exact tiling keeps every mode on one layout. H100 sweep (bf16): 8 warps is
    best or within 1 % at H = 4096 and 8192 from T = 1 to 32768; 16 and 32 lose 5-30 % at T >= 4096.
    """
    block = triton.next_power_of_2(H)
    # ...and from H = 16384 on, enough warps that a thread holds at most 32 values (64 at H = 65536):
    # 8 warps would leave 128-256 a thread and spill (bf16 32768: 255 registers + stack at 8 warps,
    # 64 registers and no stack at 32)
    return block, min(32, max(1, min(8, block * elem_bytes // (32 * 16)), block // (32 * 32)))


def _plan(H: int, dtype, device: int, has_residual: bool, has_weight: bool, pdl):
    """(BLOCK_H, num_warps, pointer-mode constexprs, their launcher meta id, use PDL, prefetch row
    limit, the constexprs and meta id with PREFETCH) for one (H, dtype, device, operands, pdl
    request) combination, cached under that tuple in _plans (the hot path reads _plans itself and
    calls here on a miss).

    PREFETCH (the row and weight asked of L2 before the PDL wait, kernels/norm.py) for rms_norm
    calls of at most one program an SM, where latency sets the time. H100 (probe_prefetch.md,
    H = 4096): rms_norm T = 1 1.49 -> 1.30 µs, T = 16 1.53 -> 1.41; fused_add_rms_norm 1.43 -> 1.47
    and 1.50 -> 1.52 (none for it); at T = 4096 every program prefetching cost 1.3-3.3x (H = 8192 /
    4096), so large grids never do."""
    key = (H, dtype, device, has_residual, has_weight, pdl)
    plan = _plans.get(key)
    if plan is None:
        use_pdl = resolve_pdl(pdl, device)
        block, warps = norm_config(H, dtype.itemsize)
        consts = (has_residual, has_weight, block, _access.POINTER, use_pdl, 0)
        limit = num_sms(max(device, 0)) if pdl_prefetch(use_pdl) and not has_residual else 0
        pre = consts[:5] + (limit,)  # every program of a grid of at most `limit` prefetches
        plan = _plans[key] = (block, warps, consts, _launch.meta_id(consts, warps, 1, (dtype,) * 4, use_pdl), use_pdl,
                              limit, pre, _launch.meta_id(pre, warps, 1, (dtype,) * 4, use_pdl))
    return plan


def check_norm(x, residual, weight, out) -> None:
    """Shape/dtype/device checks that need no data (also run on fake tensors under torch.compile)."""
    check_float(x, "x")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension, got a 0-d tensor")
    H = x.shape[-1]
    if H > MAX_HIDDEN:
        raise ValueError(f"x.shape[-1]={H} exceeds the largest supported hidden size {MAX_HIDDEN}")
    if weight is not None:
        check_like(weight, "weight", x, "x", shape=(H,))
        if weight.stride(0) != 1 and H > 1:
            raise ValueError(f"weight.stride(0)={weight.stride(0)} must be 1")
    if residual is not None:
        check_like(residual, "residual", x, "x")
    if out is not None:
        check_like(out, "out", x, "x")


def norm_into(x, residual, weight, y, eps: float, access, pdl=None, memo_facts=None):
    """y <- rms_norm(x [+ residual]) with residual updated in place; all checks, then one launch.
    y None: rms_norm's allocating call; y is made here, like x, and returned (as it is otherwise).
    memo_facts: _eager's facts for these operands; a launch from the fast branch is remembered under
    them.

    The common call (2-D, on a GPU, matching dtypes and devices, contiguous last dims, float eps,
    pointer mode) is recognised and launched with as few Python operations as it can be: the H100
    hosts measured 0.1-0.9 µs for each (a shape comparison 0.9 µs, a Python call 0.3), against a
    budget of one plain torch op (7-11 µs there, 4-5.5 of them the C launch). An output made here needs
    no checking: that saves the allocating call its dtype, device, shape and stride questions (on
    this CPU 3.54 -> 3.0 µs of Python, the launch excluded). Anything else takes the careful path,
    which explains what is wrong, reshapes [..., H] into rows, or resolves another access mode.
    """
    shape = x.shape
    dt = x.dtype
    dev = x.get_device()
    if ((dev >= 0 or cpu_interpreted(x, x if y is None else y, weight, residual)) and len(shape) == 2
            and dt in FLOAT_DTYPES and type(eps) is float
            and (y is None or y.dtype is dt and y.get_device() == dev and y.shape == shape)
            and (weight is None or (weight.dtype is dt and weight.get_device() == dev
                                    and weight.stride() == (1,) and weight.numel() == shape[1]))
            and (residual is None or (residual.dtype is dt and residual.get_device() == dev
                                      and residual.shape == shape))
            and (access is None and _access._default == _access.POINTER
                 or type(access) is str and access == "pointer")
            and (pdl is None or type(pdl) is bool)):
        n_rows, H = shape
        xs = x.stride()
        # empty_like of a 2-D x whose last stride is 1 has rows H apart: a dense x keeps its strides
        # (H, 1), any other gets contiguous ones; a single row's stride is never used
        ys = (H, 1) if y is None else y.stride()
        rs = xs if residual is None else residual.stride()
        if xs[1] == 1 and ys[1] == 1 and rs[1] == 1 and n_rows > 0 and 0 < H <= MAX_HIDDEN:
            plan = _plans.get((H, dt, dev, residual is not None, weight is not None, pdl))
            if plan is None:
                plan = _plan(H, dt, dev, residual is not None, weight is not None, pdl)
            if y is None:
                y = torch.empty_like(x)
            r2 = x if residual is None else residual
            w2 = x if weight is None else weight
            small = n_rows <= plan[5]
            if not _launch.fast(dev, plan[7] if small else plan[3], n_rows, 1, x, r2, w2, y, n_rows, H, xs[0], rs[0],
                                ys[0], eps):
                _launch(dev, (n_rows,), (x, r2, w2, y, n_rows, H, xs[0], rs[0], ys[0], eps),
                        plan[6] if small else plan[2], num_warps=plan[1], pdl=plan[4])
            if memo_facts is not None:
                _remember(memo_facts, plan, small, dev, (x, r2, w2, y, n_rows, H, xs[0], rs[0], ys[0], eps))
            return y
    if y is None:
        y = new_rows_like(x)
    _norm_into_careful(x, residual, weight, y, eps, access, pdl)
    return y


def _remember(facts, plan, small: bool, dev: int, args: tuple) -> None:
    """Bind the launch the fast branch just made (x, residual, weight, y and the row count change
    from call to call; H, the row strides and eps are in the facts) under _eager's facts."""
    entry = _memo.entry(facts, lambda: [args[5], plan[5], None, None])
    if entry[2 if small else 3] is None:
        entry[2 if small else 3] = _launch.bind(dev, args, plan[6] if small else plan[2], plan[1], plan[4], vary=5)


def _eager(x, residual, weight, y, eps, access, pdl):
    """An eager call on a plain tensor x (rms_norm: residual None, y its out; fused_add_rms_norm:
    y is x). The memo's facts: every operand's device, dtype and strides (the strides' length is the
    rank), the weight's shape, eps, the access request and default, pdl; what they leave open (the
    row count, and H where no weight pins it, the shapes of y and residual) is compared here. A
    call they do not cover, or one whose bound launch refuses it (an unaligned pointer, a launch
    hook, another current device), goes to norm_into, which checks it and fills the memo.

    The H100 hosts measured the fast branch's Python at 2.0 µs for rms_norm(out=) and 3.7 with
    the allocation (results/h100/host_h100_s26_fast.txt), besides Launcher.fast's key; the memo
    asks each fact once and compares nothing but the shapes."""
    facts = None
    if (type(eps) is float and (pdl is None or type(pdl) is bool) and (access is None or type(access) is str)
            and (weight is None or isinstance(weight, _Tensor)) and (y is None or type(y) is _Tensor)
            and (residual is None or type(residual) is _Tensor)):
        facts = (x.get_device(), x.dtype, x.stride(),
                 None if weight is None else (weight.get_device(), weight.dtype, weight.stride(), weight.shape),
                 None if y is None else True if y is x else (y.get_device(), y.dtype, y.stride()),
                 None if residual is None else (residual.get_device(), residual.dtype, residual.stride()),
                 eps, access, _access._default, pdl)
        last = _memo.last
        entry = last[1] if facts == last[0] else _memo.find(facts)
        if entry is not None:
            shape = x.shape
            n_rows, H = shape  # two strides in the facts: x is 2-D
            go = entry[2] if n_rows <= entry[1] else entry[3]
            if (go is not None and H == entry[0] and n_rows > 0 and (y is None or y.shape == shape)
                    and (residual is None or residual.shape == shape)):
                out = torch.empty_like(x) if y is None else y
                if go(n_rows, 1, x, x if residual is None else residual, x if weight is None else weight, out,
                      n_rows):
                    return out
    return norm_into(x, residual, weight, y, eps, access, pdl, facts)


def _norm_into_careful(x, residual, weight, y, eps, access, pdl) -> None:
    check_norm(x, residual, weight, y)
    check_runnable(x, "x")
    if not isinstance(eps, (float, int)) or isinstance(eps, bool):
        raise TypeError(f"eps must be a float, got {type(eps).__name__}")
    eps = float(eps)
    if x.numel() == 0:
        return
    x2, sx = as_rows(x, "x")
    y2, sy = as_rows(y, "out")
    r2, sr = as_rows(residual, "residual") if residual is not None else (x2, sx)
    n_rows, H = x2.shape
    dev = x.get_device()
    block, warps, consts, _, use_pdl, limit = _plan(H, x.dtype, dev, residual is not None, weight is not None,
                                                    resolve_pdl(pdl, dev))[:6]
    w2 = weight if weight is not None else x2
    mode = _access.resolve(access, [("x", x2, sx), ("out", y2, sy)] + (
        [("residual", r2, sr)] if residual is not None else []))
    consts = consts[:3] + (mode, use_pdl, limit if n_rows <= limit and mode == _access.POINTER else 0)
    if mode != _access.DESCRIPTOR:
        _launch(dev, (n_rows,), (x2, r2, w2, y2, n_rows, H, sx, sr, sy, eps), consts, num_warps=warps, pdl=use_pdl)
        return
    # Descriptors: host-made, so a program builds none, and one row a program as for pointers (H100,
    # H = 8192 T = 32768: 361 µs, pointer 363; the persistent grid with a 2-stage TMA prefetch that
    # in-kernel descriptors needed ran 380-387)
    dx = tile_descriptor(x2, n_rows, H, sx, 1, block)
    dr = tile_descriptor(r2, n_rows, H, sr, 1, block) if residual is not None else dx
    _launch_desc(dev, (n_rows,), (dx, dr, w2, tile_descriptor(y2, n_rows, H, sy, 1, block), n_rows, H, sx, sr, sy, eps),
                 consts, num_warps=warps, pdl=use_pdl)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6, *,
             out: torch.Tensor | None = None, access: str | None = None, pdl: bool | None = None) -> torch.Tensor:
    """RMSNorm over the last dim: ``y = x * rsqrt(mean(x^2) + eps) * weight``.

    x [..., H] float16/bfloat16/float32, rows may be strided, last dim contiguous; weight None or
    [H] of x's dtype; out (optional) like x. fp32 maths, one rounding on store. Not in place.
    A row's result is bit-identical whatever the number of rows in the call (batch invariant).
    pdl: programmatic dependent launch (None: on where the GPU has it, sm90+), which lets this
    kernel launch while the previous one drains; it never changes the result.

    >>> y = lmkernels.rms_norm(torch.randn(4, 4096, device="cuda", dtype=torch.bfloat16),
    ...                        torch.ones(4096, device="cuda", dtype=torch.bfloat16))
    """
    if type(x) is _Tensor and not _is_compiling():
        return _eager(x, None, weight, out, eps, access, pdl)
    check_tensor(x, "x")  # any other tensor (torch.compile tracing, fake, subclass): through the dispatcher
    if out is None:
        return torch.ops.lmkernels.rms_norm(x, weight, eps, access, pdl)
    torch.ops.lmkernels.rms_norm_out(out, x, weight, eps, access, pdl)
    return out


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None,
                       eps: float = 1e-6, *, access: str | None = None,
                       pdl: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """In place, vLLM's semantics: ``residual <- x + residual`` (rounded to the dtype), then
    ``x <- rms_norm(residual, weight, eps)`` with the variance of the rounded sum. Returns (x, residual).

    x, residual [..., H] of one dtype (float16/bfloat16/float32); weight [H] or None. pdl as for rms_norm.

    >>> x, res = lmkernels.fused_add_rms_norm(x, res, w, 1e-6)
    """
    if type(x) is _Tensor and not _is_compiling():
        _eager(x, residual, weight, x, eps, access, pdl)
    else:
        check_tensor(x, "x")
        torch.ops.lmkernels.fused_add_rms_norm(x, residual, weight, eps, access, pdl)
    return x, residual
