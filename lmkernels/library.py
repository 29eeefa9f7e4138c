"""torch.library registration: the ops as torch.ops.lmkernels.*, for torch.compile and CUDA graphs.

Functional ops allocate their output; `*_out` variants write into a caller's tensor. Eager calls of
the public functions skip the dispatcher (ops/_common.use_dispatcher): it would add its own cost to a
launch that already validates, so they pay for dispatch zero times, not twice. Under torch.compile
the public functions route here, and the fake implementations give shapes without running a kernel.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .ops.activation import SILU_MUL, SWIGLUSTEP, check_gated, gated_into, gated_out
from .ops.norm import check_norm, norm_into


@torch.library.custom_op("lmkernels::rms_norm", mutates_args=())
def _rms_norm(x: Tensor, weight: Optional[Tensor], eps: float, access: Optional[str],
              pdl: Optional[bool] = None) -> Tensor:
    y = x.new_empty(x.shape)
    norm_into(x, None, weight, y, eps, access, pdl)
    return y


@_rms_norm.register_fake
def _(x, weight, eps, access, pdl=None):
    check_norm(x, None, weight, None)
    return x.new_empty(x.shape)


@torch.library.custom_op("lmkernels::rms_norm_out", mutates_args=("out",))
def _rms_norm_out(out: Tensor, x: Tensor, weight: Optional[Tensor], eps: float, access: Optional[str],
                  pdl: Optional[bool] = None) -> None:
    norm_into(x, None, weight, out, eps, access, pdl)


@_rms_norm_out.register_fake
def _(out, x, weight, eps, access, pdl=None):
    check_norm(x, None, weight, out)


@torch.library.custom_op("lmkernels::fused_add_rms_norm", mutates_args=("x", "residual"))
def _fused_add_rms_norm(x: Tensor, residual: Tensor, weight: Optional[Tensor], eps: float,
                        access: Optional[str], pdl: Optional[bool] = None) -> None:
    norm_into(x, residual, weight, x, eps, access, pdl)


@_fused_add_rms_norm.register_fake
def _(x, residual, weight, eps, access, pdl=None):
    check_norm(x, residual, weight, None)


@torch.library.custom_op("lmkernels::silu_and_mul", mutates_args=())
def _silu_and_mul(x: Tensor, access: Optional[str]) -> Tensor:
    y = gated_out(x)
    gated_into(x, y, SILU_MUL, 0.0, access)
    return y


@_silu_and_mul.register_fake
def _(x, access):
    check_gated(x, None)
    return gated_out(x)


@torch.library.custom_op("lmkernels::silu_and_mul_out", mutates_args=("out",))
def _silu_and_mul_out(out: Tensor, x: Tensor, access: Optional[str]) -> None:
    gated_into(x, out, SILU_MUL, 0.0, access)


@_silu_and_mul_out.register_fake
def _(out, x, access):
    check_gated(x, out)


@torch.library.custom_op("lmkernels::swiglustep_and_mul", mutates_args=())
def _swiglustep_and_mul(x: Tensor, limit: float, access: Optional[str]) -> Tensor:
    y = gated_out(x)
    gated_into(x, y, SWIGLUSTEP, limit, access)
    return y


@_swiglustep_and_mul.register_fake
def _(x, limit, access):
    check_gated(x, None)
    return gated_out(x)


@torch.library.custom_op("lmkernels::swiglustep_and_mul_out", mutates_args=("out",))
def _swiglustep_and_mul_out(out: Tensor, x: Tensor, limit: float, access: Optional[str]) -> None:
    gated_into(x, out, SWIGLUSTEP, limit, access)


@_swiglustep_and_mul_out.register_fake
def _(out, x, limit, access):
    check_gated(x, out)


OPS = ("rms_norm", "rms_norm_out", "fused_add_rms_norm", "silu_and_mul", "silu_and_mul_out",
       "swiglustep_and_mul", "swiglustep_and_mul_out")
