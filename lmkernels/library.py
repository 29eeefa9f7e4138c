"""torch.library registration: the ops as torch.ops.lmkernels.*, for torch.compile and CUDA graphs.

Functional ops allocate their output; `*_out` variants write into a caller's tensor. Eager calls of
the public functions skip the dispatcher (ops/_common.use_dispatcher): it would add its own cost to a
launch that already validates, so they pay for dispatch zero times, not twice. Under torch.compile
the public functions route here, and the fake implementations give shapes without running a kernel.
"""
from __future__ import annotations

import json
from typing import List, Optional

import torch
from torch import Tensor

from .ops.activation import SILU_MUL, SWIGLUSTEP, check_gated, gated_into, gated_out
from .ops.context_parallel import check_correct, check_merge, correct_into, merge_into
from .ops.kv_cache import check_reshape_and_cache, reshape_and_cache_into
from .ops.norm import check_norm, norm_into
from .ops.packing import check_pack, check_unpack, pack_impl, unpack_impl
from .ops.rotary import check_mrope, check_rotary, mrope_into, rotary_into
from .ops.sampling import check_token_logprobs, check_token_ranks, token_logprobs_into, token_ranks_into
from .ops.scaled_mm import check_scaled_mm, scaled_mm_impl
from .ops.small_gemm import check_ll_gemm, ll_gemm_impl


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
def _silu_and_mul(x: Tensor, access: Optional[str], pdl: Optional[bool] = None) -> Tensor:
    y = gated_out(x)
    gated_into(x, y, SILU_MUL, 0.0, access, pdl)
    return y


@_silu_and_mul.register_fake
def _(x, access, pdl=None):
    check_gated(x, None)
    return gated_out(x)


@torch.library.custom_op("lmkernels::silu_and_mul_out", mutates_args=("out",))
def _silu_and_mul_out(out: Tensor, x: Tensor, access: Optional[str], pdl: Optional[bool] = None) -> None:
    gated_into(x, out, SILU_MUL, 0.0, access, pdl)


@_silu_and_mul_out.register_fake
def _(out, x, access, pdl=None):
    check_gated(x, out)


@torch.library.custom_op("lmkernels::swiglustep_and_mul", mutates_args=())
def _swiglustep_and_mul(x: Tensor, limit: float, access: Optional[str], pdl: Optional[bool] = None) -> Tensor:
    y = gated_out(x)
    gated_into(x, y, SWIGLUSTEP, limit, access, pdl)
    return y


@_swiglustep_and_mul.register_fake
def _(x, limit, access, pdl=None):
    check_gated(x, None)
    return gated_out(x)


@torch.library.custom_op("lmkernels::swiglustep_and_mul_out", mutates_args=("out",))
def _swiglustep_and_mul_out(out: Tensor, x: Tensor, limit: float, access: Optional[str],
                            pdl: Optional[bool] = None) -> None:
    gated_into(x, out, SWIGLUSTEP, limit, access, pdl)


@_swiglustep_and_mul_out.register_fake
def _(out, x, limit, access, pdl=None):
    check_gated(x, out)


@torch.library.custom_op("lmkernels::rotary_embedding", mutates_args=("query", "key"))
def _rotary_embedding(positions: Tensor, query: Tensor, key: Optional[Tensor], head_size: int,
                      cos_sin_cache: Tensor, is_neox: bool, access: Optional[str], pdl: Optional[bool] = None) -> None:
    rotary_into(positions, query, key, head_size, cos_sin_cache, is_neox, access, pdl)


@_rotary_embedding.register_fake
def _(positions, query, key, head_size, cos_sin_cache, is_neox, access, pdl=None):
    check_rotary(positions, query, key, head_size, cos_sin_cache, is_neox)


@torch.library.custom_op("lmkernels::mrope", mutates_args=("query", "key"))
def _mrope(positions: Tensor, query: Tensor, key: Optional[Tensor], cos_sin_cache: Tensor, mrope_section: List[int],
           head_size: int, rotary_dim: Optional[int], interleaved: bool, is_neox: bool, access: Optional[str],
           pdl: Optional[bool] = None) -> None:
    mrope_into(positions, query, key, cos_sin_cache, mrope_section, head_size, rotary_dim, interleaved, is_neox,
               access, pdl)


@_mrope.register_fake
def _(positions, query, key, cos_sin_cache, mrope_section, head_size, rotary_dim, interleaved, is_neox, access,
      pdl=None):
    check_mrope(positions, query, key, cos_sin_cache, mrope_section, head_size, rotary_dim, interleaved, is_neox)


@torch.library.custom_op("lmkernels::token_logprobs", mutates_args=())
def _token_logprobs(logits: Tensor, token_ids: Tensor, access: Optional[str], pdl: Optional[bool] = None) -> Tensor:
    out = logits.new_empty(token_ids.shape, dtype=torch.float32)
    token_logprobs_into(logits, token_ids, out, access, pdl)
    return out


@_token_logprobs.register_fake
def _(logits, token_ids, access, pdl=None):
    check_token_logprobs(logits, token_ids)
    return logits.new_empty(token_ids.shape, dtype=torch.float32)


@torch.library.custom_op("lmkernels::token_ranks", mutates_args=())
def _token_ranks(logits: Tensor, token_ids: Tensor, access: Optional[str], pdl: Optional[bool] = None) -> Tensor:
    out = logits.new_empty(token_ids.shape, dtype=torch.int64)
    token_ranks_into(logits, token_ids, out, access, pdl)
    return out


@_token_ranks.register_fake
def _(logits, token_ids, access, pdl=None):
    check_token_ranks(logits, token_ids)
    return logits.new_empty(token_ids.shape, dtype=torch.int64)


