"""Probe (GPU): a kernel launch through the CUDA driver by ctypes, its arguments packed by struct.

Triton's C launcher costs 4.2-5.3 µs of host time a call on the H100 hosts (host_overhead.py, "C
launch alone"), which is half of torch.mul(x, 2, out=y)'s whole 9-10 µs; the issue 2 and 4 host-time
bars leave our Python 4-5 µs beside it. That launcher parses ~33 Python arguments with
PyArg_ParseTuple, converts each pointer, releases and re-takes the GIL, and calls cuLaunchKernelEx.
Here the same compiled kernel is launched by cuLaunchKernelEx with its parameters as one packed
buffer (the `extra` argument's CU_LAUNCH_PARAM_BUFFER_POINTER): one struct.pack_into of the
parameters and the launch config, one ctypes call (PyDLL: the GIL stays held, so the buffers
cannot be rewritten by another thread mid-call).

Prediction (written before the run): pack_into ~0.4 µs and the ctypes call ~0.6 µs on top of the
driver's own cost (~2.5-3 µs there): 3.3-4 µs against 4.6, so ~1 µs a call saved; results
bit-identical to Triton's launch.
python benchmarks/probe_driver_launch.py
"""
from __future__ import annotations

import ctypes
import struct

import torch

from lmkernels.bench.harness import host_us
from lmkernels.ops import norm as norm_ops

_CU_PARAMS = {"i1": "b", "i8": "b", "i16": "h", "i32": "i", "i64": "q", "u1": "B", "u8": "B", "u16": "H",
              "u32": "I", "u64": "Q", "fp32": "f", "f32": "f", "fp64": "d"}
_PDL_ATTRIBUTE = 6  # CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION


def driver_launcher(kernel):
    """launch(grid_x, grid_y, stream, *runtime args as ints/floats) for a CompiledKernel."""
    kernel._init_handles()
    fmt = "@7IQQI4x"  # CUlaunchConfig: grid xyz, block xyz, shared bytes, stream, attrs, numAttrs
    for ty in kernel.src.signature.values():
        if ty == "constexpr":
            continue
        fmt += "Q" if ty[0] == "*" else _CU_PARAMS[ty]
    fmt += "QQ"  # global and profile scratch pointers, which Triton 3.6 appends to every kernel
    cfg_size = struct.calcsize("@7IQQI4x")
    buf = ctypes.create_string_buffer(struct.calcsize(fmt) + 8)
    attrs = ctypes.create_string_buffer(72)  # one CUlaunchAttribute: id, pad, 64-byte value union
    struct.pack_into("@i4xi", attrs, 0, _PDL_ATTRIBUTE, 1)
    size = ctypes.c_size_t(struct.calcsize(fmt) - cfg_size)
    base = ctypes.addressof(buf)
    extra = (ctypes.c_void_p * 5)(1, base + cfg_size, 2, ctypes.addressof(size), 0)
    lib = ctypes.PyDLL("libcuda.so.1")
    cu_launch = lib.cuLaunchKernelEx
    cu_launch.argtypes = [ctypes.c_void_p] * 4
    cu_launch.restype = ctypes.c_int
    block, shared = 32 * kernel.metadata.num_warps, kernel.metadata.shared
    attrs_addr, n_attrs = ctypes.addressof(attrs), 1 if kernel.metadata.launch_pdl else 0
    function, extra_addr, pack = kernel.function, ctypes.addressof(extra), struct.pack_into

    keep = (buf, attrs, size, extra, lib)  # ctypes memory the driver reads through raw addresses

    def launch(gx, gy, stream, *args, _keep=keep):
        pack(fmt, buf, 0, gx, gy, 1, block, 1, 1, shared, stream, attrs_addr, n_attrs, *args, 0, 0)
        rc = cu_launch(base, function, None, extra_addr)
        if rc:
            raise RuntimeError(f"cuLaunchKernelEx returned {rc}")
    return launch, fmt


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    y1, y2 = torch.full_like(x, float("nan")), torch.full_like(x, float("nan"))
    plan = norm_ops._plan(4096, x.dtype, 0, False, True, None)
    warps, consts, use_pdl = plan[1], plan[6], plan[4]
    args = (x, x, w, y1, 1, 4096, 4096, 4096, 4096, 1e-6)
    kernel = norm_ops._rms_norm_kernel[(1,)](*args, *consts, num_warps=warps, launch_pdl=use_pdl)
    c_launch = kernel.run.launch
    launch, fmt = driver_launcher(kernel)
    print(f"kernel parameters: {fmt}  (pdl {kernel.metadata.launch_pdl})")
    stream = torch._C._cuda_getCurrentRawStream(0)
    ints = (x.data_ptr(), x.data_ptr(), w.data_ptr(), y2.data_ptr(), 1, 4096, 4096, 4096, 4096, 1e-6)
    launch(1, 1, stream, *ints)
    torch.cuda.synchronize()
    print("bit-identical to Triton's launch:", torch.equal(y1.view(torch.int16), y2.view(torch.int16)),
          " y finite:", bool(torch.isfinite(y2).all()))
    largs = (x.data_ptr(), x.data_ptr(), w.data_ptr(), y1.data_ptr(), 1, 4096, 4096, 4096, 4096, 1e-6)
    rows = {
        "torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y1),
        "Triton's C launch": lambda: c_launch(1, 1, 1, stream, kernel.function, False, use_pdl, None, None,
                                              kernel.packed_metadata, None, None, None, *largs, *consts),
        "driver launch (pack + ctypes)": lambda: launch(1, 1, stream, *largs),
        "  struct.pack_into alone": lambda: struct.pack_into(fmt, bytearray(256), 0, 1, 1, 1, 256, 1, 1, 0, stream,
                                                             0, 1, *largs, 0, 0),
    }
    best = {k: float("inf") for k in rows}
    for _ in range(10):
        for name, fn in rows.items():
            best[name] = min(best[name], host_us(fn, 2000, rounds=1))
    for name, us in best.items():
        print(f"{name:40s} {us:6.2f} µs")


if __name__ == "__main__":
    main()
