"""Reference RMSNorm: fp32 maths, one rounding to x's dtype."""
from __future__ import annotations

import torch


def _norm_fp32(x32: torch.Tensor, weight, eps: float) -> torch.Tensor:
    y = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return y * weight.float() if weight is not None else y


def rms_norm(x, weight=None, eps=1e-6, *, out=None, access=None):
    y = _norm_fp32(x.float(), weight, eps).to(x.dtype)
    if out is None:
        return y
    out.copy_(y)
    return out


def fused_add_rms_norm(x, residual, weight, eps=1e-6, *, access=None):
    """residual <- round(x + residual); x <- rms_norm(residual): in place, like the op."""
    s = (x.float() + residual.float()).to(x.dtype)
    residual.copy_(s)
    x.copy_(_norm_fp32(s.float(), weight, eps).to(x.dtype))
    return x, residual
