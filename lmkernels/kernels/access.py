"""The only place that knows how memory is addressed.

Kernels call these helpers with ACCESS, a constexpr (runtime/access.py: 0 pointer, 1 block_ptr,
2 descriptor). Untaken constexpr branches are never compiled, so the block_ptr branch costs nothing
where make_block_ptr no longer exists. All three read and write the same elements and zero-fill
out-of-bounds reads, so a kernel's results do not depend on the mode.

A 2-D operand is (view, n_rows, n_cols, stride_r) with a contiguous last dim. Its "view" is the base
pointer for pointer and block_ptr, and for descriptor a host-made tensor descriptor (passed by value:
the H100 measured ~3 µs of latency for building one in-kernel, a descriptor a program).
"""
import triton
import triton.language as tl

POINTER: tl.constexpr = tl.constexpr(0)
BLOCK_PTR: tl.constexpr = tl.constexpr(1)
DESCRIPTOR: tl.constexpr = tl.constexpr(2)


@triton.jit
def load_tile(view, n_rows, n_cols, stride_r, row0, col0,
              BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, ACCESS: tl.constexpr):
    """[BLOCK_R, BLOCK_C] tile at (row0, col0) in the operand's dtype; out-of-bounds elements read 0."""
    if ACCESS == POINTER:
        rows = row0 + tl.arange(0, BLOCK_R)
        cols = col0 + tl.arange(0, BLOCK_C)
        mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
        ptrs = view + rows[:, None].to(tl.int64) * stride_r + cols[None, :]
        return tl.load(ptrs, mask=mask, other=0.0)
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n_rows, n_cols), (stride_r, 1), (row0, col0), (BLOCK_R, BLOCK_C), (1, 0))
        return tl.load(bp, boundary_check=(0, 1), padding_option="zero")
    else:
        return view.load([row0, col0])


@triton.jit
def store_tile(view, value, n_rows, n_cols, stride_r, row0, col0,
               BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, ACCESS: tl.constexpr):
    """Round `value` to the operand's dtype (one rounding) and store it at (row0, col0); nothing is
    written out of bounds."""
    if ACCESS == POINTER:
        rows = row0 + tl.arange(0, BLOCK_R)
        cols = col0 + tl.arange(0, BLOCK_C)
        mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
        ptrs = view + rows[:, None].to(tl.int64) * stride_r + cols[None, :]
        tl.store(ptrs, value.to(view.dtype.element_ty), mask=mask)
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n_rows, n_cols), (stride_r, 1), (row0, col0), (BLOCK_R, BLOCK_C), (1, 0))
        tl.store(bp, value.to(view.dtype.element_ty), boundary_check=(0, 1))
    else:
        view.store([row0, col0], value.to(view.dtype))


@triton.jit
def round_to(view, value, ACCESS: tl.constexpr):
    """`value` rounded to the operand's dtype and back to fp32 (what storing then reloading gives)."""
    if ACCESS == DESCRIPTOR:
        return value.to(view.dtype).to(tl.float32)
    else:
        return value.to(view.dtype.element_ty).to(tl.float32)


@triton.jit
def load_vector(view, n, BLOCK: tl.constexpr, ACCESS: tl.constexpr):
    """Elements [0, BLOCK) of a contiguous vector of length n, zero past n, as a [1, BLOCK] tile."""
    if ACCESS == POINTER:
        offs = tl.arange(0, BLOCK)
        return tl.load(view + offs, mask=offs < n, other=0.0)[None, :]
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n,), (1,), (0,), (BLOCK,), (0,))
        return tl.load(bp, boundary_check=(0,), padding_option="zero")[None, :]
    else:
        return view.load([0])[None, :]
