"""Reference attention-state merging and context-parallel combine: plain PyTorch, same signatures.

Maths run in fp32 for fp16/bf16/fp32 inputs, in float64 when the inputs are float64: the tests pass
`.double()` copies to get the truth the fp32 kernels are held to. LSE conventions as the ops: an LSE
that is NaN or +inf counts as -inf (a state with no keys), whose output contributes exactly 0 even
if it holds NaN; all states -inf gives output 0 and LSE -inf.

attention_with_lse is the plain attention the tests and benchmarks/cp_multi_gpu.py shard a KV
sequence with: each rank's partial (output, LSE), and the full attention they must combine to.
"""
from __future__ import annotations

import math

import torch

LOG2E = 1.0 / math.log(2.0)


def _compute_dtype(*ts) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def _clean(lse: torch.Tensor, dtype) -> torch.Tensor:
    lse = lse.to(dtype)
    return torch.where(lse.isnan() | (lse == math.inf), -math.inf, lse)


def _logsumexp(lse: torch.Tensor, base_e: bool):
    """(L = logsumexp over dim 0 of cleaned LSEs, in base e or 2, -inf where every state is empty;
    the exp of that base). Shifted by the max so no term overflows; an all -inf column shifts by 0."""
    m = lse.amax(dim=0)
    shift = torch.where(m == -math.inf, 0.0, m)
    exp = torch.exp if base_e else torch.exp2
    log = torch.log if base_e else torch.log2
    return shift + log(exp(lse - shift).sum(dim=0)), exp


def combine(outs: torch.Tensor, lses: torch.Tensor, *, lse_base_e: bool = True):
    """The exact merge of N attention states: outs [N, ..., D], lses [N, ...] -> (out [..., D], lse [...])
    in the compute dtype (not rounded). out = sum_n exp(lse_n - L) out_n, L = logsumexp_n(lse_n)."""
    dt = _compute_dtype(outs, lses)
    lse = _clean(lses, dt)
    L, exp = _logsumexp(lse, lse_base_e)
    keep = lse > -math.inf
    factor = exp(lse - L)
    terms = torch.where(keep[..., None], outs.to(dt) * factor[..., None], 0.0)
    return terms.sum(dim=0), L


def merge_attn_states(output, prefix_output, prefix_lse, suffix_output, suffix_lse, output_lse=None, *,
                      access=None, pdl=None) -> None:
    """output [T, H, D] <- merge of the prefix and suffix states (LSEs [H, T], natural log), vLLM's
    formula out = p * (e_p / (e_p + e_s)) + s * (e_s / (e_p + e_s)); output_lse [H, T] <- the merged
    LSE when given. In place on output (and output_lse); returns None."""
    dt = _compute_dtype(prefix_output, suffix_output, prefix_lse, suffix_lse)
    lp, ls = _clean(prefix_lse, dt).t(), _clean(suffix_lse, dt).t()  # [T, H]
    m = torch.maximum(lp, ls)
    shift = torch.where(m == -math.inf, 0.0, m)
    ep, es = torch.exp(lp - shift), torch.exp(ls - shift)
    total = ep + es
    p = torch.where((lp > -math.inf)[..., None], prefix_output.to(dt) * (ep / total)[..., None], 0.0)
    s = torch.where((ls > -math.inf)[..., None], suffix_output.to(dt) * (es / total)[..., None], 0.0)
    output.copy_((p + s).to(output.dtype))
    if output_lse is not None:
        output_lse.copy_((shift + torch.log(total)).t().to(output_lse.dtype))


def correct_attn_out(out, lses, cp_rank, *, lse_base_e=True, access=None, pdl=None):
    """out [B, H, D] <- out * exp(lses[cp_rank] - L), L = logsumexp over the N ranks of lses [N, B, H]
    (base 2 with lse_base_e=False); a rank whose LSE is -inf (NaN, +inf) gives 0. In place; returns
    (out, L [B, H] in lses' dtype)."""
    dt = _compute_dtype(out, lses)
    lse = _clean(lses, dt)
    L, exp = _logsumexp(lse, lse_base_e)
    mine = lse[cp_rank]
    y = torch.where((mine > -math.inf)[..., None], out.to(dt) * exp(mine - L)[..., None], 0.0)
    out.copy_(y.to(out.dtype))
    return out, L.to(lses.dtype)


def attention_with_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None, *,
                       lse_base_e: bool = True):
    """Decode attention of q [B, Hq, D] over keys k, v [B, S, Hkv, D] (Hq a multiple of Hkv; S may be
    0) -> (out [B, Hq, D], lse [B, Hq]) in the compute dtype, not rounded: softmax(q k^T scale) v and
    logsumexp(q k^T scale) (in base 2, i.e. times log2(e), with lse_base_e=False). No keys: out 0,
    lse -inf."""
    dt = _compute_dtype(q, k, v)
    B, Hq, D = q.shape
    S, Hkv = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    kk = k.to(dt).repeat_interleave(Hq // Hkv, dim=2)  # [B, S, Hq, D]
    vv = v.to(dt).repeat_interleave(Hq // Hkv, dim=2)
    scores = torch.einsum("bhd,bshd->bhs", q.to(dt), kk) * scale
    if S == 0:
        return q.new_zeros(B, Hq, D, dtype=dt), q.new_full((B, Hq), -math.inf, dtype=dt)
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.einsum("bhs,bshd->bhd", torch.exp(scores - lse[..., None]), vv)
    return out, lse * LOG2E if not lse_base_e else lse
