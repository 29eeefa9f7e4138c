"""Reference pack_seq / unpack_seq: plain PyTorch gathers on bit patterns, the ops' semantics.

No Python loop over sequences and, with max_len (pack) or num_tokens (unpack) given, no host
synchronisation: the references run inside CUDA graphs too (the benchmark's torch peers). Pad bits
come from torch.tensor(pad_value, dtype=x.dtype), computed here on their own (not shared with
ops/packing.py), so a mistake there shows as a mismatch.
"""
from __future__ import annotations

import math

import torch

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def pad_bits(pad_value, dtype) -> int:
    """pad_value's bits in `dtype`, as an integer of the same width (uint8: the byte, which must be
    exactly pad_value)."""
    if dtype == torch.uint8:
        v = float(pad_value)
        if not (v == v and v == int(v) and 0 <= v <= 255):
            raise ValueError(f"pad_value={pad_value!r} must be an exact byte 0..255 for a uint8 tensor")
        return int(v)
    t = torch.tensor(pad_value, dtype=dtype)
    return int(t.view(_BITS[t.element_size()]).item())


def _rows(t, lead: int):
    """t's first `lead` dims as they are and the rest flattened, viewed as integers of its element width."""
    return t.reshape(*t.shape[:lead], math.prod(t.shape[lead:])).view(_BITS[t.element_size()])


def pack_seq(x, lengths, pad_value=float("-inf"), *, max_len=None, access=None):
    """[B, Lmax, *x.shape[1:]]: out[b, t] = x[start_b + t] for t < min(len_b, Lmax) and start_b + t < N,
    pad_value elsewhere; start_b = sum of the earlier lengths (negative lengths count as 0);
    Lmax = max_len, else max(lengths) (one host sync)."""
    B = lengths.shape[0]
    L = max_len if max_len is not None else (int(lengths.long().clamp_min(0).max()) if B else 0)
    out = pack_rows(_rows(x, 1), lengths, pad_bits(pad_value, x.dtype), L)
    return out.view(x.dtype).reshape(B, L, *x.shape[1:])


def pack_rows(xb, lengths, bits: int, L: int):
    """pack_seq on integer rows xb [N, D] with the pad's bits given: [B, L, D] (torch.compile-able)."""
    N = xb.shape[0]
    lens = lengths.long().clamp_min(0)
    starts = torch.cumsum(lens, 0) - lens
    t = torch.arange(L, device=xb.device)
    src = starts[:, None] + t[None, :]
    valid = (t[None, :] < lens[:, None]) & (src < N)
    if N == 0:
        return torch.full((lengths.shape[0], L, xb.shape[1]), bits, dtype=xb.dtype, device=xb.device)
    return torch.where(valid[..., None], xb[src.clamp(0, N - 1)], bits)


def unpack_seq(packed, lengths, *, num_tokens=None, access=None):
    """[N, *packed.shape[2:]], N = num_tokens, else sum(lengths) (one host sync): out[start_b + t] =
    packed[b, t] for t < min(len_b, Lmax); rows no packed row fills are 0."""
    N = num_tokens if num_tokens is not None else int(lengths.long().clamp_min(0).sum())
    out = unpack_rows(_rows(packed, 2), lengths, N)
    return out.view(packed.dtype).reshape(N, *packed.shape[2:])


def unpack_rows(pb, lengths, N: int):
    """unpack_seq on integer rows pb [B, L, D]: [N, D] (torch.compile-able)."""
    B, L = pb.shape[0], pb.shape[1]
    if B == 0 or L == 0:
        return torch.zeros((N, pb.shape[2]), dtype=pb.dtype, device=pb.device)
    lens = lengths.long().clamp_min(0)
    ends = torch.cumsum(lens, 0)
    r = torch.arange(N, device=pb.device)
    b = torch.searchsorted(ends, r, right=True)  # the sequence whose rows hold r; B past them all
    bc = b.clamp(max=B - 1)
    t = r - (ends - lens)[bc]
    valid = (b < B) & (t < lens[bc].clamp(max=L))
    return torch.where(valid[:, None], pb[bc, t.clamp(0, L - 1)], 0)
