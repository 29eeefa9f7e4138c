"""Copies of a case's bytes: the ceiling a memory-bound bar is checked against.

harness.run_cases times torch.add(src, 0, out=dst) beside every case (COPY_ROW). torch's copy does
not use programmatic dependent launch, so at tens of MB a PDL copy kernel beats it: rms_norm's
bytes at T = 4096 H = 4096 (64 MB a call, rotated past the L2) moved at 2740 GB/s by torch.add and
2829-2832 by the PDL copies below, 2755 by persistent grid-stride copies
(results/h100/probe_norm_ceiling.md). A case that asks for "best_copy" also gets BEST_COPY_ROW:
the fastest of torch.add and these copies. A bar above it is above what any kernel that reads and
writes those bytes reached on this GPU in this run.
"""
from __future__ import annotations

import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

BEST_COPY_ROW = "best copy, same bytes (torch.add or a Triton PDL copy)"
# (elements a program, warps): the three that led at 64 MB (2829-2832 GB/s, within 0.2 % of each
# other) and the two that led at 128 MB (4096 x 8: 2906, 8192 x 16: 2901) in the probe
PDL_COPIES = ((4096, 4), (4096, 8), (8192, 8), (8192, 16), (16384, 16))


@triton.jit
def _copy_kernel(src, dst, n, BLOCK: tl.constexpr, USE_PDL: tl.constexpr):
    """dst[:n] <- src[:n], BLOCK elements a program. With USE_PDL it waits for the previous kernel
    first and lets the next launch at once, as the library's streaming kernels do."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(dst + offs, tl.load(src + offs, mask=mask), mask=mask)


def copy(src, dst, block: int, warps: int, pdl: bool) -> None:
    """dst <- src (same-size contiguous tensors) by _copy_kernel."""
    n = src.numel()
    opts = {"launch_pdl": True} if pdl else {}
    _copy_kernel[(triton.cdiv(n, block),)](src, dst, n, BLOCK=block, USE_PDL=pdl, num_warps=warps, **opts)


def pdl_copy_makers(make_buffers) -> dict:
    """{name: make(set_index) -> call} for each PDL_COPIES config; make_buffers(i) -> (src, dst)."""
    def maker(block, warps):
        def make(i):
            src, dst = make_buffers(i)
            return lambda: copy(src, dst, block, warps, True)
        return make
    return {f"Triton PDL copy {b} x {w} warps": maker(b, w) for b, w in PDL_COPIES}