@torch.library.custom_op("lmkernels::merge_attn_states", mutates_args=("output", "output_lse"))
def _merge_attn_states(output: Tensor, prefix_output: Tensor, prefix_lse: Tensor, suffix_output: Tensor,
                       suffix_lse: Tensor, output_lse: Optional[Tensor], access: Optional[str],
                       pdl: Optional[bool] = None) -> None:
    merge_into(output, prefix_output, prefix_lse, suffix_output, suffix_lse, output_lse, access, pdl)


@_merge_attn_states.register_fake
def _(output, prefix_output, prefix_lse, suffix_output, suffix_lse, output_lse, access, pdl=None):
    check_merge(output, prefix_output, prefix_lse, suffix_output, suffix_lse, output_lse)


@torch.library.custom_op("lmkernels::correct_attn_out", mutates_args=("out",))
def _correct_attn_out(out: Tensor, lses: Tensor, cp_rank: int, lse_base_e: bool, access: Optional[str],
                      pdl: Optional[bool] = None) -> Tensor:
    """Corrects out in place and returns the combined LSE (a custom op cannot return an alias of an input)."""
    lse = lses.new_empty(lses.shape[1:])
    correct_into(out, lses, cp_rank, lse, lse_base_e, access, pdl)
    return lse


@_correct_attn_out.register_fake
def _(out, lses, cp_rank, lse_base_e, access, pdl=None):
    check_correct(out, lses, cp_rank, lse_base_e)
    return lses.new_empty(lses.shape[1:])


@torch.library.custom_op("lmkernels::pack_seq", mutates_args=())
def _pack_seq(x: Tensor, lengths: Tensor, pad_value: float, max_len: Optional[int], access: Optional[str],
              pdl: Optional[bool] = None) -> Tensor:
    return pack_impl(x, lengths, pad_value, max_len, access, pdl)


@_pack_seq.register_fake
def _(x, lengths, pad_value, max_len, access, pdl=None):
    check_pack(x, lengths, pad_value, max_len)
    L = max_len if max_len is not None else torch.library.get_ctx().new_dynamic_size()  # max(lengths): data
    return x.new_empty((lengths.shape[0], L, *x.shape[1:]))


@torch.library.custom_op("lmkernels::unpack_seq", mutates_args=())
def _unpack_seq(packed: Tensor, lengths: Tensor, num_tokens: Optional[int], access: Optional[str],
                pdl: Optional[bool] = None) -> Tensor:
    return unpack_impl(packed, lengths, num_tokens, access, pdl)


@_unpack_seq.register_fake
def _(packed, lengths, num_tokens, access, pdl=None):
    check_unpack(packed, lengths, num_tokens)
    N = num_tokens if num_tokens is not None else torch.library.get_ctx().new_dynamic_size()  # sum(lengths)
    return packed.new_empty((N, *packed.shape[2:]))


@torch.library.custom_op("lmkernels::reshape_and_cache_flash", mutates_args=("key_cache", "value_cache"))
def _reshape_and_cache_flash(key: Tensor, value: Tensor, key_cache: Tensor, value_cache: Tensor, slot_mapping: Tensor,
                             kv_cache_dtype: str, k_scale: Optional[Tensor], v_scale: Optional[Tensor],
                             access: Optional[str], validate: bool = False, pdl: Optional[bool] = None) -> None:
    reshape_and_cache_into(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale, access,
                           validate, pdl)


@_reshape_and_cache_flash.register_fake
def _(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale, access, validate=False,
      pdl=None):
    check_reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale)


@torch.library.custom_op("lmkernels::scaled_mm", mutates_args=())
def _scaled_mm(a: Tensor, b: Tensor, scale_a: Tensor, scale_b: Tensor, out_dtype: torch.dtype, bias: Optional[Tensor],
               access: Optional[str], config: Optional[str], pdl: Optional[bool] = None) -> Tensor:
    """config: the config dict as JSON (a schema has no dict type; ops/scaled_mm.py:scaled_mm encodes it)."""
    return scaled_mm_impl(a, b, scale_a, scale_b, out_dtype, bias, access,
                          None if config is None else json.loads(config), pdl)


@_scaled_mm.register_fake
def _(a, b, scale_a, scale_b, out_dtype, bias, access, config, pdl=None):
    M, N = check_scaled_mm(a, b, scale_a, scale_b, out_dtype, bias)[:2]
    return a.new_empty((M, N), dtype=out_dtype)


@torch.library.custom_op("lmkernels::ll_gemm", mutates_args=())
def _ll_gemm(x: Tensor, weight: Tensor, bias: Optional[Tensor], out_dtype: torch.dtype, x_scale: Optional[Tensor],
             w_scale: Optional[Tensor], pdl: Optional[bool], config: Optional[str]) -> Tensor:
    """config: the config dict as JSON (ops/small_gemm.py:ll_gemm encodes it)."""
    return ll_gemm_impl(x, weight, bias, out_dtype, x_scale, w_scale, pdl, None if config is None else json.loads(config))


@_ll_gemm.register_fake
def _(x, weight, bias, out_dtype, x_scale, w_scale, pdl, config):
    M, N, _ = check_ll_gemm(x, weight, bias, out_dtype, x_scale, w_scale)
    return x.new_empty((M, N), dtype=out_dtype)


OPS = ("rms_norm", "rms_norm_out", "fused_add_rms_norm", "silu_and_mul", "silu_and_mul_out",
       "swiglustep_and_mul", "swiglustep_and_mul_out", "rotary_embedding", "mrope", "token_logprobs",
       "token_ranks", "merge_attn_states", "correct_attn_out", "pack_seq", "unpack_seq",
       "reshape_and_cache_flash", "scaled_mm", "ll_gemm")
