"""sm90 scaled matmul with explicit asynchronous wgmma (Gluon): the int8 path Triton 3.6 cannot emit.

Why a second kernel: Triton 3.6's wgmma pipeliner keeps a dot in flight across K steps only when
its accumulator is fp32 (WGMMAPipeline.cpp, "Rule 2.1"), so every int8 K step of
kernels/scaled_mm.py ends in `wgmma.wait_group 0`: the tensor cores idle while the warps wait out
their own MMAs (fp8, with an fp32 accumulator, waits for the previous step's only: wait_group 1;
tests/test_compile.py pins both). Gluon (triton.experimental.gluon, part of Triton) states the
pipeline instead of asking the compiler for it, so int8 gets fp8's schedule:

  STAGES shared-memory slots, each one [BLOCK_M, BLOCK_K] tile of a and one [BLOCK_N, BLOCK_K] of
  the weight, filled by TMA and signalled on the slot's mbarrier. K step k waits for its slot,
  issues its wgmmas asynchronously, then waits until at most that one group is in flight (step
  k - 1's MMAs are done, so k - 1's slot is free) and refills that slot with step k + STAGES - 1.

Operands: a [M, K] row-major and b = w.t() of a row-major weight w [N, K] (both K-contiguous: the
only form an 8-bit wgmma reads from shared memory), as host TMA descriptors; K tails and M / N
edges are zero-filled by TMA. The epilogue is kernels/scaled_mm.py's, in its order (t = float(acc);
t *= sa; t *= sb; t += bias; one rounding), applied in the accumulator's own layout, then the
rounded tile is re-laid out for coalesced stores; launched with enable_fp_fusion=False, so int8
stays bit-identical to the reference. PDL as kernels/scaled_mm.py: nothing read before gdc_wait.

The CPU interpreter cannot run Gluon: ops/scaled_mm.py takes this kernel only on an sm90 GPU
(config key WGMMA), and tests/test_compile.py compiles it for sm90 on every machine.
"""
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                              warpgroup_mma_wait)
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .scaled_mm import _tile_coords  # scalar maths: a @triton.jit helper compiles inside Gluon as it is


@gluon.jit
def _issue_step(a_desc, b_desc, b2_desc, a_smem, b_smem, b2_smem, ready, step, m0, n0, pred, BLOCK_N: gl.constexpr,
                BLOCK_N2: gl.constexpr, BLOCK_K: gl.constexpr, STAGES: gl.constexpr):
    """TMA loads of K step `step` into its slot (step % STAGES), counted on the slot's barrier."""
    slot = step % STAGES
    if BLOCK_N2 > 0:
        STEP_BYTES: gl.constexpr = (a_desc.block_type.nbytes + b_desc.block_type.nbytes +
                                    b2_desc.block_type.nbytes)
    else:
        STEP_BYTES: gl.constexpr = a_desc.block_type.nbytes + b_desc.block_type.nbytes
    mbarrier.expect(ready.index(slot), STEP_BYTES, pred=pred)
    tma.async_copy_global_to_shared(a_desc, [m0, step * BLOCK_K], ready.index(slot), a_smem.index(slot), pred=pred)
    tma.async_copy_global_to_shared(b_desc, [n0, step * BLOCK_K], ready.index(slot), b_smem.index(slot), pred=pred)
    if BLOCK_N2 > 0:
        tma.async_copy_global_to_shared(b2_desc, [n0 + BLOCK_N, step * BLOCK_K], ready.index(slot),
                                        b2_smem.index(slot), pred=pred)


