"""Checks and small helpers shared by every op family: one place for the messages users see."""
from __future__ import annotations

import torch

from ..runtime import access as _access
from ..runtime.device import is_interpreter, num_sms, pdl_supported

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def use_dispatcher(x) -> bool:
    """True when a call must go through torch.ops.lmkernels (torch.compile tracing, fake or subclass
    tensors); plain eager calls skip the dispatcher and launch directly, paying its cost zero times.
    Anything that is not a tensor at all is refused here, naming the argument."""
    if type(x) is torch.Tensor:
        return torch.compiler.is_compiling()
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    return True


def cpu_interpreted(x, y, a, b) -> bool:
    """The ops' fast paths take get_device() >= 0 as "on a GPU"; on the CPU (-1, as for meta tensors)
    they apply only under the interpreter and when every operand really is on the CPU, so that the
    CPU test suite runs the same fast path the GPU does."""
    return (is_interpreter() and x.is_cpu and y.is_cpu and (a is None or a.is_cpu)
            and (b is None or b.is_cpu))


def check_tensor(t, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def check_last_contiguous(t, name: str) -> None:
    """The last dim must have stride 1 (a dim of size 1 may have any)."""
    if t.stride(-1) != 1 and t.shape[-1] > 1:
        raise ValueError(f"{name}.stride(-1)={t.stride(-1)}: the last dim must be contiguous "
                         f"(shape {tuple(t.shape)}, strides {t.stride()})")


def pointer_mode(access) -> bool:
    """True when `access` asks for pointer mode, explicitly or through the process default: the ops'
    fast branches take only that mode."""
    return access is None and _access._default == _access.POINTER or type(access) is str and access == "pointer"


def check_float(t, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}.dtype={t.dtype} is not supported; expected float16, bfloat16 or float32")


def check_like(t, name: str, ref, ref_name: str, shape=None) -> None:
    """t must be a tensor with ref's dtype and device, and `shape` (default ref's shape)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name}.dtype={t.dtype} must equal {ref_name}.dtype={ref.dtype}")
    check_same_device(t, name, ref, ref_name)
    want = ref.shape if shape is None else shape
    if t.shape != want:
        raise ValueError(f"{name}.shape={tuple(t.shape)} must be {tuple(want)}")


def check_same_device(t, name: str, ref, ref_name: str) -> None:
    # get_device() is an int compare (cheap on the hot path); -1 covers cpu and meta alike
    if t.get_device() != ref.get_device() or (t.get_device() < 0 and t.device != ref.device):
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")


def check_runnable(x, name: str) -> None:
    """Kernels run on a GPU, or on the CPU only under Triton's interpreter."""
    if x.is_cpu and not is_interpreter():
        raise ValueError(f"{name} is on the CPU; lmkernels runs its kernels on a GPU, or on the CPU "
                         f"with TRITON_INTERPRET=1 set before triton is imported")


def config_int(cfg: dict, key: str, lo: int, hi: int, pow2: bool = False) -> int:
    """cfg[key], which must be an int in [lo, hi] (a power of two with pow2): the ops' config checks."""
    v = cfg[key]
    if type(v) is not int:
        raise ValueError(f"config[{key!r}]={v!r} must be an int, got {type(v).__name__}")
    if not lo <= v <= hi or (pow2 and v & (v - 1)):
        raise ValueError(f"config[{key!r}]={v} must be {'a power of two ' if pow2 else 'an int '}in [{lo}, {hi}]")
    return v


def new_rows_like(x):
    """An uninitialised output of x's shape and dtype whose leading dims collapse to one row stride.

    empty_like where it gives that (x contiguous, or 2-D: a row-strided 2-D view is not dense and
    gets contiguous strides): on the H100 host it costs 1.8-2.4 µs against 3.7-5.7 µs for
    torch.empty(shape, dtype=..., device=...), a third of an eager decode call's budget."""
    if len(x.shape) == 2 or x.is_contiguous():
        return torch.empty_like(x)
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


def as_rows(t, name: str):
    """(t as [rows, last], row stride): the leading dims must collapse to one stride; last dim contiguous."""
    if t.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension, got a 0-d tensor")
    if t.stride(-1) != 1 and t.shape[-1] > 1:
        raise ValueError(f"{name}.stride(-1)={t.stride(-1)}: the last dim must be contiguous "
                         f"(shape {tuple(t.shape)}, strides {t.stride()})")
    if t.dim() == 2:
        return t, t.stride(0)
    n = t.shape[-1]
    try:
        t2 = t.view(-1, n)
    except RuntimeError:
        raise ValueError(f"{name} has shape {tuple(t.shape)} and strides {t.stride()}: its rows cannot be "
                         f"addressed with one stride; pass a tensor whose leading dims collapse") from None
    return t2, t2.stride(0) if t2.shape[0] > 1 else n


def tile_descriptor(t, n_rows: int, n_cols: int, stride: int, block_r: int, block_c: int):
    """A host tensor descriptor over the 2-D operand t (row stride `stride`, last dim contiguous).

    Passed by value to the kernel: the launcher encodes the TMA map on the host at each launch, so
    no program spends the ~3 µs the H100 measured for building one in-kernel."""
    from triton.tools.tensor_descriptor import TensorDescriptor
    return TensorDescriptor(t, [n_rows, n_cols], [stride, 1], [block_r, block_c])


def halves_descriptor(t, n_rows: int, half: int, stride: int, block_r: int, block_c: int):
    """A host tensor descriptor over the rows of t [n_rows, 2 half] as [n_rows, 2, half], in boxes of
    [block_r, 2, block_c]: both halves of a row's tile in one TMA copy (kernels/access.py load_halves_2d)."""
    from triton.tools.tensor_descriptor import TensorDescriptor
    return TensorDescriptor(t, [n_rows, 2, half], [stride, half, 1], [block_r, 2, block_c])


def resident_programs(device_index: int, num_warps: int, waves: float) -> int:
    """`waves` full waves of programs at 2048 resident threads per SM."""
    return max(1, int(num_sms(max(device_index, 0)) * max(1, 2048 // (32 * num_warps)) * waves))


def resolve_pdl(pdl, device_index: int) -> bool:
    """Whether a launch uses programmatic dependent launch: None means where the GPU has it (sm90+);
    True is a request that becomes a plain launch where it has not (pre-Hopper, AMD, the interpreter),
    as PDL changes when a kernel may start, never what it computes."""
    if pdl is None:
        return pdl_supported(device_index)
    if type(pdl) is not bool:
        raise TypeError(f"pdl must be a bool or None, got {type(pdl).__name__}")
    return pdl and pdl_supported(device_index)
