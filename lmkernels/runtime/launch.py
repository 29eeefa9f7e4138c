"""Launch fast path: run a cached compiled kernel directly, keyed on everything Triton specialises on.

`kernel[grid](...)` costs ~15 us of host time on the H100 machine (ANCHORS.md): it binds arguments,
builds a cache key string, reads knobs, builds launch metadata and calls hook chains on every call.
A Launcher computes a cheaper key that is at least as fine as Triton's own specialisation and, on a
hit, calls the compiled kernel's C launcher directly. On a miss it launches through Triton's normal
path, which compiles or fetches the right kernel, and remembers the result under the key.

Triton 3.6 specialises (runtime/jit.py, native_specialize_impl):
  tensor  -> its dtype, and 'D' when data_ptr() % 16 == 0
  int     -> constexpr when == 1, i32 / i64 / u64 by range, and 'D' when % 16 == 0
  float   -> nothing (always fp32)
The key below holds exactly those facts for each runtime argument, plus the device, every constexpr
and the launch options. tests/test_launch.py checks it against Triton's binder on random arguments.

The fast path is taken only where the installed Triton's launch interface is the one this module
knows (detected at import, below); elsewhere, under the interpreter, with launch hooks installed
(profilers), or with LMKERNELS_FAST_LAUNCH=0, every launch goes through `kernel[grid](...)`.
"""
from __future__ import annotations

import inspect
import os

import torch

from .device import is_interpreter

_KNOWN_CALL = ("kernel.run(grid_0, grid_1, grid_2, stream, kernel.function, kernel.packed_metadata, "
               "launch_metadata,")


def _detect_interface() -> bool:
    """True when JITFunction.run launches the way this module replicates (Triton 3.4 - 3.6)."""
    if os.environ.get("LMKERNELS_FAST_LAUNCH", "1") == "0" or is_interpreter() or not torch.cuda.is_available():
        return False
    try:
        from triton import knobs
        from triton.runtime.jit import JITFunction
        src = inspect.getsource(JITFunction.run)
    except (ImportError, OSError, TypeError):
        return False
    hooks = getattr(knobs.runtime, "launch_enter_hook", None)
    return " ".join(src.split()).find(_KNOWN_CALL) >= 0 and hasattr(hooks, "calls")


FAST_LAUNCH = _detect_interface()

_I32_MIN, _I32_MAX, _U63 = -(2**31), 2**31 - 1, 2**63


def _prep_source(kinds: str) -> str:
    """Source of prep(dev, meta, a0, a1, ...) -> (key, launch_args) for runtime args of these kinds.

    kinds: one letter per runtime argument: 't' tensor, 'd' host tensor descriptor, 'i' int, 'n' int
    marked do_not_specialize (only its i32/i64 width matters), 'f' float. Tensors are replaced by
    their data_ptr() in the launch arguments (Triton's C launcher takes ints for pointers), so each is
    asked once. Triton specialises a descriptor on its dtype and block shape only ("tensordesc<bf16[1,
    4096]>"): the launcher re-encodes the TMA map from its base, shape and strides at every launch.
    """
    key, names, launch_args, body = ["dev", "meta"], [], [], []
    for i, kind in enumerate(kinds):
        a = f"a{i}"
        names.append(a)
        if kind == "t":
            body.append(f"    p{i} = {a}.data_ptr()")
            key.append(f"{a}.dtype, p{i} & 15 == 0")
            launch_args.append(f"p{i}")
            continue
        if kind == "d":
            key.append(f"{a}.base.dtype, tuple({a}.block_shape)")
        elif kind == "i":
            key.append(f"{a} == 1, {a} & 15 == 0, {a} < _I32_MIN or {a} > _I32_MAX, {a} >= _U63")
        elif kind == "n":
            key.append(f"{a} < _I32_MIN or {a} > _I32_MAX, {a} >= _U63")
        elif kind != "f":
            raise ValueError(f"kinds={kinds!r}: letter {kind!r} is not one of 't', 'd', 'i', 'n', 'f'")
        launch_args.append(a)
    return (f"def prep(dev, meta, {', '.join(names)}):\n" + "\n".join(body) + ("\n" if body else "")
            + f"    return ({', '.join(key)},), ({', '.join(launch_args)},)\n")