@gluon.jit
def _tile_scales(sa_ptr, sb_ptr, bias_ptr, M, N, stride_sa, stride_sb, m0, n0, ACC: gl.constexpr,
                 BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, SA_PER_TOKEN: gl.constexpr,
                 SB_PER_CHANNEL: gl.constexpr, HAS_BIAS: gl.constexpr):
    """The epilogue's operands for the [BLOCK_M, BLOCK_N] tile at (m0, n0), broadcastable against an
    accumulator of layout ACC: (scale_a, scale_b, bias), the bias in fp32 (0.0 without one). Loaded
    apart from _scaled_tile so that a caller can issue them while its last wgmma runs."""
    offs_m = m0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, ACC))
    offs_n = n0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, ACC))
    if SA_PER_TOKEN:
        sa = gl.expand_dims(gl.load(sa_ptr + offs_m.to(gl.int64) * stride_sa, mask=offs_m < M, other=0.0), 1)
    else:
        sa = gl.load(sa_ptr)
    if SB_PER_CHANNEL:
        sb = gl.expand_dims(gl.load(sb_ptr + offs_n.to(gl.int64) * stride_sb, mask=offs_n < N, other=0.0), 0)
    else:
        sb = gl.load(sb_ptr)
    if HAS_BIAS:
        bias = gl.expand_dims(gl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(gl.float32), 0)
    else:
        bias = 0.0
    return sa, sb, bias


@gluon.jit
def _scaled_tile(acc, scales, HAS_BIAS: gl.constexpr):
    """kernels/scaled_mm.py's epilogue maths on one accumulator with _tile_scales' operands, in its
    order, in the accumulator's layout: fp32, not yet rounded."""
    sa, sb, bias = scales
    t = acc.to(gl.float32) * sa
    t = t * sb
    if HAS_BIAS:
        t = t + bias
    return t


@gluon.jit
def _epilogue(acc, scales, c_ptr, M, N, stride_cm, m0, n0, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr,
              HAS_BIAS: gl.constexpr):
    """_scaled_tile, one rounding, then the tile re-laid out for coalesced 16-byte stores."""
    WARPS: gl.constexpr = gl.num_warps()
    COLS_T: gl.constexpr = min(BLOCK_N // 8, 8)  # threads along a row, 8 outputs each
    OUT: gl.constexpr = gl.BlockedLayout([1, 8], [32 // COLS_T, COLS_T], [WARPS, 1], [1, 0])
    y = gl.convert_layout(_scaled_tile(acc, scales, HAS_BIAS).to(c_ptr.dtype.element_ty), OUT)
    rows = m0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, OUT))
    cols = n0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, OUT))
    ptrs = c_ptr + gl.expand_dims(rows.to(gl.int64) * stride_cm, 1) + gl.expand_dims(cols, 0)
    gl.store(ptrs, y, mask=gl.expand_dims(rows < M, 1) & gl.expand_dims(cols < N, 0))


