"""Gated activations: silu_and_mul (vLLM's) and swiglustep_and_mul (Step-3.5's clamped SwiGLU)."""
from __future__ import annotations

import math

import torch
import triton

from ..kernels.activation import _gated_act_kernel
from ..runtime import access as _access
from ..runtime.device import is_interpreter, num_sms
from ..runtime.launch import Launcher
from ._common import (FLOAT_DTYPES, as_rows, check_float, check_like, check_runnable, cpu_interpreted,
                      halves_descriptor, resolve_pdl, tile_descriptor, use_dispatcher)

_launch = Launcher(_gated_act_kernel, "tt" "n" "iii" "f")
_launch_desc = Launcher(_gated_act_kernel, "dd" "n" "iii" "f")  # access="descriptor"

SILU_MUL, SWIGLUSTEP = 0, 1
PRECISE = not is_interpreter()  # libdevice expf on GPUs; the interpreter has no libdevice
DESCRIPTOR_BLOCK_D, DESCRIPTOR_WARPS = 1024, 4


MAX_GRID_Y = 65535  # CUDA's limit on grid axis 1, which carries the row tiles


def one_wave_rows(d: int, sms: int) -> int:
    """The most rows whose 512-column, 8-warp programs all fit on the GPU at once (2048 threads an SM)."""
    return sms * (2048 // 256) // -(-d // 512)


def act_config(n_rows: int, d: int, sms: int) -> tuple[int, int, int]:
    """(BLOCK_T, BLOCK_D, num_warps). Elementwise, so the config may follow T freely.

    H100 sweep (bf16, d = 14336, outputs allocated per call; benchmarks/sweep.py), 8-warp programs:
    while 512-column tiles fit one wave, 512 columns (2 elements a thread: T = 1 1.39 µs against
    1.63 for 1024 x 4 warps, T = 16 2.21 µs); beyond, 1024 columns (4 a thread: T = 4096 2.93 TB/s,
    T = 16384 3.05, 0.5-1 % ahead of 512 x 4 warps). Row tiles grow past one row only where the row
    count would overflow grid axis 1.
    """
    per_thread = 2 if n_rows <= one_wave_rows(d, sms) else 4
    block_d = min(256 * per_thread, triton.next_power_of_2(d))
    warps = max(1, min(8, block_d // (32 * per_thread)))
    block_t = 1
    while -(-n_rows // block_t) > MAX_GRID_Y:
        block_t *= 2
    return block_t, block_d, warps


def check_gated(x, out) -> None:
    check_float(x, "x")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension, got a 0-d tensor")
    if x.shape[-1] % 2:
        raise ValueError(f"x.shape[-1]={x.shape[-1]} must be even: [..., 2d] holds gate then up")
    if out is not None:
        check_like(out, "out", x, "x", shape=(*x.shape[:-1], x.shape[-1] // 2))


def gated_into(x, y, act: int, limit: float, access, pdl=None) -> None:
    """y <- act(x): the common 2-D GPU call in pointer mode launches with few Python operations
    (see norm_into); anything else takes the careful path."""
    shape = x.shape
    dt = x.dtype
    dev = x.get_device()
    if ((dev >= 0 or cpu_interpreted(x, y, None, None)) and len(shape) == 2 and dt in FLOAT_DTYPES
            and y.dtype is dt and y.get_device() == dev
            and (access is None and _access._default == _access.POINTER
                 or type(access) is str and access == "pointer")
            and (pdl is None or type(pdl) is bool)):
        n_rows, d2 = shape
        d = d2 // 2
        xs = x.stride()
        ys = y.stride()
        if (d2 % 2 == 0 and y.shape == (n_rows, d) and xs[1] == 1 and ys[1] == 1
                and 0 < n_rows <= MAX_GRID_Y and d > 0):
            plan = _plans.get((d, dt, dev, act, pdl))
            if plan is None:
                plan = _plan(d, dt, dev, act, pdl)
            col_tiles, consts, warps, meta = plan[1] if n_rows <= plan[0] else plan[2]
            limit = float(limit)
            if not _launch.fast(dev, meta, col_tiles, n_rows, x, y, n_rows, d, xs[0], ys[0], limit):
                _launch(dev, (col_tiles, n_rows), (x, y, n_rows, d, xs[0], ys[0], limit), consts, num_warps=warps,
                        pdl=plan[3])
            return
    _gated_into_careful(x, y, act, limit, access, pdl)


def _gated_into_careful(x, y, act: int, limit: float, access, pdl) -> None:
    check_gated(x, y)
    check_runnable(x, "x")
    use_pdl = resolve_pdl(pdl, x.get_device())  # also refuses a pdl that is not a bool or None
    if x.numel() == 0:
        return
    x2, sx = as_rows(x, "x")
    y2, sy = as_rows(y, "out")
    n_rows, d = y2.shape
    dev = x.get_device()
    block_t, block_d, warps = act_config(n_rows, d, num_sms(max(dev, 0)))
    row_tiles, col_tiles = -(-n_rows // block_t), -(-d // block_d)
    mode = _access.resolve(access, [("x", x2, sx), ("x[..., d:]", x2[:, d:], sx), ("out", y2, sy)])
    if mode != _access.DESCRIPTOR:
        _launch(dev, (col_tiles, row_tiles), (x2, y2, n_rows, d, sx, sy, float(limit)),
                (act, block_t, block_d, PRECISE, mode, use_pdl), num_warps=warps, pdl=use_pdl)
        return
    # Descriptors: one tile a program as for pointers, one row x 1024 columns, 4 warps, gate and up in
    # one [1, 2, 1024] box (kernels/access.py load_halves_2d). H100, T = 4096 (probe_limits_desc.md),
    # behind pointer: swiglustep 0.8 % (d = 4096) / 0.3 % (14336), silu 2.2 / 1.5 %; 1 x 2048 tiles
    # 0.7-2.2 %, 8 warps or 16-row tiles up to 7 %. With two boxes (one per half) Triton waited out
    # the first before issuing the second, and swiglustep ran 8.1 % behind at d = 4096.
    block_d = min(DESCRIPTOR_BLOCK_D, triton.next_power_of_2(d))
    warps = max(1, min(DESCRIPTOR_WARPS, block_d // 256))
    col_tiles = -(-d // block_d)
    _launch_desc(dev, (col_tiles, row_tiles),
                 (halves_descriptor(x2, n_rows, d, sx, block_t, block_d),
                  tile_descriptor(y2, n_rows, d, sy, block_t, block_d), n_rows, d, sx, sy, float(limit)),
                 (act, block_t, block_d, PRECISE, mode, use_pdl), num_warps=warps, pdl=use_pdl)


_plans: dict = {}


def _plan(d: int, dtype, device: int, act: int, pdl):
    """Pointer-mode launches of act_config for one (d, dtype, device, act, pdl request), cached: (the
    most rows that run as one wave, (column tiles, constexprs, num_warps, launcher meta id) for row
    counts up to there and beyond, use PDL)."""
    key = (d, dtype, device, act, pdl)
    plan = _plans.get(key)
    if plan is None:  # the hot path asks _plans itself and calls here on a miss
        use_pdl = resolve_pdl(pdl, device)
        sms = num_sms(max(device, 0))
        wave_rows = max(1, one_wave_rows(d, sms))
        launches = []
        for n_rows in (wave_rows, wave_rows + 1):
            block_t, block_d, warps = act_config(n_rows, d, sms)
            consts = (act, block_t, block_d, PRECISE, _access.POINTER, use_pdl)
            launches.append((-(-d // block_d), consts, warps,
                             _launch.meta_id(consts, warps, 1, (dtype,) * 2, use_pdl)))
        plan = _plans[key] = (wave_rows, *launches, use_pdl)
    return plan


def gated_out(x):
    """[..., d] for x [..., 2d]; a bad x is refused by gated_into, after this allocation."""
    shape = x.shape
    if not shape:
        check_gated(x, None)
    return x.new_empty((*shape[:-1], shape[-1] // 2))  # 3.7 µs on the H100 host, torch.empty(..., device=) 5.7


def silu_and_mul(x: torch.Tensor, *, out: torch.Tensor | None = None, access: str | None = None,
                 pdl: bool | None = None) -> torch.Tensor:
    """``silu(x[..., :d]) * x[..., d:]`` for x [..., 2d] -> [..., d]; float16/bfloat16/float32.

    Rounded as PyTorch's ``F.silu(g) * u``: silu rounded to the dtype, then the product. On a GPU
    the result is bit-identical to that expression. Not in place. pdl: programmatic dependent
    launch (None: where the GPU has it, sm90+); never changes the result.

    >>> y = lmkernels.silu_and_mul(torch.randn(4, 2 * 14336, device="cuda", dtype=torch.bfloat16))
    """
    if use_dispatcher(x):
        if out is None:
            return torch.ops.lmkernels.silu_and_mul(x, access, pdl)
        torch.ops.lmkernels.silu_and_mul_out(out, x, access, pdl)
        return out
    if out is None:
        out = gated_out(x)
    gated_into(x, out, SILU_MUL, 0.0, access, pdl)
    return out


def swiglustep_and_mul(x: torch.Tensor, limit: float = 7.0, *, out: torch.Tensor | None = None,
                       access: str | None = None, pdl: bool | None = None) -> torch.Tensor:
    """Step-3.5's clamped SwiGLU: ``min(silu(g), limit) * clamp(u, -limit, limit)``, g = x[..., :d].

    x [..., 2d] float16/bfloat16/float32 -> [..., d]. fp32 maths, one rounding; NaN propagates.
    `limit` is a runtime scalar: a new value does not recompile. Not in place. pdl as for silu_and_mul.

    >>> y = lmkernels.swiglustep_and_mul(x, limit=7.0)
    """
    if not isinstance(limit, (float, int)) or isinstance(limit, bool) or not math.isfinite(limit) or limit < 0:
        raise ValueError(f"limit={limit!r} must be a finite non-negative float")
    if use_dispatcher(x):
        if out is None:
            return torch.ops.lmkernels.swiglustep_and_mul(x, float(limit), access, pdl)
        torch.ops.lmkernels.swiglustep_and_mul_out(out, x, float(limit), access, pdl)
        return out
    if out is None:
        out = gated_out(x)
    gated_into(x, out, SWIGLUSTEP, limit, access, pdl)
    return out
