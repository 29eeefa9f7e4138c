"""Reference paged KV-cache write (vLLM's reshape_and_cache_flash): plain PyTorch, in place like the op.

Values: a copy rounded once to the cache dtype, or fp8 = saturate(x.float() / scale) cast with
round-to-nearest-even (torch's .to), saturate clamping to the format's finite range (NaN stays NaN).
Copies are written as values of the cache's dtype (an indexed assignment moves their bits), fp8
as bytes through a uint8 view of the cache, so fp8 and uint8 caches take the same path.

No host synchronisation, so it runs inside CUDA graphs and under torch.compile (the benchmark's
peers): a skipped token (negative slot, or one beyond the capacity) is redirected to the first
valid token's slot with that token's values, so the duplicate write changes nothing; if no token
is valid, to slot 0 with slot 0's current values. Like vLLM, valid slots must be distinct (two
tokens writing one slot leave either one's values).
"""
from __future__ import annotations

import torch

FP8_DTYPES = {"fp8": torch.float8_e4m3fn, "fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
FP8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}


def quantise_fp8(x: torch.Tensor, scale, fp8_dtype) -> torch.Tensor:
    """saturate(x.float() / scale) as fp8_dtype; x [n, H, D], scale None, one element or [H]."""
    q = x.float()
    if scale is not None:
        s = scale.float().reshape(-1)
        q = q / (s.reshape(1, -1, 1) if s.numel() > 1 else s)
    m = FP8_MAX[fp8_dtype]
    return q.clamp(-m, m).to(fp8_dtype)


def _write(x, cache, slots, kv_cache_dtype, scale) -> None:
    fp8 = FP8_DTYPES.get(kv_cache_dtype)
    if fp8 is not None:  # fp8 and uint8 caches alike through their bytes
        bits, cbits = quantise_fp8(x, scale, fp8).view(torch.uint8), cache.view(torch.uint8)
    else:  # not through an int16 view: torch.compile (2.13, CPU) converted those values, not their bits
        bits, cbits = x.to(cache.dtype), cache
    nb, bs = cache.shape[:2]
    slots = slots.long()
    valid = (slots >= 0) & (slots < nb * bs)
    # the first valid token, or 0 when there is none; index_select, not [j]: torch.compile would
    # read a 0-d index tensor's value on the host
    j = valid.int().argmax().reshape(1)
    j_valid = valid.index_select(0, j)
    fill_slot = torch.where(j_valid, slots.index_select(0, j), 0)
    fill_vals = torch.where(j_valid[:, None, None], bits.index_select(0, j), cbits[0, 0])
    slot = torch.where(valid, slots, fill_slot)
    cbits[slot // bs, slot % bs] = torch.where(valid[:, None, None], bits, fill_vals)


def reshape_and_cache_flash(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype="auto",
                            k_scale=None, v_scale=None, *, access=None, validate=False, pdl=None) -> None:
    """In place: key_cache[s // bs, s % bs] = key[t] (value likewise) for s = slot_mapping[t],
    t < len(slot_mapping), skipping slots outside [0, num_blocks * block_size); fp8 kv_cache_dtype
    stores saturate(x / scale). access, validate and pdl are the op's and change nothing here."""
    n = slot_mapping.shape[0]
    nb, bs = key_cache.shape[:2]
    if n == 0 or nb * bs == 0 or key.numel() == 0:
        return
    _write(key[:n], key_cache, slot_mapping, kv_cache_dtype, k_scale)
    _write(value[:n], value_cache, slot_mapping, kv_cache_dtype, v_scale)
