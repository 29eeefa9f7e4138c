"""W8A8 scaled matmul: out = round(scale_a[m] * scale_b[n] * (a @ b)[m, n] + bias[n]).

Two kernels:
  _scaled_mm_kernel      one [BLOCK_M, BLOCK_N] output tile (of one K split) a work item; int32
                         (int8) or fp32 (fp8) accumulation; with SPLIT_K == 1 the epilogue is
                         applied in place. SPLIT_K > 1 and ONE_LAUNCH ("last one finishes", the
                         protocol of kernels/small_gemm.py, buffers from runtime/scratch.py): each
                         work item stores its raw partial tile to the workspace [tiles, SPLIT_K,
                         BLOCK_M, BLOCK_N] and counts itself in on its tile's counter; the item that
                         arrives last sums the tile's partials in the order 0, 1, ..., SPLIT_K - 1,
                         applies the epilogue and resets the counter; with TAIL_SMS > 0 (the
                         SPLIT_TAIL config key) only the tiles past the last whole wave of TAIL_SMS
                         tiles are split, the rest run whole (_item). Not ONE_LAUNCH (the
                         default; HIP's only way): the raw partial sums go to a workspace
                         [SPLIT_K, M, N] (int32 / fp32) and
  _split_k_reduce_kernel sums a workspace's splits in the same fixed order 0, 1, ..., SPLIT_K - 1,
                         then applies the same epilogue. Both finishes add the same numbers in the
                         same order, so they agree bit for bit and run to run; int8's integer sums
                         are exact in any order, so split-K int8 is still bit-exact.

Operands: a [M, K] and b [K, N]; each either K-contiguous or M/N-contiguous (the *_T constexprs),
addressed through kernels/access.py as a 2-D operand with a contiguous last dim:
  a, A_T False: rows m, cols k (a row-major)        A_T True: rows k, cols m (a column-major)
  b, B_T False: rows k, cols n (b row-major)        B_T True: rows n, cols k (b = w.t(), w [N, K])
A tile read the other way round is transposed in registers (tl.trans: on a GPU a change of the
shared-memory layout the MMA reads, no data movement), so every layout feeds tl.dot [BM, BK] x
[BK, BN]. For descriptors the host builds each over the operand's memory order with that box.

Epilogue, one fixed order in kernel and reference (lmkernels/reference/scaled_mm.py):
    t = float32(acc); t = t * sa[m]; t = t * sb[n]; t = t + float32(bias[n]); out = cast(t)
each step one fp32 rounding. The op launches with enable_fp_fusion=False so the compiler keeps
t * sb + bias two roundings instead of one FMA; int8's acc is exact (int32), so int8 results are
bit-identical to the reference on a GPU.

USE_PDL (programmatic dependent launch, sm90+, launched with launch_pdl): nothing is read before
gdc_wait() (a, the scales and the bias may be the previous kernel's outputs, and so, in a chain
that quantises a weight just before, may b). gdc_launch_dependents(): EARLY_LAUNCH right after the
wait, so the next kernel launches while this one works (sound: every lmkernels kernel touches
memory only after its own wait); otherwise once the program's work is done (ops/scaled_mm.py
picks: grids past 1.5 programs an SM, 2 at decode, ran up to 4.5 µs slower with the early
launch, probe_scaled_mm_pdl.md).
"""
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from .access import POINTER, load_tile, store_tile
from .split_k import last_to_arrive


