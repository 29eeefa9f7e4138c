"""Plain-PyTorch references with the ops' signatures, fp32 maths: the truth the kernels are tested against."""
from .activation import silu_and_mul, swiglustep_and_mul
from .context_parallel import correct_attn_out, merge_attn_states
from .kv_cache import reshape_and_cache_flash
from .norm import fused_add_rms_norm, rms_norm
from .packing import pack_seq, unpack_seq
from .rotary import mrope, rotary_embedding
from .sampling import token_logprobs, token_ranks, topk_logprobs
from .scaled_mm import scaled_mm
from .small_gemm import linear, ll_gemm

__all__ = ["rms_norm", "fused_add_rms_norm", "silu_and_mul", "swiglustep_and_mul", "rotary_embedding", "mrope",
           "token_logprobs", "token_ranks", "topk_logprobs",
           "merge_attn_states", "correct_attn_out",
           "pack_seq", "unpack_seq",
           "reshape_and_cache_flash", "scaled_mm", "ll_gemm", "linear"]
