"""Public ops: validate -> pick config -> launch."""
from .activation import silu_and_mul, swiglustep_and_mul
from .context_parallel import correct_attn_out, cp_lse_ag_out_ar, cp_lse_ag_out_rs, merge_attn_states
from .kv_cache import reshape_and_cache_flash
from .norm import fused_add_rms_norm, rms_norm
from .packing import pack_seq, unpack_seq
from .rotary import mrope, rotary_embedding
from .sampling import token_logprobs, token_ranks, topk_logprobs

__all__ = ["rms_norm", "fused_add_rms_norm", "silu_and_mul", "swiglustep_and_mul", "rotary_embedding", "mrope",
           "token_logprobs", "token_ranks", "topk_logprobs",
           "merge_attn_states", "correct_attn_out", "cp_lse_ag_out_rs", "cp_lse_ag_out_ar",
           "pack_seq", "unpack_seq",
           "reshape_and_cache_flash"]