@triton.jit
def _tile_coords(tile, tiles_m, tiles_n, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) of work tile `tile`: tiles walk down a band of GROUP_M tile rows, column by
    column, so consecutive programs share b's column tiles (and the band's a rows) in L2 instead of
    each streaming a fresh weight slice."""
    band = GROUP_M * tiles_n
    first_m = (tile // band) * GROUP_M
    rows = tl.minimum(tiles_m - first_m, GROUP_M)
    within = tile % band
    return first_m + within % rows, within // rows


@triton.jit
def _load_operand(view, n_rows, n_cols, stride, r0, c0, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
                  TRANSPOSED: tl.constexpr, ACCESS: tl.constexpr):
    """The logical [BLOCK_R, BLOCK_C] tile at (r0, c0) of an [n_rows, n_cols] operand; zeros past its
    ends. TRANSPOSED: the operand is stored [n_cols, n_rows] (the *_T constexprs), so the tile is
    read the other way round and transposed in registers. a: (M, K) at (m0, k0); b: (K, N) at (k0, n0)."""
    if TRANSPOSED:
        return tl.trans(load_tile(view, n_cols, n_rows, stride, c0, r0, BLOCK_C, BLOCK_R, ACCESS))
    else:
        return load_tile(view, n_rows, n_cols, stride, r0, c0, BLOCK_R, BLOCK_C, ACCESS)


@triton.jit
def _mma_operands(a_view, b_view, M, N, K, stride_a, stride_b, m0, n0, k0, BLOCK_M: tl.constexpr,
                  BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, A_T: tl.constexpr, B_T: tl.constexpr,
                  ACCESS: tl.constexpr, SWAP_AB: tl.constexpr):
    """The two tl.dot operands of K step k0: a's [BLOCK_M, BLOCK_K] and b's [BLOCK_K, BLOCK_N] tiles, or
    with SWAP_AB b^T's [BLOCK_N, BLOCK_K] and a^T's [BLOCK_K, BLOCK_M] (the same memory, the same
    loads and descriptor boxes, read as the transposed operand)."""
    if SWAP_AB:
        x = _load_operand(b_view, N, K, stride_b, n0, k0, BLOCK_N, BLOCK_K, not B_T, ACCESS)
        y = _load_operand(a_view, K, M, stride_a, k0, m0, BLOCK_K, BLOCK_M, not A_T, ACCESS)
    else:
        x = _load_operand(a_view, M, K, stride_a, m0, k0, BLOCK_M, BLOCK_K, A_T, ACCESS)
        y = _load_operand(b_view, K, N, stride_b, k0, n0, BLOCK_K, BLOCK_N, B_T, ACCESS)
    return x, y


@triton.jit
def _scale_a(sa_ptr, M, stride_sa, m0, BLOCK_M: tl.constexpr, SA_PER_TOKEN: tl.constexpr):
    """The tile's sa: [BLOCK_M, 1] per token, else the scalar."""
    if SA_PER_TOKEN:
        offs_m = m0 + tl.arange(0, BLOCK_M)
        sa = tl.load(sa_ptr + offs_m.to(tl.int64) * stride_sa, mask=offs_m < M, other=0.0)[:, None]
    else:
        sa = tl.load(sa_ptr)
    return sa


@triton.jit
def _scale_b(sb_ptr, N, stride_sb, n0, BLOCK_N: tl.constexpr, SB_PER_CHANNEL: tl.constexpr):
    """The tile's sb: [1, BLOCK_N] per channel, else the scalar."""
    if SB_PER_CHANNEL:
        offs_n = n0 + tl.arange(0, BLOCK_N)
        sb = tl.load(sb_ptr + offs_n.to(tl.int64) * stride_sb, mask=offs_n < N, other=0.0)[None, :]
    else:
        sb = tl.load(sb_ptr)
    return sb


@triton.jit
def _bias_row(bias_ptr, N, n0, BLOCK_N: tl.constexpr):
    """The tile's bias as a [1, BLOCK_N] fp32 row."""
    offs_n = n0 + tl.arange(0, BLOCK_N)
    return tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]


@triton.jit
def _epilogue_operands(sa_ptr, sb_ptr, bias_ptr, M, N, stride_sa, stride_sb, m0, n0, BLOCK_M: tl.constexpr,
                       BLOCK_N: tl.constexpr, SA_PER_TOKEN: tl.constexpr, SB_PER_CHANNEL: tl.constexpr,
                       HAS_BIAS: tl.constexpr):
    """(sa, sb, bias) of the tile at (m0, n0), read ahead of the epilogue (EARLY_EPILOGUE, and the
    split-K reduce with its partials); bias 0.0 without one."""
    sa = _scale_a(sa_ptr, M, stride_sa, m0, BLOCK_M, SA_PER_TOKEN)
    sb = _scale_b(sb_ptr, N, stride_sb, n0, BLOCK_N, SB_PER_CHANNEL)
    bias = _bias_row(bias_ptr, N, n0, BLOCK_N) if HAS_BIAS else 0.0
    return sa, sb, bias


