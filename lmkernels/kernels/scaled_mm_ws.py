"""sm90 scaled matmul, persistent and warp-specialised (Gluon): kernels/scaled_mm_wgmma.py's tiles
without their per-tile ramp.

Why: a program of kernels/scaled_mm_wgmma.py fills its pipeline, runs its K steps, writes its tile
and exits; the next program on that SM starts from an empty pipeline. At K = 4096 (32 steps of 128)
that fixed cost is ~12 % of a tile (int8 1250 TOP/s at 4096 x 4096 x 4096 against 1426 at
K = 14336 with the same tiles, session 18). Here one program an SM walks its tiles, and the
operand loads belong to a one-warp producer partition that runs up to STAGES steps ahead of the
consumer, across tile boundaries: the next tile's operands land while the consumer writes the
previous tile out.

Partitions (gl.warp_specialize):
  producer (1 warp): for each K step of each of the program's tiles, in order, waits for its slot
    to be free (empty[slot]), then TMA-loads a's and the weight's tiles into it (ready[slot]).
  consumer (the kernel's num_warps; with CONSUMERS = 2 a second 4-warp consumer as a worker): waits
    for a slot, issues the step's wgmma asynchronously, waits until only that one is in flight and
    frees the previous step's slot. With two consumers they take the program's tiles in turn and
    share one ring in tile order, so one consumer's epilogue runs while the other's MMAs do
    (CUTLASS's "ping-pong" schedule).
The epilogue is kernels/scaled_mm_wgmma.py's (same order, one rounding, bit-identical int8). With
TMA_STORE the rounded tile goes to a shared-memory buffer of its consumer and out by one TMA store
that the consumer waits for only before its next tile's write (H100, fp8 4096 x 28672 x 4096 with
128 x 256 x 128 tiles: 810 -> 682 µs, results/h100/probe_ws_tma.md); without it the tile is re-laid
out and written from registers, the consumer's warps held until their stores issue.
PDL: every warp waits (gdc_wait) before the partitions fork; dependents launch after they join, or
right after the wait with EARLY_LAUNCH.
"""
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                              warpgroup_mma_wait)
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .scaled_mm import _tile_coords
from .scaled_mm_wgmma import _epilogue, _scaled_tile, _tile_scales


@gluon.jit
def _epilogue_tma(acc, scales, c_desc, c_smem, m0, n0, HAS_BIAS: gl.constexpr):
    """_epilogue's maths and rounding, then the tile goes out through shared memory by one TMA
    store that the consumer does not wait for: it waits only before it next writes c_smem, a
    tile's MMAs later. TMA clips the rows >= M and columns >= N."""
    t = _scaled_tile(acc, scales, HAS_BIAS)
    tma.store_wait(0)  # the previous tile has left c_smem
    c_smem.store(t.to(c_desc.dtype))
    fence_async_shared()  # the tile's generic-proxy writes before the TMA unit reads it
    tma.async_copy_shared_to_global(c_desc, [m0, n0], c_smem)


