"""Reference rotary embeddings (vLLM's semantics): fp32 maths, one rounding, in place like the ops.

Positions outside [0, max_pos) give NaN cos and sin, hence NaN in the rotated dims they touch, as
the kernel does (it never reads the cache there).
"""
from __future__ import annotations

import torch


def _cos_sin(cache: torch.Tensor, pos: torch.Tensor):
    """(cos, sin) fp32 [T, rot/2] each, NaN where the position is out of range. pos is [T] (one
    position a token) or [T, rot/2] (MRoPE: one a frequency)."""
    max_pos, rot = cache.shape
    half = rot // 2
    pos = pos.long()
    if pos.dim() == 1:
        pos = pos[:, None].expand(-1, half)
    valid = (pos >= 0) & (pos < max_pos)
    row = pos.clamp(0, max_pos - 1)
    j = torch.arange(half, device=pos.device)
    nan = float("nan")  # a Python scalar: no host-to-device copy (the reference runs inside CUDA graphs too)
    return torch.where(valid, cache[row, j].float(), nan), torch.where(valid, cache[row, half + j].float(), nan)


def _rotate_(x, cos, sin, head_size: int, is_neox: bool) -> None:
    """x [T, H * head_size] or [T, H, head_size], rotated in place; cos, sin [T, rot/2] fp32."""
    if x is None:
        return
    T = x.shape[0]
    rot = 2 * cos.shape[-1]
    xv = x.view(T, -1, head_size)[..., :rot]
    r = xv.float()
    c, s = cos[:, None, :], sin[:, None, :]
    if is_neox:
        x1, x2 = r[..., : rot // 2], r[..., rot // 2:]
        out = torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)
    else:
        x1, x2 = r[..., 0::2], r[..., 1::2]
        out = torch.stack([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).flatten(-2)
    xv.copy_(out.to(x.dtype))


def rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox=True, *, access=None):
    """In place: the first rot_dim = cos_sin_cache.shape[1] dims of every head of query (and key)
    rotated by the angle of their token's position. Returns (query, key)."""
    cos, sin = _cos_sin(cos_sin_cache, positions.reshape(-1))
    _rotate_(query, cos, sin, head_size, is_neox)
    _rotate_(key, cos, sin, head_size, is_neox)
    return query, key


def mrope_positions(positions: torch.Tensor, mrope_section, interleaved: bool) -> torch.Tensor:
    """[T, rot/2]: the position each frequency j of each token takes, from positions [3, T]."""
    s_t, s_h, s_w = mrope_section
    half = s_t + s_h + s_w
    j = torch.arange(half, device=positions.device)
    if interleaved:
        sel = torch.where((j % 3 == 1) & (j < 3 * s_h), 1, torch.where((j % 3 == 2) & (j < 3 * s_w), 2, 0))
    else:
        sel = torch.where(j < s_t, 0, torch.where(j < s_t + s_h, 1, 2))
    return positions[sel].t()


def mrope(positions, query, key, cos_sin_cache, mrope_section, head_size, rotary_dim=None,
          interleaved=False, is_neox=True, *, access=None):
    """Multimodal rotary, in place: positions [3, T] (temporal, height, width) pick, per frequency,
    the position whose cos/sin rotate that pair; positions [T] is rotary_embedding. Returns (query, key)."""
    if positions.dim() == 1:
        return rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox)
    cos, sin = _cos_sin(cos_sin_cache, mrope_positions(positions, mrope_section, interleaved))
    _rotate_(query, cos, sin, head_size, is_neox)
    _rotate_(key, cos, sin, head_size, is_neox)
    return query, key
