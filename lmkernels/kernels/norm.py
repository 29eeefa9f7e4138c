"""RMSNorm and fused residual-add RMSNorm: one kernel body, HAS_RESIDUAL a constexpr."""
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .access import DESCRIPTOR, POINTER, load_tile, load_vector, prefetch_rows_l2, round_to, store_tile


@triton.jit
def _norm_row(x_ptr, res_ptr, w, y_ptr, row, n_rows, H, stride_x, stride_res, stride_y, eps,
              HAS_RESIDUAL: tl.constexpr, HAS_WEIGHT: tl.constexpr, BLOCK_H: tl.constexpr, ACCESS: tl.constexpr):
    """One row: a [1, BLOCK_H] tile in registers, fp32 maths, one rounding on store."""
    x_in = load_tile(x_ptr, n_rows, H, stride_x, row, 0, 1, BLOCK_H, ACCESS)
    x = x_in.to(tl.float32)
    if HAS_RESIDUAL:
        r = load_tile(res_ptr, n_rows, H, stride_res, row, 0, 1, BLOCK_H, ACCESS).to(tl.float32)
        x = round_to(res_ptr, x + r, ACCESS)
        store_tile(res_ptr, x, n_rows, H, stride_res, row, 0, 1, BLOCK_H, ACCESS)
    if x_in.dtype == tl.float32:
        # fp32 inputs sum their squares in fp64, where each square is exact: the order the tile
        # layout imposes (which the compiler chose differently for the descriptor mode's fused
        # fp32 H = 136 case: 2 ulp apart on the H100) then moves only the last fp64 bits, and the
        # fp32 mean comes out the same. bf16/fp16 stay in fp32 (their squares are exact there):
        # fp64 cost them 14-16 registers and an occupancy step (H = 8192: 358 -> 393 µs).
        x64 = x.to(tl.float64)
        mean_sq = (tl.sum(x64 * x64, axis=1) / H).to(tl.float32)
    else:
        mean_sq = tl.sum(x * x, axis=1) / H
    y = x * tl.math.rsqrt(mean_sq + eps)[:, None]
    if HAS_WEIGHT:
        y = y * w
    store_tile(y_ptr, y, n_rows, H, stride_y, row, 0, 1, BLOCK_H, ACCESS)


@triton.jit(do_not_specialize=["n_rows"])  # T changes every step: no recompile, no T == 1 variant
def _rms_norm_kernel(x_ptr, res_ptr, w_ptr, y_ptr, n_rows, H, stride_x, stride_res, stride_y, eps,
                     HAS_RESIDUAL: tl.constexpr, HAS_WEIGHT: tl.constexpr, BLOCK_H: tl.constexpr,
                     ACCESS: tl.constexpr, USE_PDL: tl.constexpr, PREFETCH: tl.constexpr = 0):
    """x [n_rows, H] -> y; with HAS_RESIDUAL: res <- round(x + res), y <- norm(res) (vLLM's
    fused_add_rms_norm). The *_ptr operands are pointers, or host-made tensor descriptors when
    ACCESS is descriptor.

    One row a program, with the same tile layout whatever n_rows, so a row's result does not depend
    on the batch it came in (batch invariance). Persistent grids that prefetch the next row (cp.async
    or TMA) were no faster on the H100 for any mode, nor were two rows a program loaded before
    either is computed (benchmarks/NOTES.md, results/h100/probe_norm_wave.md).

    USE_PDL (launched with programmatic dependent launch, sm90+): wait for the previous kernel in
    the stream to finish and flush before touching memory (any operand, the weight included, may be
    its output), then let the next kernel launch at once: its programs become resident and wait in
    their own gdc_wait while ours drain, which hides its launch and scheduling behind our tail.
    PREFETCH (pointer mode, with PDL; the host asks for it where it measured a gain, ops/norm.py):
    programs below this index, before that wait, ask L2 for the row and the weight they will read
    (kernels/access.py: safe before the wait), so their HBM latency overlaps the previous kernel's
    tail. 0: none. Only whole grids of at most one program an SM gain; the first wave of a larger
    grid lost (T = 256-4096 H = 4096: +0.6-1.1 µs, results/h100/probe_norm_wave_first.md).
    """
    if USE_PDL:
        if PREFETCH > 0:
            if tl.program_id(0) < PREFETCH:
                prefetch_rows_l2(x_ptr, tl.program_id(0), n_rows, H, stride_x, 1, BLOCK_H)
                if HAS_WEIGHT:
                    prefetch_rows_l2(w_ptr, 0, 1, H, 0, 1, BLOCK_H)
        gdc_wait()
        gdc_launch_dependents()
    w = 0.0
    if HAS_WEIGHT:
        # The weight is a pointer in every mode: it is one vector that every program reads (an L1/L2
        # hit after the first), not a tile. As a TMA copy it cost a second round trip a program,
        # because Triton gives both copies one shared buffer and waits out the first (sm90 PTX): the
        # descriptor mode ran 5.5 % behind pointer at T = 4096 H = 4096, 1.7 % with the pointer.
        w = load_vector(w_ptr, H, BLOCK_H, POINTER if ACCESS == DESCRIPTOR else ACCESS).to(tl.float32)
    _norm_row(x_ptr, res_ptr, w, y_ptr, tl.program_id(0), n_rows, H, stride_x, stride_res, stride_y, eps,
              HAS_RESIDUAL, HAS_WEIGHT, BLOCK_H, ACCESS)