@gluon.jit(do_not_specialize=["M"])
def _scaled_mm_wgmma_kernel(a_desc, b_desc, b2_desc, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, K, stride_cm, stride_sa,
                            stride_sb, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_N2: gl.constexpr,
                            BLOCK_K: gl.constexpr, GROUP_M: gl.constexpr, STAGES: gl.constexpr,
                            SA_PER_TOKEN: gl.constexpr, SB_PER_CHANNEL: gl.constexpr, HAS_BIAS: gl.constexpr,
                            INT8: gl.constexpr, USE_PDL: gl.constexpr, EARLY_LAUNCH: gl.constexpr):
    """One [BLOCK_M, BLOCK_N + BLOCK_N2] tile of c = epilogue(a @ w.t()) a program (grid: the tiles).

    BLOCK_N2 > 0 splits a tile whose width is not a power of two (Gluon's tensors are) into two
    accumulators: columns [0, BLOCK_N) from b_desc's box and [BLOCK_N, BLOCK_N + BLOCK_N2) from
    b2_desc's (the same weight, a narrower box), two wgmma groups a K step."""
    WARPS: gl.constexpr = gl.num_warps()
    # the warps stack along M (a warpgroup per 64 rows); a wgmma is 32 deep and up to 256 columns
    # wide, 128 for int8 (Triton 3.6's NVGPU lowering refuses wider s8 shapes)
    INSTR_N: gl.constexpr = min(BLOCK_N, 128 if INT8 else 256)
    ACC: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[WARPS, 1],
                                                  instr_shape=[16, INSTR_N, 32])
    ACC2: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[WARPS, 1],
                                                   instr_shape=[16, max(BLOCK_N2, 8), 32])
    ACC_DTYPE: gl.constexpr = gl.int32 if INT8 else gl.float32
    GROUPS: gl.constexpr = 2 if BLOCK_N2 > 0 else 1  # wgmma groups a K step
    tiles_m = gl.cdiv(M, BLOCK_M)
    tiles_n = gl.cdiv(N, BLOCK_N + BLOCK_N2)
    pid_m, pid_n = _tile_coords(gl.program_id(0), tiles_m, tiles_n, GROUP_M)
    m0 = pid_m * BLOCK_M
    n0 = pid_n * (BLOCK_N + BLOCK_N2)
    a_smem = gl.allocate_shared_memory(a_desc.dtype, [STAGES, BLOCK_M, BLOCK_K], a_desc.layout)
    b_smem = gl.allocate_shared_memory(b_desc.dtype, [STAGES, BLOCK_N, BLOCK_K], b_desc.layout)
    if BLOCK_N2 > 0:
        b2_smem = gl.allocate_shared_memory(b2_desc.dtype, [STAGES, BLOCK_N2, BLOCK_K], b2_desc.layout)
    else:
        b2_smem = b_smem  # never read
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
    fence_async_shared()  # the barriers' initialisation before the TMA unit signals them
    if USE_PDL:
        gdc_wait()
        if EARLY_LAUNCH:
            gdc_launch_dependents()
    k_steps = gl.cdiv(K, BLOCK_K)
    for i in gl.static_range(STAGES - 1):
        _issue_step(a_desc, b_desc, b2_desc, a_smem, b_smem, b2_smem, ready, i, m0, n0, i < k_steps, BLOCK_N,
                    BLOCK_N2, BLOCK_K, STAGES)
    acc = gl.zeros([BLOCK_M, BLOCK_N], ACC_DTYPE, ACC)
    acc2 = gl.zeros([BLOCK_M, max(BLOCK_N2, 8)], ACC_DTYPE, ACC2)  # a stand-in without BLOCK_N2
    for k in range(k_steps):
        slot = k % STAGES
        mbarrier.wait(ready.index(slot), (k // STAGES) & 1)
        acc = warpgroup_mma(a_smem.index(slot), b_smem.index(slot).permute((1, 0)), acc, is_async=True)
        if BLOCK_N2 > 0:
            acc2 = warpgroup_mma(a_smem.index(slot), b2_smem.index(slot).permute((1, 0)), acc2, is_async=True)
            # step k - 1's wgmmas are done: its slot takes step k + STAGES - 1
            acc, acc2, _, _, _ = warpgroup_mma_wait(GROUPS, deps=[acc, acc2, a_smem.index(slot),
                                                                  b_smem.index(slot), b2_smem.index(slot)])
        else:
            acc, _, _ = warpgroup_mma_wait(GROUPS, deps=[acc, a_smem.index(slot), b_smem.index(slot)])
        nxt = k + STAGES - 1
        _issue_step(a_desc, b_desc, b2_desc, a_smem, b_smem, b2_smem, ready, nxt, m0, n0, nxt < k_steps, BLOCK_N,
                    BLOCK_N2, BLOCK_K, STAGES)
    if BLOCK_N2 > 0:
        acc, acc2 = warpgroup_mma_wait(0, deps=[acc, acc2])
    else:
        acc = warpgroup_mma_wait(0, deps=[acc])
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(ready.index(i))
    scales = _tile_scales(sa_ptr, sb_ptr, bias_ptr, M, N, stride_sa, stride_sb, m0, n0, ACC, BLOCK_M, BLOCK_N,
                          SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS)
    _epilogue(acc, scales, c_ptr, M, N, stride_cm, m0, n0, BLOCK_M, BLOCK_N, HAS_BIAS)
    if BLOCK_N2 > 0:
        scales2 = _tile_scales(sa_ptr, sb_ptr, bias_ptr, M, N, stride_sa, stride_sb, m0, n0 + BLOCK_N, ACC2, BLOCK_M,
                               BLOCK_N2, SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS)
        _epilogue(acc2, scales2, c_ptr, M, N, stride_cm, m0, n0 + BLOCK_N, BLOCK_M, BLOCK_N2, HAS_BIAS)
    if USE_PDL:
        if not EARLY_LAUNCH:
            gdc_launch_dependents()
