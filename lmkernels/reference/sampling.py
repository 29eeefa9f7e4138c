"""Reference sampling logprobs: plain PyTorch, materialising [B, V] (the kernels do not).

Maths run in fp32 for fp16/bf16/fp32 logits (the dtype vLLM's sampler uses), or in float64 when the
logits are float64: the tests pass `logits.double()` to get the truth the fp32 kernels are held to.

Non-finite logits follow torch.log_softmax, which sees the row's max and sum of exp:
  a NaN anywhere in a row            -> every logprob of that row is NaN
  a +inf anywhere in a row           -> NaN (inf - inf in the shifted logits)
  a row that is -inf everywhere      -> NaN (the max is -inf, and -inf - -inf is NaN)
  a -inf logit in an otherwise finite row -> -inf at that logit
Ranks count `logits[b, v] >= logits[b, token]` over v; NaN compares false, so NaN logits never count,
and a NaN logit at the token itself gives rank 0 (nothing compares >= NaN): distinct from -1, the
invalid id.
"""
from __future__ import annotations

import torch


def _compute_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _valid(token_ids: torch.Tensor, V: int):
    """(ids as int64 clamped into [0, V), mask of the ids that were in range)."""
    ids = token_ids.long()
    valid = (ids >= 0) & (ids < V)
    return ids.clamp(0, max(V - 1, 0)), valid


def token_logprobs(logits, token_ids, *, access=None):
    """log_softmax(logits)[b, token_ids[b, k]] as [B, K]; NaN where the id is outside [0, V)."""
    lp = torch.log_softmax(logits.to(_compute_dtype(logits)), dim=-1)
    ids, valid = _valid(token_ids, logits.shape[-1])
    return torch.where(valid, lp.gather(1, ids), torch.full_like(lp[:, :1], float("nan")))


def token_ranks(logits, token_ids, *, access=None):
    """#{v : logits[b, v] >= logits[b, token_ids[b]]} as int64 [B] (1-based; ties count against the
    token; NaN logits never count; a NaN at the token gives 0); -1 where the id is outside [0, V)."""
    x = logits.to(_compute_dtype(logits))  # exact: every fp16/bf16 value is an fp32 value
    ids, valid = _valid(token_ids, logits.shape[-1])
    t = x.gather(1, ids[:, None])
    ranks = (x >= t).sum(dim=1)
    return torch.where(valid, ranks, torch.full_like(ranks, -1))


def topk_logprobs(logits, num_logprobs, sampled_token_ids, *, access=None):
    """(ids [B, k+1] int64: the sampled token then torch.topk's k ids, their logprobs [B, k+1], the
    sampled token's rank [B] int64)."""
    sampled = sampled_token_ids.long()[:, None]
    ids = torch.cat([sampled, torch.topk(logits, num_logprobs, dim=-1).indices], dim=1)
    return ids, token_logprobs(logits, ids), token_ranks(logits, sampled_token_ids)