def make_prep_fn(kinds: str):
    namespace = {"_I32_MIN": _I32_MIN, "_I32_MAX": _I32_MAX, "_U63": _U63}
    exec(_prep_source(kinds), namespace)  # generated once per kernel; no per-call branching on kinds
    return namespace["prep"]


class Launcher:
    """One @triton.jit kernel whose runtime arguments come first, then its constexprs.

    launcher(device, grid, args, consts, num_warps) launches on `device` (an index, as
    tensor.get_device() gives it), on its current stream. `args` are the runtime arguments in
    signature order, of the kinds given at construction (ints the kernel marks do_not_specialize are
    'n'); `consts` the constexprs.
    """

    def __init__(self, fn, kinds: str):
        self.fn = fn
        self.kinds = kinds
        self.prep = make_prep_fn(kinds)
        self.cache: dict = {}
        self.misses = 0  # launches that went through kernel[grid]: compiles, new specialisations, hooks
        params = getattr(fn, "params", None)
        if params is not None:  # our invariant: runtime arguments first, one kind letter each
            assert [p.is_constexpr for p in params] == [False] * len(kinds) + [True] * (len(params) - len(kinds)), fn
            assert all(p.do_not_specialize == (k == "n") for p, k in zip(params, kinds) if k in "in"), (fn, kinds)

    def __call__(self, device, grid, args, consts, num_warps=4, num_stages=1):
        if not FAST_LAUNCH:
            self.fn[grid](*args, *consts, num_warps=num_warps, num_stages=num_stages)
            return
        dev = _current_device()
        if device != dev:  # launch where the data is, as a CUDA op's device guard would
            with torch.cuda.device(device):
                self(device, grid, args, consts, num_warps, num_stages)
            return
        key, launch_args = self.prep(dev, (consts, num_warps, num_stages), *args)
        entry = self.cache.get(key)
        rt = _knobs.runtime
        if entry is None or getattr(rt.launch_enter_hook, "calls", True) or getattr(rt.launch_exit_hook, "calls", True):
            self.misses += 1
            kernel = self.fn[grid](*args, *consts, num_warps=num_warps, num_stages=num_stages)
            if entry is None and kernel is not None:
                self.cache[key] = _entry(kernel)
            return
        c_launch, runner, function, packed, coop, pdl = entry
        g1 = grid[1] if len(grid) > 1 else 1
        g2 = grid[2] if len(grid) > 2 else 1
        stream = _get_stream(dev)
        if c_launch is not None:
            c_launch(grid[0], g1, g2, stream, function, coop, pdl, None, None, packed, None, None, None,
                     *launch_args, *consts)
        else:
            runner(grid[0], g1, g2, stream, function, packed, None, None, None, *launch_args, *consts)


if FAST_LAUNCH:
    from triton import knobs as _knobs

    _current_device = torch._C._cuda_getDevice  # what torch.cuda.current_device() returns, minus its wrapper

    def _get_stream(device: int):
        """Triton's own stream query (torch's current raw stream on CUDA), bound on first use."""
        global _get_stream
        from triton.runtime import driver
        _get_stream = driver.active.get_current_stream
        return _get_stream(device)


def _entry(kernel):
    """(c_launch, runner, function, packed_metadata, cooperative, pdl) for a compiled kernel.

    Where the launcher is Triton 3.6's CudaLauncher and the kernel needs no scratch memory, its C
    entry point is called directly: its Python __call__ only allocates scratch. Otherwise c_launch is
    None and the launcher object is called (kernels that ask for global or profile scratch memory).
    For kernels with host tensor-descriptor arguments `launch` is Triton's wrapper that encodes them.
    """
    kernel._init_handles()
    runner = kernel.run
    c_launch = getattr(runner, "launch", None)
    direct = (type(runner).__name__ == "CudaLauncher" and c_launch is not None
              and getattr(runner, "global_scratch_size", 1) == 0
              and getattr(runner, "profile_scratch_size", 1) == 0
              and getattr(runner, "num_ctas", 2) == 1)
    return (c_launch if direct else None, runner, kernel.function, kernel.packed_metadata,
            getattr(runner, "launch_cooperative_grid", False), getattr(runner, "launch_pdl", False))
