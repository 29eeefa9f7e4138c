"""Gated activations [..., 2d] -> [..., d]: silu_and_mul and Step-3.5's swiglustep_and_mul.

One body, ACT a constexpr. The gate is the first half of each row, the up projection the second.
"""
import triton
import triton.language as tl
from triton.language.extra import libdevice
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .access import load_halves_2d, round_to, store_tile

SILU_MUL: tl.constexpr = tl.constexpr(0)
SWIGLUSTEP: tl.constexpr = tl.constexpr(1)


@triton.jit
def _silu(g, PRECISE: tl.constexpr):
    """g / (1 + exp(-g)) with IEEE division, as PyTorch's CUDA silu computes it in fp32.

    PRECISE uses libdevice's expf (what nvcc's expf is) rather than ex2.approx, so that the result
    is PyTorch's to the bit; the interpreter has no libdevice and takes tl.exp.
    """
    if PRECISE:
        e = libdevice.exp(-g)
    else:
        e = tl.exp(-g)
    return tl.math.div_rn(g, 1.0 + e)


@triton.jit
def _act_tile(x_view, y_ptr, row0, col0, n_rows, d, stride_x, stride_y, limit,
              ACT: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, PRECISE: tl.constexpr,
              ACCESS: tl.constexpr):
    g, u = load_halves_2d(x_view, n_rows, d, stride_x, row0, col0, BLOCK_T, BLOCK_D, ACCESS)
    g = g.to(tl.float32)
    u = u.to(tl.float32)
    s = _silu(g, PRECISE)
    if ACT == SILU_MUL:
        # PyTorch's F.silu(g) * u rounds silu to the dtype, then the product: so do we
        y = round_to(y_ptr, s, ACCESS) * u
    else:
        y = (tl.minimum(s, limit, propagate_nan=tl.PropagateNan.ALL)
             * tl.clamp(u, -limit, limit, propagate_nan=tl.PropagateNan.ALL))
    store_tile(y_ptr, y, n_rows, d, stride_y, row0, col0, BLOCK_T, BLOCK_D, ACCESS)


@triton.jit(do_not_specialize=["n_rows"])  # T changes every step: no recompile, no T == 1 variant
def _gated_act_kernel(x_ptr, y_ptr, n_rows, d, stride_x, stride_y, limit,
                      ACT: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
                      PRECISE: tl.constexpr, ACCESS: tl.constexpr, USE_PDL: tl.constexpr = False):
    """y [n_rows, d] in [BLOCK_T, BLOCK_D] tiles. Program (i, j) computes column tile i of row tile j:
    the column tiles of a row are neighbouring programs, so neighbouring programs read neighbouring
    addresses (with the row tile on grid axis 0 instead, T = 4096, d = 14336 ran at 2.79 TB/s on
    the H100 against 2.87 for a flat elementwise kernel; a persistent grid prefetching tiles ran 4-5 %
    behind in descriptor mode and gained nothing for pointers).
    x_ptr: the [n_rows, 2d] rows for pointer/block_ptr, a host-made [n_rows, 2, d] descriptor for
    descriptor (kernels/access.py load_halves_2d).
    USE_PDL (programmatic dependent launch, sm90+): x may be the previous kernel's output (a GEMM's),
    so wait for it before the first read, then let the next kernel launch (as kernels/norm.py)."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    # no tile-index division here: at T = 1 its ~0.05 µs of latency is 4 % of the kernel
    _act_tile(x_ptr, y_ptr, tl.program_id(1) * BLOCK_T, tl.program_id(0) * BLOCK_D,
              n_rows, d, stride_x, stride_y, limit, ACT, BLOCK_T, BLOCK_D, PRECISE, ACCESS)