@triton.jit
def _epilogue(acc, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, stride_cm, stride_sa, stride_sb, m0, n0, sa, sb, bias,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SA_PER_TOKEN: tl.constexpr,
              SB_PER_CHANNEL: tl.constexpr, HAS_BIAS: tl.constexpr, READ: tl.constexpr):
    """Scale, add the bias, round once, store the in-bounds part of the tile (the module's order).
    READ: sa, sb and bias were read ahead (_epilogue_operands); otherwise each is read here, just
    before its use, which keeps the large tiles' code as it was measured (their SASS is unchanged
    by the early read)."""
    t = acc.to(tl.float32)
    if not READ:
        sa = _scale_a(sa_ptr, M, stride_sa, m0, BLOCK_M, SA_PER_TOKEN)
    t = t * sa
    if not READ:
        sb = _scale_b(sb_ptr, N, stride_sb, n0, BLOCK_N, SB_PER_CHANNEL)
    t = t * sb
    if HAS_BIAS:
        if not READ:
            bias = _bias_row(bias_ptr, N, n0, BLOCK_N)
        t = t + bias
    store_tile(c_ptr, t, M, N, stride_cm, m0, n0, BLOCK_M, BLOCK_N, POINTER)


@triton.jit
def _item(w, tiles_m, tiles_n, K, k_chunk, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr,
          SPLIT_K: tl.constexpr, TAIL_SMS: tl.constexpr):
    """(split, tile, slot, m0, n0, k_lo, k_hi) of work item w: split w // tiles of tile w % tiles (its
    workspace slot: the tile); its K range [split * k_chunk, + k_chunk). k_chunk is a multiple of
    BLOCK_K (the host rounds it), so no tile straddles two splits and the only partial tile is the
    one ending at K, which every mode zero-fills: the K mask of the pointer mode and the
    descriptor's bounds agree. Without a split the K range is the constant (0, K): a persistent
    loop can then be flattened (_scaled_mm_kernel).

    TAIL_SMS > 0 (SPLIT_TAIL): only the tiles past the last whole wave of TAIL_SMS tiles are split.
    Items 0 .. whole - 1 are the whole tiles (split -1: all of K, the epilogue in place); item
    whole + s * rest + i is split s of tile whole + i (slot i), rest = tiles - whole. 192 tiles on
    132 SMs: 132 whole tiles and 60 x SPLIT_K parts, so no SM does more than 1 + 1/SPLIT_K tiles'
    work where the plain grid gave 60 of them two; that pays where a tile holds an SM alone (H100:
    4-13 %), not where two small ones share it anyway (64 x 64: 6 % slower)."""
    tiles = tiles_m * tiles_n
    if TAIL_SMS > 0:
        whole = tiles - tiles % TAIL_SMS
        rest = tl.maximum(tiles - whole, 1)
        part = tl.maximum(w - whole, 0)
        alone = w < whole
        split = tl.where(alone, -1, part // rest)
        slot = part % rest
        tile = tl.where(alone, w, whole + slot)
        k_lo = tl.where(alone, 0, split * k_chunk)
        k_hi = tl.where(alone, K, tl.minimum(k_lo + k_chunk, K))
    else:
        split = w // tiles
        tile = w % tiles
        slot = tile
        if SPLIT_K == 1:
            k_lo = 0
            k_hi = K
        else:
            k_lo = split * k_chunk
            k_hi = tl.minimum(k_lo + k_chunk, K)
    pid_m, pid_n = _tile_coords(tile, tiles_m, tiles_n, GROUP_M)
    return split, tile, slot, pid_m * BLOCK_M, pid_n * BLOCK_N, k_lo, k_hi


@triton.jit
def _finish_in_launch(acc, c_ptr, part_ptr, count_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, stride_cm, stride_sa,
                      stride_sb, split, slot_index, m0, n0, sa, sb, bias, BLOCK_M: tl.constexpr,
                      BLOCK_N: tl.constexpr, SPLIT_K: tl.constexpr, SA_PER_TOKEN: tl.constexpr,
                      SB_PER_CHANNEL: tl.constexpr, HAS_BIAS: tl.constexpr, EARLY_EPILOGUE: tl.constexpr):
    """One-launch split-K: store this split's partial tile to its workspace slot, count in
    (kernels/split_k.py); the tile's last arrival sums the SPLIT_K partials, 0 first, runs the
    epilogue, resets the counter. Slots are whole tiles (the workspace has tiles x SPLIT_K of them),
    so the stores need no mask. The sum's order is fixed whoever arrives last, and the same as
    _split_k_reduce_kernel's. slot_index: the tile's workspace slot and counter (_item). EARLY_EPILOGUE:
    sa, sb and bias were read before the K loop (_work_item); else the last arrival reads them."""
    TILE: tl.constexpr = BLOCK_M * BLOCK_N
    offs = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
    slot = part_ptr + slot_index.to(tl.int64) * (SPLIT_K * TILE)
    tl.store(slot + split * TILE + offs, acc)
    if last_to_arrive(count_ptr + slot_index, SPLIT_K):
        total = tl.load(slot + offs, cache_modifier=".cg")
        for s in tl.static_range(1, SPLIT_K):
            total += tl.load(slot + s * TILE + offs, cache_modifier=".cg")
        _epilogue(total, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, stride_cm, stride_sa, stride_sb, m0, n0, sa, sb, bias,
                  BLOCK_M, BLOCK_N, SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS, EARLY_EPILOGUE)
        tl.store(count_ptr + slot_index, 0)


@triton.jit
def _work_item(a_view, b_view, c_ptr, part_ptr, count_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, K,
               stride_a, stride_b, stride_cm, stride_cs, stride_sa, stride_sb, w, tiles_m, tiles_n, k_chunk,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
               SPLIT_K: tl.constexpr, A_T: tl.constexpr, B_T: tl.constexpr, SA_PER_TOKEN: tl.constexpr,
               SB_PER_CHANNEL: tl.constexpr, HAS_BIAS: tl.constexpr, INT8: tl.constexpr,
               FAST_ACCUM: tl.constexpr, ACCESS: tl.constexpr, ONE_LAUNCH: tl.constexpr, TAIL_SMS: tl.constexpr,
               EARLY_EPILOGUE: tl.constexpr, SWAP_AB: tl.constexpr):
    """Work item w: its tile and K range (_item), the K loop, then the epilogue, the one-launch
    finish or the partial store. The epilogue's scales and bias are read before the K loop
    (EARLY_EPILOGUE) or in the epilogue itself."""
    split, tile, slot, m0, n0, k_lo, k_hi = _item(w, tiles_m, tiles_n, K, k_chunk, BLOCK_M, BLOCK_N, GROUP_M,
                                                  SPLIT_K, TAIL_SMS)
    sa, sb, bias = 1.0, 1.0, 0.0  # read in the epilogue unless EARLY_EPILOGUE
    if EARLY_EPILOGUE and (SPLIT_K == 1 or ONE_LAUNCH):  # in flight with the first operand tiles
        sa, sb, bias = _epilogue_operands(sa_ptr, sb_ptr, bias_ptr, M, N, stride_sa, stride_sb, m0, n0, BLOCK_M,
                                          BLOCK_N, SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS)
    # SWAP_AB: the MMA computes acc^T [BLOCK_N, BLOCK_M] = b^T a^T, so that the weight tile is its M
    # side (sm90's wgmma needs M >= 64 a warpgroup; Triton takes mma.sync below that, which has no fp8
    # form on sm90: it widened e4m3 to f16 and ran twice the MMAs of int8 at decode). Same products,
    # same K order per output: int8 stays exact, fp8 sums as the MMA does.
    ACC_SHAPE: tl.constexpr = (BLOCK_N, BLOCK_M) if SWAP_AB else (BLOCK_M, BLOCK_N)
    if INT8:
        acc = tl.zeros(ACC_SHAPE, dtype=tl.int32)
        for k0 in tl.range(k_lo, k_hi, BLOCK_K):
            a, b = _mma_operands(a_view, b_view, M, N, K, stride_a, stride_b, m0, n0, k0, BLOCK_M, BLOCK_N, BLOCK_K,
                                 A_T, B_T, ACCESS, SWAP_AB)
            acc = tl.dot(a, b, acc, out_dtype=tl.int32)
    else:
        acc = tl.zeros(ACC_SHAPE, dtype=tl.float32)
        for k0 in tl.range(k_lo, k_hi, BLOCK_K):
            a, b = _mma_operands(a_view, b_view, M, N, K, stride_a, stride_b, m0, n0, k0, BLOCK_M, BLOCK_N, BLOCK_K,
                                 A_T, B_T, ACCESS, SWAP_AB)
            if FAST_ACCUM:
                # sm90: the whole K loop accumulates in the tensor cores' own accumulator (Triton's
                # sm90 default, max_num_imprecise_acc 2^30), which keeps fewer bits than fp32; the
                # wgmma chain stays asynchronous across K steps
                acc = tl.dot(a, b, acc)
            else:
                # each BLOCK_K slice's wgmma chain is added into a separate fp32 accumulator:
                # the products' sum loses at most the hardware accumulator's bits over BLOCK_K
                # terms, but every K step waits for its wgmmas before the add (the cost measured
                # in results/h100/probe_scaled_mm_big.md)
                acc = tl.dot(a, b, acc, max_num_imprecise_acc=BLOCK_K)
    if SWAP_AB:
        acc = tl.trans(acc)
    if SPLIT_K == 1 or ONE_LAUNCH:
        alone = SPLIT_K == 1
        if TAIL_SMS > 0:
            alone = split < 0  # a whole tile of SPLIT_TAIL's full waves
        if alone:
            _epilogue(acc, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, stride_cm, stride_sa, stride_sb, m0, n0, sa, sb, bias,
                      BLOCK_M, BLOCK_N, SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS, EARLY_EPILOGUE)
        else:
            _finish_in_launch(acc, c_ptr, part_ptr, count_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, stride_cm, stride_sa,
                              stride_sb, split, slot, m0, n0, sa, sb, bias, BLOCK_M, BLOCK_N, SPLIT_K, SA_PER_TOKEN,
                              SB_PER_CHANNEL, HAS_BIAS, EARLY_EPILOGUE)
    else:  # the raw partial sums of this split (c_ptr: the workspace); the reduce kernel scales them
        store_tile(c_ptr + split.to(tl.int64) * stride_cs, acc, M, N, stride_cm, m0, n0, BLOCK_M, BLOCK_N, POINTER)


# M changes every decode step: do_not_specialize keeps one compiled kernel for M = 1, M % 16 == 0
# and the rest (Triton would otherwise specialise M == 1 and M's divisibility by 16, two extra
# compiles the first time a batch size of each kind shows up, for no gain: M only bounds masks
# and the tile count). stride_cs (= M * N, the workspace's split stride) likewise.
@triton.jit(do_not_specialize=["M", "stride_cs"])
def _scaled_mm_kernel(a_view, b_view, c_ptr, part_ptr, count_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, K,
                      stride_a, stride_b, stride_cm, stride_cs, stride_sa, stride_sb, k_chunk,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                      GROUP_M: tl.constexpr, SPLIT_K: tl.constexpr, PERSISTENT: tl.constexpr,
                      A_T: tl.constexpr, B_T: tl.constexpr, SA_PER_TOKEN: tl.constexpr,
                      SB_PER_CHANNEL: tl.constexpr, HAS_BIAS: tl.constexpr, INT8: tl.constexpr,
                      FAST_ACCUM: tl.constexpr, ACCESS: tl.constexpr, USE_PDL: tl.constexpr,
                      EARLY_LAUNCH: tl.constexpr, ONE_LAUNCH: tl.constexpr, TAIL_SMS: tl.constexpr,
                      SWAP_AB: tl.constexpr = False):
    """a [M, K] x b [K, N] -> c [M, N] (SPLIT_K == 1, or ONE_LAUNCH: scaled and rounded) or the
    workspace [SPLIT_K, M, N] (raw sums, split s at c_ptr + s * stride_cs). a_view / b_view are
    pointers, or host-made tensor descriptors over the operands' memory order when ACCESS is
    descriptor. part_ptr / count_ptr: ONE_LAUNCH's workspace and zeroed int32 counters (one a
    tile); otherwise never touched.

    Work items: tiles_m * tiles_n tiles times SPLIT_K splits, split-major. Not PERSISTENT: one item
    a program (grid = items). PERSISTENT: grid = min(items, SMs), each program takes items pid,
    pid + grid, ... so the last wave's tail and the launch of further waves disappear. The loop
    asks Triton to flatten the tile loop and the K loop into one (tl.range flatten=True) so the
    pipeline's loads run on into the next tile while this one's epilogue stores: with SPLIT_K == 1
    the K loop's bounds (0, K) do not depend on the tile and the sm90 TTGIR shows one fused loop;
    with SPLIT_K > 1 they do and the loops stay nested (the K loop pipelined, as without PERSISTENT).
    """
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    pid = tl.program_id(0)
    # decode tiles (one a program) read the epilogue's scales and bias before their K loop: after it
    # they cost a DRAM round trip (~0.5-0.8 µs) behind the last MMA, the scales being small tensors
    # the weight's stream pushes out of L2 (probe_epilogue_prefetch.md)
    EARLY_EPILOGUE: tl.constexpr = BLOCK_M * BLOCK_N <= 16 * 64
    if USE_PDL:
        gdc_wait()
        if EARLY_LAUNCH:
            gdc_launch_dependents()
    if PERSISTENT:
        items = tiles_m * tiles_n * SPLIT_K
        if TAIL_SMS > 0:  # the whole tiles of full waves, then the split ones (_item)
            items = tiles_m * tiles_n + (tiles_m * tiles_n % TAIL_SMS) * (SPLIT_K - 1)
        for w in tl.range(pid, items, tl.num_programs(0), flatten=True):
            _work_item(a_view, b_view, c_ptr, part_ptr, count_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, K, stride_a,
                       stride_b, stride_cm, stride_cs, stride_sa, stride_sb, w, tiles_m, tiles_n, k_chunk, BLOCK_M,
                       BLOCK_N, BLOCK_K, GROUP_M, SPLIT_K, A_T, B_T, SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS, INT8,
                       FAST_ACCUM, ACCESS, ONE_LAUNCH, TAIL_SMS, False, SWAP_AB)
    else:
        _work_item(a_view, b_view, c_ptr, part_ptr, count_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, K, stride_a, stride_b,
                   stride_cm, stride_cs, stride_sa, stride_sb, pid, tiles_m, tiles_n, k_chunk, BLOCK_M, BLOCK_N,
                   BLOCK_K, GROUP_M, SPLIT_K, A_T, B_T, SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS, INT8, FAST_ACCUM,
                   ACCESS, ONE_LAUNCH, TAIL_SMS, EARLY_EPILOGUE, SWAP_AB)
    if USE_PDL:
        if not EARLY_LAUNCH:
            gdc_launch_dependents()


@triton.jit(do_not_specialize=["M", "stride_ws"])
def _split_k_reduce_kernel(ws_ptr, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, stride_ws, stride_cm, stride_sa,
                           stride_sb, SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                           SA_PER_TOKEN: tl.constexpr, SB_PER_CHANNEL: tl.constexpr, HAS_BIAS: tl.constexpr,
                           USE_PDL: tl.constexpr):
    """c <- epilogue(ws[0] + ws[1] + ... + ws[SPLIT_K - 1]) over one [BLOCK_M, BLOCK_N] tile, the sum
    taken left to right (the workspace holds int32 for int8, fp32 for fp8; each row stride N).
    USE_PDL: wait for the partials (the main kernel's complete output), then let the next launch."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    tiles_n = tl.cdiv(N, BLOCK_N)
    pid = tl.program_id(0)  # a 1-D grid: no 65535 limit on the M tiles of axis 1
    pid_m = pid // tiles_n
    pid_n = pid % tiles_n
    m0 = pid_m * BLOCK_M
    n0 = pid_n * BLOCK_N
    sa, sb, bias = _epilogue_operands(sa_ptr, sb_ptr, bias_ptr, M, N, stride_sa, stride_sb, m0, n0, BLOCK_M, BLOCK_N,
                                      SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS)  # in flight with the partials
    acc = load_tile(ws_ptr, M, N, N, m0, n0, BLOCK_M, BLOCK_N, POINTER)
    for s in tl.static_range(1, SPLIT_K):
        acc += load_tile(ws_ptr + stride_ws.to(tl.int64) * s, M, N, N, m0, n0, BLOCK_M, BLOCK_N, POINTER)
    _epilogue(acc, c_ptr, sa_ptr, sb_ptr, bias_ptr, M, N, stride_cm, stride_sa, stride_sb, m0, n0, sa, sb, bias,
              BLOCK_M, BLOCK_N, SA_PER_TOKEN, SB_PER_CHANNEL, HAS_BIAS, True)
