"""Reference W8A8 scaled matmul: the op's evaluation order in fp32, one rounding to out_dtype."""
from __future__ import annotations

import torch


def broadcast_scales(a, b, scale_a, scale_b):
    """scale_a as [M, 1] or [1, 1], scale_b as [1, N] or [1, 1], fp32 (the op's accepted forms:
    per tensor 0-d / [1] / [1, 1]; per token [M, 1]; per channel [N, 1] or [1, N])."""
    M, N = a.shape[0], b.shape[1]
    sa = scale_a.float().reshape(1, 1) if scale_a.numel() == 1 else scale_a.float().reshape(M, 1)
    sb = scale_b.float().reshape(1, 1) if scale_b.numel() == 1 else scale_b.float().reshape(1, N)
    return sa, sb


def accumulate(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b as the kernel accumulates it, in fp32: int8 exactly (the float64 matmul of integers
    below 2^53 is exact in any order, here |sum| <= 2^14 K), then rounded to nearest fp32 as the
    kernel's int32 -> fp32 conversion does; fp8 in fp32 (each e4m3 x e4m3 product is exact there,
    the sum is rounded in torch's order, not the kernel's: compare fp8 with a tolerance)."""
    if a.dtype == torch.int8:
        return (a.double() @ b.double()).float()
    return a.float() @ b.float()


def scaled_mm(a, b, scale_a, scale_b, out_dtype, bias=None, *, access=None, config=None, pdl=None):
    """out = round_to(out_dtype, ((acc * sa[m]) * sb[n]) + bias[n]), each step an fp32 rounding,
    in exactly that order (the kernel's epilogue); acc from accumulate(). access, config and pdl are the
    op's and change nothing here."""
    sa, sb = broadcast_scales(a, b, scale_a, scale_b)
    t = accumulate(a, b) * sa
    t = t * sb
    if bias is not None:
        t = t + bias.float()[None, :]
    return t.to(out_dtype)


def scaled_mm_float64(a, b, scale_a, scale_b, bias=None) -> torch.Tensor:
    """The unrounded result in float64 (exact products and, for K up to ~2^20, an exact sum of
    e4m3 or int8 products): what the fp8 tolerance is measured against."""
    sa, sb = broadcast_scales(a, b, scale_a, scale_b)
    t = (a.double() @ b.double()) * sa.double() * sb.double()
    if bias is not None:
        t = t + bias.double()[None, :]
    return t
