"""Reference small-batch GEMM and linear: fp32 maths in the ops' epilogue order, one rounding."""
from __future__ import annotations

import torch


def _scale(x_scale, w_scale):
    return None if x_scale is None else x_scale.float().reshape(()) * w_scale.float().reshape(())


def ll_gemm(x, weight, *, bias=None, out_dtype=torch.float32, x_scale=None, w_scale=None, pdl=None, config=None):
    """t = x @ weight^T in fp32 (products of bf16/fp16/e4m3 values are exact there; the sum is
    rounded in torch's order, not the kernel's: compare with a tolerance); t = t * (x_scale *
    w_scale); t = t + bias; one rounding to out_dtype."""
    t = x.float() @ weight.float().t()
    s = _scale(x_scale, w_scale)
    if s is not None:
        t = t * s
    if bias is not None:
        t = t + bias.float()
    return t.to(out_dtype)


def ll_gemm_float64(x, weight, *, bias=None, x_scale=None, w_scale=None) -> torch.Tensor:
    """The unrounded result in float64 (the products exact, the sum exact to ~2^-53 relative for
    K <= 2^20): what the tests' tolerance is measured against."""
    t = x.double() @ weight.double().t()
    if x_scale is not None:
        t = t * (x_scale.double().reshape(()) * w_scale.double().reshape(()))
    if bias is not None:
        t = t + bias.double()
    return t


def linear(x, weight, bias=None, *, out_dtype=None, x_scale=None, w_scale=None):
    """x [..., K] @ weight^T + bias with ll_gemm's maths, leading dims kept."""
    y = ll_gemm(x.reshape(-1, x.shape[-1]), weight, bias=bias, out_dtype=out_dtype or (torch.bfloat16 if x.dtype == torch.float8_e4m3fn else x.dtype),
                x_scale=x_scale, w_scale=w_scale)
    return y.reshape(*x.shape[:-1], weight.shape[0])
