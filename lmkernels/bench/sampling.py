"""`lmkernels bench sampling`: token_logprobs and token_ranks against peers, bf16 logits.

Bytes counted: one read of the logits, B * V * element size, and nothing else. The rest is small
beside it and not what the issue's targets count: at B = 256, V = 151936, K = 21 the logits are
77.8 MB; ids (43 KB int64), the kernels' partials (78 KB written and read back) and the output
(21 KB) add 0.2 %.
"""
from __future__ import annotations

import torch

import lmkernels
from lmkernels import reference as ref
from lmkernels.runtime.access import available_modes

from .peers import compiled

# decode (B = 1) and the target shape; each shape costs two torch.compile builds (~30 s)
SHAPES = [(1, 151936), (256, 151936)]
K = 21  # 20 top logprobs + the sampled token, vLLM's usual maximum
SCALE = 4.0  # logits spread like a language model's (std 4, max ~18 at V = 151936)


def eager_logprobs(logits, ids):
    """What an engine does in eager PyTorch: fp32 log_softmax of the whole [B, V], then gather."""
    return torch.log_softmax(logits.float(), dim=-1).gather(1, ids)


def eager_ranks(logits, tok):
    return (logits >= logits.gather(1, tok[:, None])).sum(dim=1)


def _shape_cases(B: int, V: int, dtype):
    e = torch.finfo(dtype).bits // 8
    dt = str(dtype).split(".")[-1]

    def inputs(i):
        g = torch.Generator(device="cuda").manual_seed(3000 + i)
        logits = torch.randn(B, V, device="cuda", dtype=torch.float32, generator=g).mul_(SCALE).to(dtype)
        ids = torch.randint(0, V, (B, K), device="cuda", generator=g)
        return logits, ids

    def provider(fn, ranks=False):
        def make(i):
            logits, ids = inputs(i)
            tok = ids[:, 0].contiguous()
            return (lambda: fn(logits, tok)) if ranks else (lambda: fn(logits, ids))
        return make

    lp = {f"lmkernels-{m}": provider(lambda x, t, m=m: lmkernels.token_logprobs(x, t, access=m))
          for m in available_modes()}
    lp["torch-eager"] = provider(eager_logprobs)
    lp["torch-compile"] = provider(lambda x, t: compiled(ref.token_logprobs)(x, t))
    rk = {f"lmkernels-{m}": provider(lambda x, t, m=m: lmkernels.token_ranks(x, t, access=m), True)
          for m in available_modes()}
    rk["torch-eager"] = provider(eager_ranks, True)
    rk["torch-compile"] = provider(lambda x, t: compiled(ref.token_ranks)(x, t), True)
    nbytes = B * V * e  # one read of the logits (see the module docstring)
    return [("token_logprobs", f"B={B} V={V} K={K}", dt, nbytes, lp),
            ("token_ranks", f"B={B} V={V}", dt, nbytes, rk)]


def cases(dtype=torch.bfloat16, shapes=SHAPES):
    return [c for B, V in shapes for c in _shape_cases(B, V, dtype)]
