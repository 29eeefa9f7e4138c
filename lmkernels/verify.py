"""`lmkernels verify`: every op x access mode x dtype on awkward shapes against the reference.

Runs where the process is: on a GPU, or on the CPU under Triton's interpreter. Outputs are
poisoned with NaN first so an unwritten element fails. Tolerance is in units in the last place
(ulp) of the output dtype, relative to the fp32 reference rounded once:
  exact ops on a GPU (silu_and_mul, the rounded residual sum): 0 ulp
  float32 outputs: 16 ulp (rsqrt.approx is 2 ulp; fp32 sums of up to 5125 squares in another order
    and the 1/H scaling move the result a few more)
  float16/bfloat16 outputs: 1 ulp (a last-bit fp32 difference can round the other way; the
    interpreter truncates fp32 -> bf16/fp16 where the GPU rounds to nearest)
  silu_and_mul under the interpreter: 3 ulp (two truncating casts, and numpy's exp, not expf)
"""
from __future__ import annotations

import dataclasses

import torch

from . import reference as ref
from .ops import fused_add_rms_norm, rms_norm, silu_and_mul, swiglustep_and_mul
from .runtime.access import available_modes
from .runtime.device import is_interpreter

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MANTISSA = {torch.float32: 23, torch.float16: 10, torch.bfloat16: 7}
NORM_SHAPES = [(1, 8), (3, 769), (5, 1024), (2, 5125)]
ACT_SHAPES = [(1, 7), (3, 769), (4, 1024)]


@dataclasses.dataclass
class Result:
    op: str
    access: str
    dtype: str
    shape: str
    max_ulp: float
    allowed: float

    @property
    def ok(self) -> bool:
        return self.max_ulp <= self.allowed


def ulp_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| in ulps of expected's dtype; NaN where exactly one side is NaN -> inf."""
    a, e = actual.double(), expected.double()
    both_nan = a.isnan() & e.isnan()
    if (a.isnan() ^ e.isnan()).any():
        return float("inf")
    same_inf = (a == e)
    ulp = torch.ldexp(torch.ones_like(e), torch.frexp(e.abs().clamp_min(torch.finfo(expected.dtype).tiny)).exponent
                      - 1 - MANTISSA[expected.dtype])
    err = ((a - e).abs() / ulp).masked_fill(both_nan | same_inf, 0.0)
    return float(err.max()) if err.numel() else 0.0


def _allowed(dtype, exact_on_gpu: bool, interpreted_ulp: float = 1) -> float:
    if exact_on_gpu and not is_interpreter():
        return 0
    if dtype == torch.float32:
        return 16
    return interpreted_ulp if is_interpreter() else 1


def _poisoned(shape, dtype, device):
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


def _check_norm(device, mode, dtype, T, H, gen):
    x = torch.randn(T, H + 8, dtype=dtype, device=device, generator=gen)[:, :H]  # strided rows
    w = torch.randn(H, dtype=dtype, device=device, generator=gen)
    out = _poisoned((T, H), dtype, device)
    rms_norm(x, w, 1e-6, out=out, access=mode)
    yield "rms_norm", ulp_error(out, ref.rms_norm(x, w, 1e-6)), _allowed(dtype, False)
    xf = torch.randn(T, H, dtype=dtype, device=device, generator=gen)
    rf = torch.randn(T, H, dtype=dtype, device=device, generator=gen)
    x1, r1 = xf.clone(), rf.clone()
    fused_add_rms_norm(x1, r1, w, 1e-6, access=mode)
    want_r = (xf.float() + rf.float()).to(dtype)
    yield "fused_add_rms_norm:residual", ulp_error(r1, want_r), _allowed(dtype, True)
    yield "fused_add_rms_norm:x", ulp_error(x1, ref.rms_norm(r1, w, 1e-6)), _allowed(dtype, False)


def _check_act(device, mode, dtype, T, d, gen):
    x = torch.randn(T, 2 * d, dtype=dtype, device=device, generator=gen) * 3
    out = _poisoned((T, d), dtype, device)
    silu_and_mul(x, out=out, access=mode)
    yield "silu_and_mul", ulp_error(out, ref.silu_and_mul(x)), _allowed(dtype, True, interpreted_ulp=3)
    out = _poisoned((T, d), dtype, device)
    swiglustep_and_mul(x, 2.5, out=out, access=mode)
    yield "swiglustep_and_mul", ulp_error(out, ref.swiglustep_and_mul(x, 2.5)), _allowed(dtype, False)


def run(ops=None, device=None):
    """All results; `ops` filters by op name prefix (e.g. ["rms_norm", "silu_and_mul"])."""
    device = device or ("cuda" if torch.cuda.is_available() and not is_interpreter() else "cpu")
    gen = torch.Generator(device=device).manual_seed(0)
    results = []
    for mode in available_modes():
        for dtype in DTYPES:
            checks = [(_check_norm, s) for s in NORM_SHAPES] + [(_check_act, s) for s in ACT_SHAPES]
            for check, (T, n) in checks:
                if mode == "descriptor" and n % 8:
                    continue  # TMA needs 16-byte rows: explicit descriptor refuses these (tested)
                for op, err, allowed in check(device, mode, dtype, T, n, gen):
                    if ops and not any(op.startswith(o) for o in ops):
                        continue
                    results.append(Result(op, mode, str(dtype).split(".")[-1], f"{T}x{n}", err, allowed))
    return results


def table(results) -> str:
    lines = ["| op | access | dtype | shape | max ulp | allowed | ok |", "|---|---|---|---|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r.op} | {r.access} | {r.dtype} | {r.shape} | {r.max_ulp:g} | {r.allowed:g} | "
                     f"{'yes' if r.ok else 'NO'} |")
    return "\n".join(lines)
