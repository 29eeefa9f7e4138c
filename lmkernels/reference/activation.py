"""Reference gated activations, gate = first half of the last dim."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _halves(x):
    d = x.shape[-1] // 2
    return x[..., :d], x[..., d:]


def silu_and_mul(x, *, out=None, access=None):
    """PyTorch's own rounding: silu in the dtype, then the product in the dtype."""
    g, u = _halves(x)
    y = F.silu(g) * u
    if out is None:
        return y
    out.copy_(y)
    return out


def swiglustep_and_mul(x, limit=7.0, *, out=None, access=None):
    g, u = _halves(x.float())
    y = (torch.clamp(F.silu(g), max=limit) * torch.clamp(u, -limit, limit)).to(x.dtype)
    if out is None:
        return y
    out.copy_(y)
    return out
