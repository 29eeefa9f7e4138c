"""One-launch split-K's arrival ("last one finishes"), the one memory-ordering step that ll_gemm and
scaled_mm share (kernels/small_gemm.py's docstring has the whole protocol, runtime/scratch.py the
buffers)."""
import triton
import triton.language as tl


@triton.jit
def last_to_arrive(count_ptr, SPLIT_K: tl.constexpr):
    """Call after this program has stored its partial tile: counts it in on the tile's counter and
    returns True for the SPLIT_K-th arrival, which may then read every split's partial (through L2,
    .cg loads: never a stale L1 line). The CTA barrier orders every thread's store before the
    one-thread atomic, whose gpu-scope release is cumulative over them (PTX memory model, the
    pattern of CUDA's grid barriers); its acquire orders the last arrival's loads after the other
    programs' stores. The caller puts the counter back to 0 (a plain store: no split touches it
    again in this launch, the next launch only once this grid is done)."""
    tl.debug_barrier()
    arrived = tl.atomic_add(count_ptr, 1, sem="acq_rel", scope="gpu")
    return arrived == SPLIT_K - 1
