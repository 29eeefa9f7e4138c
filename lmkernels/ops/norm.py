"""RMSNorm and fused residual-add RMSNorm (vLLM's rms_norm and fused_add_rms_norm)."""
from __future__ import annotations

import torch
import triton

from ..kernels.norm import _rms_norm_kernel
from ..runtime import access as _access
from ..runtime.launch import Launcher
from ._common import (access_mode, as_rows, check_float, check_like, check_runnable,
                      ensure_descriptor_allocator, persistent_programs, use_dispatcher)

_launch = Launcher(_rms_norm_kernel, "tttt" "n" "iiii" "f")

MAX_HIDDEN = 65536  # one row is one register tile: 65536 fp32 = 64 registers a thread at 32 warps


_configs: dict = {}
NORM_STAGES, NORM_WAVES = 2, 1


def norm_config(H: int) -> tuple[int, int]:
    """(BLOCK_H, num_warps) from the hidden size alone, never from the row count: the reduction's
    order is fixed by the tile layout, so a config that moved with T would break batch invariance.

    H100 sweep (benchmarks/sweep.py, bf16): 8 warps is best or within 1 % at H = 4096 and 8192 for
    T = 1 (1.60 µs) through T = 32768 (2.6-2.8 TB/s); 16 and 32 warps lose 5-30 % at T >= 4096.
    """
    cfg = _configs.get(H)
    if cfg is None:
        block = triton.next_power_of_2(H)
        warps = 32 if block >= 65536 else 16 if block >= 32768 else 8 if block >= 2048 else 4
        cfg = _configs[H] = (block, warps)
    return cfg


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


def norm_into(x, residual, weight, y, eps: float, access) -> None:
    """y <- rms_norm(x [+ residual]) with residual updated in place; all checks, then one launch."""
    check_norm(x, residual, weight, y)
    check_runnable(x, "x")
    if not isinstance(eps, (float, int)):
        raise TypeError(f"eps must be a float, got {type(eps).__name__}")
    if x.numel() == 0:
        return
    x2, sx = as_rows(x, "x")
    y2, sy = as_rows(y, "out")
    H = x2.shape[1]
    r2, sr = as_rows(residual, "residual") if residual is not None else (x2, sx)
    mode = access_mode(access, lambda: [("x", x2, sx), ("out", y2, sy)] + (
        [("residual", r2, sr)] if residual is not None else []), x.element_size())
    if mode == _access.DESCRIPTOR:
        ensure_descriptor_allocator()
    block, warps = norm_config(H)
    n_rows = x2.shape[0]
    # A persistent grid: each program loops over its rows and, with NORM_STAGES = 2, prefetches the
    # next row while reducing this one (and builds its tensor descriptors once, not once a row).
    # Neither depends on T, so the per-row instructions are the same for every batch size.
    grid = (persistent_programs(x.get_device(), n_rows, warps, NORM_WAVES),)
    w = weight if weight is not None else x2
    _launch(grid, (x2, r2, w, y2, n_rows, H, sx, sr, sy, float(eps)),
            (residual is not None, weight is not None, block, NORM_STAGES, mode), num_warps=warps)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6, *,
             out: torch.Tensor | None = None, access: str | None = None) -> torch.Tensor:
    """RMSNorm over the last dim: ``y = x * rsqrt(mean(x^2) + eps) * weight``.

    x [..., H] float16/bfloat16/float32, rows may be strided, last dim contiguous; weight None or
    [H] of x's dtype; out (optional) like x. fp32 maths, one rounding on store. Not in place.
    A row's result is bit-identical whatever the number of rows in the call (batch invariant).

    >>> y = lmkernels.rms_norm(torch.randn(4, 4096, device="cuda", dtype=torch.bfloat16),
    ...                        torch.ones(4096, device="cuda", dtype=torch.bfloat16))
    """
    if use_dispatcher(x):
        if out is None:
            return torch.ops.lmkernels.rms_norm(x, weight, eps, access)
        torch.ops.lmkernels.rms_norm_out(out, x, weight, eps, access)
        return out
    if out is None:
        check_float(x, "x")
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    norm_into(x, None, weight, out, eps, access)
    return out


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None,
                       eps: float = 1e-6, *, access: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """In place, vLLM's semantics: ``residual <- x + residual`` (rounded to the dtype), then
    ``x <- rms_norm(residual, weight, eps)`` with the variance of the rounded sum. Returns (x, residual).

    x, residual [..., H] of one dtype (float16/bfloat16/float32); weight [H] or None.

    >>> x, res = lmkernels.fused_add_rms_norm(x, res, w, 1e-6)
    """
    if use_dispatcher(x):
        torch.ops.lmkernels.fused_add_rms_norm(x, residual, weight, eps, access)
        return x, residual
    norm_into(x, residual, weight, x, eps, access)
    return x, residual
