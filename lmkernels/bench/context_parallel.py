"""`lmkernels bench context_parallel`: merge_attn_states and correct_attn_out (bench/attn_states.py),
then pack_seq and unpack_seq (bench/packing.py). The bytes formula of each case is in its module."""
from __future__ import annotations

from . import attn_states, packing


def cases():
    return attn_states.cases() + packing.cases()
