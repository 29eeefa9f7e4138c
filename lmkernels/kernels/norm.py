"""RMSNorm and fused residual-add RMSNorm: one kernel body, HAS_RESIDUAL a constexpr."""
import triton
import triton.language as tl

from .access import load_tile, load_vector, round_to, store_tile


@triton.jit(do_not_specialize=["n_rows"])  # T changes every step: no recompile, no T == 1 variant
def _rms_norm_kernel(x_ptr, res_ptr, w_ptr, y_ptr, n_rows, H, stride_x, stride_res, stride_y, eps,
                     HAS_RESIDUAL: tl.constexpr, HAS_WEIGHT: tl.constexpr, BLOCK_H: tl.constexpr,
                     NUM_STAGES: tl.constexpr, ACCESS: tl.constexpr):
    """Rows pid, pid + n_programs, ... of x [n_rows, H]; one row is one [1, BLOCK_H] tile in registers.
    The *_ptr operands are pointers, or host-made tensor descriptors when ACCESS is descriptor.

    Every row runs the same instructions with the same tile layout whatever n_rows and the grid
    are, so a row's result does not depend on the batch it came in (batch invariance). With
    HAS_RESIDUAL: res <- round(x + res); y <- norm(round(x + res)) (vLLM's fused_add_rms_norm).
    NUM_STAGES > 1 lets Triton's pipeliner fetch the next rows (cp.async, or TMA for descriptors)
    while this one is reduced.
    """
    if HAS_WEIGHT:
        w = load_vector(w_ptr, H, BLOCK_H, ACCESS).to(tl.float32)
    for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0), num_stages=NUM_STAGES):
        x = load_tile(x_ptr, n_rows, H, stride_x, row, 0, 1, BLOCK_H, ACCESS).to(tl.float32)
        if HAS_RESIDUAL:
            r = load_tile(res_ptr, n_rows, H, stride_res, row, 0, 1, BLOCK_H, ACCESS).to(tl.float32)
            x = round_to(res_ptr, x + r, ACCESS)
            store_tile(res_ptr, x, n_rows, H, stride_res, row, 0, 1, BLOCK_H, ACCESS)
        # The sum of squares accumulates in fp64: each fp32 square is exact there, so the order the
        # tile layout imposes (which the compiler may pick differently per access mode or operand
        # count: fp32 H = 136 fused differed by 2 ulp on the H100) moves only the last fp64 bits,
        # and the fp32 mean comes out the same. fp32 maths from the mean on.
        x64 = x.to(tl.float64)
        mean_sq = (tl.sum(x64 * x64, axis=1) / H).to(tl.float32)
        inv_rms = tl.math.rsqrt(mean_sq + eps)
        y = x * inv_rms[:, None]
        if HAS_WEIGHT:
            y = y * w
        store_tile(y_ptr, y, n_rows, H, stride_y, row, 0, 1, BLOCK_H, ACCESS)
