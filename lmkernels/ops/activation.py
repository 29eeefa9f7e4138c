"""Gated activations: silu_and_mul (vLLM's) and swiglustep_and_mul (Step-3.5's clamped SwiGLU)."""
from __future__ import annotations

import math

import torch
import triton

from ..kernels.activation import _gated_act_kernel
from ..runtime import access as _access
from ..runtime.device import is_interpreter, num_sms
from ..runtime.launch import Launcher
from ._common import (access_mode, as_rows, check_float, check_like, check_runnable,
                      ensure_descriptor_allocator, persistent_programs, use_dispatcher)

_launch = Launcher(_gated_act_kernel, "tt" "n" "iii" "f")

SILU_MUL, SWIGLUSTEP = 0, 1
ACT_STAGES, ACT_WAVES = 2, 2


def act_config(n_rows: int, d: int, elem_bytes: int, sms: int) -> tuple[int, int, int]:
    """(BLOCK_T, BLOCK_D, num_warps). Elementwise, so the config may follow T freely.

    Each thread moves 16-byte vectors (8 bf16). Decode (few rows): 1024-column programs so that
    d = 14336 spreads over 14 SMs per row. Prefill: 2048-element tiles, enough programs to fill
    every SM several times over.
    """
    vec = 16 // elem_bytes
    block_d = min(triton.next_power_of_2(d), 1024)
    block_t = 1
    if n_rows * triton.cdiv(d, block_d) >= 8 * sms:
        block_d = min(triton.next_power_of_2(d), 2048)
    warps = max(1, min(8, block_t * block_d // (32 * vec)))
    return block_t, block_d, warps


def check_gated(x, out) -> None:
    check_float(x, "x")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension, got a 0-d tensor")
    if x.shape[-1] % 2:
        raise ValueError(f"x.shape[-1]={x.shape[-1]} must be even: [..., 2d] holds gate then up")
    if out is not None:
        check_like(out, "out", x, "x", shape=(*x.shape[:-1], x.shape[-1] // 2))


def gated_into(x, y, act: int, limit: float, access) -> None:
    check_gated(x, y)
    check_runnable(x, "x")
    if x.numel() == 0:
        return
    x2, sx = as_rows(x, "x")
    y2, sy = as_rows(y, "out")
    n_rows, d = y2.shape
    mode = access_mode(access, lambda: [("x", x2, sx), ("x[..., d:]", x2[:, d:], sx), ("out", y2, sy)],
                       x.element_size())
    if mode == _access.DESCRIPTOR:
        ensure_descriptor_allocator()
    dev = x.get_device()
    block_t, block_d, warps = act_config(n_rows, d, x.element_size(), num_sms(max(dev, 0)))
    n_tiles = triton.cdiv(n_rows, block_t) * triton.cdiv(d, block_d)
    grid = (persistent_programs(dev, n_tiles, warps, ACT_WAVES),)
    _launch(grid, (x2, y2, n_rows, d, sx, sy, float(limit)),
            (act, block_t, block_d, not is_interpreter(), ACT_STAGES, mode), num_warps=warps)


def _out_like(x):
    check_gated(x, None)
    return torch.empty((*x.shape[:-1], x.shape[-1] // 2), dtype=x.dtype, device=x.device)


def silu_and_mul(x: torch.Tensor, *, out: torch.Tensor | None = None, access: str | None = None) -> torch.Tensor:
    """``silu(x[..., :d]) * x[..., d:]`` for x [..., 2d] -> [..., d]; float16/bfloat16/float32.

    Rounded as PyTorch's ``F.silu(g) * u``: silu rounded to the dtype, then the product. On a GPU
    the result is bit-identical to that expression. Not in place.

    >>> y = lmkernels.silu_and_mul(torch.randn(4, 2 * 14336, device="cuda", dtype=torch.bfloat16))
    """
    if use_dispatcher(x):
        if out is None:
            return torch.ops.lmkernels.silu_and_mul(x, access)
        torch.ops.lmkernels.silu_and_mul_out(out, x, access)
        return out
    if out is None:
        out = _out_like(x)
    gated_into(x, out, SILU_MUL, 0.0, access)
    return out


def swiglustep_and_mul(x: torch.Tensor, limit: float = 7.0, *, out: torch.Tensor | None = None,
                       access: str | None = None) -> torch.Tensor:
    """Step-3.5's clamped SwiGLU: ``min(silu(g), limit) * clamp(u, -limit, limit)``, g = x[..., :d].

    x [..., 2d] float16/bfloat16/float32 -> [..., d]. fp32 maths, one rounding; NaN propagates.
    `limit` is a runtime scalar: a new value does not recompile. Not in place.

    >>> y = lmkernels.swiglustep_and_mul(x, limit=7.0)
    """
    if not isinstance(limit, (float, int)) or isinstance(limit, bool) or not math.isfinite(limit) or limit < 0:
        raise ValueError(f"limit={limit!r} must be a finite non-negative float")
    if use_dispatcher(x):
        if out is None:
            return torch.ops.lmkernels.swiglustep_and_mul(x, float(limit), access)
        torch.ops.lmkernels.swiglustep_and_mul_out(out, x, float(limit), access)
        return out
    if out is None:
        out = _out_like(x)
    gated_into(x, out, SWIGLUSTEP, limit, access)
    return out