@gluon.jit
def _ws_producer(p, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr, GROUP_M: gl.constexpr,
                 STAGES: gl.constexpr, CONSUMERS: gl.constexpr, SA_PER_TOKEN: gl.constexpr,
                 SB_PER_CHANNEL: gl.constexpr, HAS_BIAS: gl.constexpr, INT8: gl.constexpr, TMA_STORE: gl.constexpr):
    a_desc, b_desc, c_desc, a_smem, b_smem, c_smem, ready, empty, turn, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, K, \
        stride_cm, stride_sa, stride_sb = p
    tiles_m = gl.cdiv(M, BLOCK_M)
    tiles_n = gl.cdiv(N, BLOCK_N)
    k_steps = gl.cdiv(K, BLOCK_K)
    STEP_BYTES: gl.constexpr = a_desc.block_type.nbytes + b_desc.block_type.nbytes
    step = 0
    for tile in range(gl.program_id(0), tiles_m * tiles_n, gl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, tiles_m, tiles_n, GROUP_M)
        for k in range(k_steps):
            slot = step % STAGES
            # a fresh barrier counts as having completed the phase before phase 0: the first pass
            # over the ring does not wait
            mbarrier.wait(empty.index(slot), ((step // STAGES) & 1) ^ 1)
            mbarrier.expect(ready.index(slot), STEP_BYTES)
            tma.async_copy_global_to_shared(a_desc, [pid_m * BLOCK_M, k * BLOCK_K], ready.index(slot),
                                            a_smem.index(slot))
            tma.async_copy_global_to_shared(b_desc, [pid_n * BLOCK_N, k * BLOCK_K], ready.index(slot),
                                            b_smem.index(slot))
            step += 1


@gluon.jit
def _ws_consumer(p, WHICH: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr,
                 GROUP_M: gl.constexpr, STAGES: gl.constexpr, CONSUMERS: gl.constexpr, SA_PER_TOKEN: gl.constexpr,
                 SB_PER_CHANNEL: gl.constexpr, HAS_BIAS: gl.constexpr, INT8: gl.constexpr, TMA_STORE: gl.constexpr):
    """The program's tiles WHICH, WHICH + CONSUMERS, ... in its walk; tile j's K step k is ring step
    j * k_steps + k, as the producer counts."""
    a_desc, b_desc, c_desc, a_smem, b_smem, c_smem, ready, empty, turn, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, K, \
        stride_cm, stride_sa, stride_sb = p
    WARPS: gl.constexpr = gl.num_warps()
    INSTR_N: gl.constexpr = min(BLOCK_N, 128 if INT8 else 256)  # kernels/scaled_mm_wgmma.py
    ACC: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[WARPS, 1],
                                                  instr_shape=[16, INSTR_N, 32])
    ACC_DTYPE: gl.constexpr = gl.int32 if INT8 else gl.float32
    tiles_m = gl.cdiv(M, BLOCK_M)
    tiles_n = gl.cdiv(N, BLOCK_N)
    k_steps = gl.cdiv(K, BLOCK_K)
    nprog = gl.num_programs(0)
    n = 0  # this consumer's tiles so far; the program's tile j = n * CONSUMERS + WHICH
    for tile in range(gl.program_id(0) + WHICH * nprog, tiles_m * tiles_n, CONSUMERS * nprog):
        pid_m, pid_n = _tile_coords(tile, tiles_m, tiles_n, GROUP_M)
        m0 = pid_m * BLOCK_M
        n0 = pid_n * BLOCK_N
        first = (n * CONSUMERS + WHICH) * k_steps
        if CONSUMERS == 2:
            # the other consumer's previous tile has waited for all its slots: only then are the ring's
            # barriers within one phase of this tile's steps (a parity wait cannot tell phases two
            # apart), and the two consumers' K loops alternate (turn[c] completes once a tile of the
            # other's)
            mbarrier.wait(turn.index(WHICH), (n + 1 - WHICH) & 1, pred=n + WHICH > 0)
        acc = gl.zeros([BLOCK_M, BLOCK_N], ACC_DTYPE, ACC)
        for k in range(k_steps):
            step = first + k
            slot = step % STAGES
            mbarrier.wait(ready.index(slot), (step // STAGES) & 1)
            acc = warpgroup_mma(a_smem.index(slot), b_smem.index(slot).permute((1, 0)), acc, is_async=True)
            acc, _, _ = warpgroup_mma_wait(1, deps=[acc, a_smem.index(slot), b_smem.index(slot)])
            if WARPS > 4:
                gl.thread_barrier()  # every warpgroup's step k - 1 wgmmas done: one thread arrives for all
            mbarrier.arrive(empty.index((step + STAGES - 1) % STAGES), pred=k > 0)  # step k - 1's slot
        if CONSUMERS == 2:
            mbarrier.arrive(turn.index(1 - WHICH))
        # one consumer: the tile's scales (an L2 round trip) load while its last wgmma runs (H100, fp8
        # 128 x 256 x 128: 0-2.4 % at M >= 1024, results/h100/probe_ws_epilogue.md); two: after the
        # wait, as their epilogue already runs under the other consumer's MMAs (early loads there
        # measured 1.7-4.7 % slower at 3 of the 8 rows)
        EARLY_SCALES: gl.constexpr = CONSUMERS == 1
        if EARLY_SCALES:
            scales = _tile_scales(sa_ptr, sb_ptr, bias_ptr, M, N, stride_sa, stride_sb, m0, n0, ACC, BLOCK_M, BLOCK_N,
                                  SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS)
        acc = warpgroup_mma_wait(0, deps=[acc])
        if WARPS > 4:
            gl.thread_barrier()
        mbarrier.arrive(empty.index((first + k_steps - 1) % STAGES))
        if not EARLY_SCALES:
            scales = _tile_scales(sa_ptr, sb_ptr, bias_ptr, M, N, stride_sa, stride_sb, m0, n0, ACC, BLOCK_M, BLOCK_N,
                                  SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS)
        if TMA_STORE:
            _epilogue_tma(acc, scales, c_desc, c_smem.index(WHICH), m0, n0, HAS_BIAS)
        else:
            _epilogue(acc, scales, c_ptr, M, N, stride_cm, m0, n0, BLOCK_M, BLOCK_N, HAS_BIAS)
        n += 1
    if TMA_STORE:
        tma.store_wait(0)  # the last tile read out of c_smem before the program exits


@gluon.jit
def _ws_worker(p, WHICH: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr,
               GROUP_M: gl.constexpr, STAGES: gl.constexpr, CONSUMERS: gl.constexpr, SA_PER_TOKEN: gl.constexpr,
               SB_PER_CHANNEL: gl.constexpr, HAS_BIAS: gl.constexpr, INT8: gl.constexpr, TMA_STORE: gl.constexpr):
    """Worker partitions share one signature: WHICH < CONSUMERS is a consumer, else the producer."""
    if WHICH < CONSUMERS:
        _ws_consumer(p, WHICH, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, STAGES, CONSUMERS, SA_PER_TOKEN, SB_PER_CHANNEL,
                     HAS_BIAS, INT8, TMA_STORE)
    else:
        _ws_producer(p, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, STAGES, CONSUMERS, SA_PER_TOKEN, SB_PER_CHANNEL,
                     HAS_BIAS, INT8, TMA_STORE)


@gluon.jit(do_not_specialize=["M"])
def _scaled_mm_ws_kernel(a_desc, b_desc, c_desc, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, K, stride_cm, stride_sa, stride_sb,
                         BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_K: gl.constexpr, GROUP_M: gl.constexpr,
                         STAGES: gl.constexpr, CONSUMERS: gl.constexpr, SA_PER_TOKEN: gl.constexpr,
                         SB_PER_CHANNEL: gl.constexpr, HAS_BIAS: gl.constexpr, INT8: gl.constexpr,
                         USE_PDL: gl.constexpr, EARLY_LAUNCH: gl.constexpr, TMA_STORE: gl.constexpr):
    """c = epilogue(a @ w.t()) in [BLOCK_M, BLOCK_N] tiles, grid = min(tiles, SMs), launched with
    maxnreg so that the partitions' registers fit (ops/scaled_mm.py). With TMA_STORE, c_desc
    addresses c ([M, N], boxes [BLOCK_M, BLOCK_N]) and c_ptr is not read; without it c_desc is a
    stand-in (a_desc) that is never read."""
    a_smem = gl.allocate_shared_memory(a_desc.dtype, [STAGES, BLOCK_M, BLOCK_K], a_desc.layout)
    b_smem = gl.allocate_shared_memory(b_desc.dtype, [STAGES, BLOCK_N, BLOCK_K], b_desc.layout)
    if TMA_STORE:  # one output tile a consumer
        c_smem = gl.allocate_shared_memory(c_desc.dtype, [CONSUMERS, BLOCK_M, BLOCK_N], c_desc.layout)
    else:
        c_smem = a_smem  # never read
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())  # CONSUMERS = 2
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=1)
    for i in gl.static_range(2):
        mbarrier.init(turn.index(i), count=1)
    fence_async_shared()  # the barriers' initialisation before the TMA unit signals them
    if USE_PDL:
        gdc_wait()
        if EARLY_LAUNCH:
            gdc_launch_dependents()
    p = (a_desc, b_desc, c_desc, a_smem, b_smem, c_smem, ready, empty, turn, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, K,
         stride_cm, stride_sa, stride_sb)
    if CONSUMERS == 2:
        gl.warp_specialize([
            (_ws_consumer, (p, 0, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, STAGES, CONSUMERS, SA_PER_TOKEN, SB_PER_CHANNEL,
                            HAS_BIAS, INT8, TMA_STORE)),
            (_ws_worker, (p, 1, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, STAGES, CONSUMERS, SA_PER_TOKEN, SB_PER_CHANNEL,
                          HAS_BIAS, INT8, TMA_STORE)),
            (_ws_worker, (p, 2, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, STAGES, CONSUMERS, SA_PER_TOKEN, SB_PER_CHANNEL,
                          HAS_BIAS, INT8, TMA_STORE))], [4, 1], [232, 24])
    else:
        gl.warp_specialize([
            (_ws_consumer, (p, 0, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, STAGES, CONSUMERS, SA_PER_TOKEN, SB_PER_CHANNEL,
                            HAS_BIAS, INT8, TMA_STORE)),
            (_ws_worker, (p, 1, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, STAGES, CONSUMERS, SA_PER_TOKEN, SB_PER_CHANNEL,
                          HAS_BIAS, INT8, TMA_STORE))], [1], [24])
    if USE_PDL:
        if not EARLY_LAUNCH:
            gdc_launch_dependents()
