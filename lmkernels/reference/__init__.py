"""Plain-PyTorch references with the ops' signatures, fp32 maths: the truth the kernels are tested against."""
from .activation import silu_and_mul, swiglustep_and_mul
from .norm import fused_add_rms_norm, rms_norm
from .rotary import mrope, rotary_embedding
from .sampling import token_logprobs, token_ranks, topk_logprobs

__all__ = ["rms_norm", "fused_add_rms_norm", "silu_and_mul", "swiglustep_and_mul", "rotary_embedding", "mrope",
           "token_logprobs", "token_ranks", "topk_logprobs"]
