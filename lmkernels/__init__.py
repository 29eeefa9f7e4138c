"""lmkernels: pure-Triton kernels for the hot path of LLM inference.

Importing registers the ops under torch.ops.lmkernels (library.py) and does nothing else: no
allocator, no environment changes, no kernel compiled until the first call.
"""
from . import library  # registers torch.ops.lmkernels.*
from .ops import correct_attn_out, cp_lse_ag_out_ar, cp_lse_ag_out_rs, merge_attn_states
from .ops import pack_seq, unpack_seq
from .ops import reshape_and_cache_flash
from .ops.scaled_mm import scaled_mm
from .ops.small_gemm import linear, ll_gemm
from .ops import (fused_add_rms_norm, mrope, rms_norm, rotary_embedding, silu_and_mul, swiglustep_and_mul,
                  token_logprobs, token_ranks, topk_logprobs)

__version__ = "0.1.0"
__all__ = ["library", "rms_norm", "fused_add_rms_norm", "silu_and_mul", "swiglustep_and_mul", "rotary_embedding",
           "mrope", "token_logprobs", "token_ranks", "topk_logprobs",
           "merge_attn_states", "correct_attn_out", "cp_lse_ag_out_rs", "cp_lse_ag_out_ar",
           "pack_seq", "unpack_seq",
           "reshape_and_cache_flash", "scaled_mm", "ll_gemm", "linear", "__version__"]
