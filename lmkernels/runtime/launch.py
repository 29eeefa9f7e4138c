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

Launcher.bind goes one step further for ops that call with the same operands' facts again and
again (decode): it fixes everything but the pointers and the token count once, after a launch, and
hands the op a function that checks only what can change without changing those facts (pointer
alignment, the count's width, hooks, the device) before the C launch. The op keys such bound
launches on a tuple of every fact the launch depends on, in a LaunchMemo (ops/kv_cache.py,
ops/norm.py).

The fast path is taken only where the installed Triton's launch interface is the one this module
knows (detected at import, below); elsewhere, under the interpreter, with launch hooks installed
(profilers), or with LMKERNELS_FAST_LAUNCH=0, every launch goes through `kernel[grid](...)`.
"""
from __future__ import annotations

import inspect
import itertools
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
    return (" ".join(src.split()).find(_KNOWN_CALL) >= 0 and hasattr(hooks, "calls")
            and hasattr(torch._C, "_cuda_getCurrentRawStream") and hasattr(torch._C, "_cuda_getDevice"))


FAST_LAUNCH = _detect_interface()

if FAST_LAUNCH:
    from triton import knobs as _knobs

    _ONE_DEVICE = torch.cuda.device_count() == 1
    _hooks = _knobs.runtime  # launch_enter_hook / launch_exit_hook: HookChains, read at every launch
    _current_device = torch._C._cuda_getDevice  # what torch.cuda.current_device() returns, minus its wrapper
    _get_stream = torch._C._cuda_getCurrentRawStream  # what Triton's driver asks for the stream (torch builds)
else:
    _hooks = _current_device = _get_stream = None
    _ONE_DEVICE = False


_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
# x & _COMMON_INT_MASK == 0 exactly when x % 16 == 0 and 0 <= x < 2^31 (the mask is ~0x7FFFFFF0: the
# low 4 bits and every bit from 31 up, which a negative int has set). Of an OR of ints it holds
# exactly when it holds of every one of them.
_COMMON_INT_MASK = ~0x7FFFFFF0


def _int_class(a: int):
    """Triton's specialisation of an int outside the common case (== 1, or wider than i32)."""
    return ("one",) if a == 1 else ("wide", a & 15 == 0, a >= 2**63)


def _fact(kind: str, a: str, p: str) -> str:
    """Key expression for runtime argument `a` of this kind (p: its data_ptr() for a tensor).

    One bytecode-cheap expression each, because the key is built on every launch: an int in the
    i32 range other than 1 (the common case) contributes its divisibility by 16 as a bool, anything
    else a tuple, so the two cases never compare equal."""
    if kind == "t":  # its dtype is in the meta id (Launcher.meta_id)
        return f"{p} & 15 == 0"
    if kind == "d":
        return f"{a}.base.dtype, tuple({a}.block_shape)"
    if kind == "i":
        return f"{a} & 15 == 0 if {a} != 1 and _I32_MIN <= {a} <= _I32_MAX else _int_class({a})"
    if kind == "n":
        return f"1 if _I32_MIN <= {a} <= _I32_MAX else 2 if {a} >= 2**63 else 3"  # i32, u64, i64
    if kind == "f":
        return ""
    raise ValueError(f"letter {kind!r} is not one of 't', 'd', 'i', 'n', 'f'")


def _not_now() -> str:
    """Source of the condition under which a generated launch must not launch: a launch hook is
    installed (a profiler), or, with several GPUs, the current device is not the tensors'."""
    return (("" if _ONE_DEVICE else "_current_device() != dev or ")
            + "_hooks.launch_enter_hook.calls or _hooks.launch_exit_hook.calls")


def _c_call(args: str) -> str:
    """Source of the C launcher's call in Triton 3.6's argument order; args: the runtime arguments
    (pointers as ints), then the constexprs."""
    return (f"c_launch(g0, g1, 1, _get_stream(dev), function, coop, pdl, None, None, packed, None, None, None, "
            f"{args})")


def _exec(source: str, **names) -> dict:
    namespace = {"_I32_MIN": _I32_MIN, "_I32_MAX": _I32_MAX, "_int_class": _int_class,
                 "_current_device": _current_device, "_get_stream": _get_stream, "_hooks": _hooks, **names}
    exec(source, namespace)  # once per kernel (or per kinds); no per-call branching on kinds
    return namespace


def _sources(kinds: str) -> str:
    """Source of two functions for runtime arguments of these kinds, generated once per kernel.

    kinds: one letter per runtime argument: 't' tensor, 'd' host tensor descriptor, 'i' int, 'n' int
    marked do_not_specialize (only its i32/i64 width matters), 'f' float. Triton specialises a
    descriptor on its dtype and block shape only ("tensordesc<bf16[1, 4096]>"): the launcher
    re-encodes the TMA map from its base, shape and strides at every launch.

    prep(dev, meta, a0, ...) -> (key, launch_args): tensors become their data_ptr() ints (what
    Triton's C launcher takes for pointers), so each is asked once.
    fast(dev, meta, g0, g1, a0, ...) -> bool: on a cache hit with no launch hooks, on the current
    device, launch and return True; otherwise return False and launch nothing (the caller then goes
    through __call__). Straight-line code, no intermediate tuples: on the H100 hosts every Python
    operation costs 0.1-0.9 µs (a shape comparison 0.9), and this runs once per op call. With one
    visible GPU there is no current-device question to ask: every tensor is on device 0.
    """
    names = [f"a{i}" for i in range(len(kinds))]
    ptrs = [f"p{i}" if k == "t" else f"a{i}" for i, k in enumerate(kinds)]
    facts = [f for f in (_fact(k, a, p) for k, a, p in zip(kinds, names, ptrs)) if f]
    get_ptrs = "".join(f"    p{i} = a{i}.data_ptr()\n" for i, k in enumerate(kinds) if k == "t")
    key = f"(meta, dev, {', '.join(facts)})"
    # The common case, every pointer 16-byte aligned and every specialised int a multiple of 16 in
    # [0, 2^31) (Triton: 'D' on each, i32), in a few bitwise operations instead of a fact each:
    # 0.45 -> ~0.2 µs of this host's 1.3 µs fast() for the norm kernel (4 pointers, 4 ints). Its key
    # keeps only what the common case leaves open (descriptors, do_not_specialize widths) and is
    # shorter than the detailed key, so the two never compare equal.
    common = [f"({' | '.join(p for k, p in zip(kinds, ptrs) if k == 't')}) & 15 == 0"] if "t" in kinds else []
    if "i" in kinds:
        common.append(f"({' | '.join(a for k, a in zip(kinds, names) if k == 'i')}) & {_COMMON_INT_MASK} == 0")
    if common:
        few = [f for f in (_fact(k, a, p) for k, a, p in zip(kinds, names, ptrs) if k in "dn") if f]
        key = f"(meta, dev, {''.join(f + ', ' for f in few)}) if {' and '.join(common)} else {key}"
    args = ", ".join(names)
    return (f"def prep(dev, meta, {args}):\n{get_ptrs}    return {key}, ({', '.join(ptrs)},)\n\n"
            f"def fast(dev, meta, g0, g1, {args}):\n"
            f"    if {_not_now()}:\n"
            f"        return False\n{get_ptrs}"
            f"    entry = cache.get({key})\n"
            f"    if entry is None:\n        return False\n"
            f"    c_launch, function, packed, coop, pdl, consts = entry\n"
            f"    {_c_call(', '.join(ptrs) + ', *consts')}\n"
            f"    return True\n")


def _generate(kinds: str, cache: dict):
    namespace = _exec(_sources(kinds), cache=cache)
    return namespace["prep"], namespace["fast"]


def _bound_source(kinds: str) -> str:
    """Source of make(c_launch, function, packed, coop, pdl, tail, dev) -> go, for a launch whose
    leading runtime arguments, of these kinds ('t' tensor, 'n' do_not_specialize int), change from
    call to call and whose other arguments (`tail`, with the constexprs) were fixed by Launcher.bind.

    go(g0, g1, a0, ...) launches and returns True only while the changing arguments keep the
    specialisation bind saw: every pointer 16-byte aligned, every 'n' an i32 (what the cache key
    recorded); otherwise, or with launch hooks or another current device, it returns False and
    launches nothing."""
    names = [f"a{i}" for i in range(len(kinds))]
    ptrs = [f"p{i}" if k == "t" else a for i, (k, a) in enumerate(zip(kinds, names))]
    refuse = []
    if "t" in kinds:
        refuse.append(f"({' | '.join(p for k, p in zip(kinds, ptrs) if k == 't')}) & 15")
    refuse += [f"not _I32_MIN <= {a} <= _I32_MAX" for k, a in zip(kinds, names) if k == "n"]
    refuse.append(_not_now())
    get_ptrs = "".join(f"        p{i} = a{i}.data_ptr()\n" for i, k in enumerate(kinds) if k == "t")
    return (f"def make(c_launch, function, packed, coop, pdl, tail, dev):\n"
            f"    def go(g0, g1, {', '.join(names)}):\n{get_ptrs}"
            f"        if {' or '.join(refuse)}:\n            return False\n"
            f"        {_c_call(', '.join(ptrs) + ', *tail')}\n"
            f"        return True\n"
            f"    return go\n")


_bound_makers: dict = {}


def _bound_maker(kinds: str):
    maker = _bound_makers.get(kinds)
    if maker is None:
        maker = _bound_makers[kinds] = _exec(_bound_source(kinds))["make"]
    return maker


class Launcher:
    """One @triton.jit kernel whose runtime arguments come first, then its constexprs.

    launcher(device, grid, args, consts, num_warps) launches on `device` (an index, as
    tensor.get_device() gives it), on its current stream. `args` are the runtime arguments in
    signature order, of the kinds given at construction (ints the kernel marks do_not_specialize are
    'n'); `consts` the constexprs.

    The ops' hot paths call launcher.fast(dev, meta, grid0, grid1, *args) first, with
    meta = launcher.meta_id(consts, num_warps, num_stages, dtypes, pdl) taken once per config (dtypes:
    those of the tensor arguments, in order, which the op has checked), and fall back to the call
    above when it returns False (first launch of a specialisation, hooks, another device).
    """

    def __init__(self, fn, kinds: str):
        self.fn = fn
        self.kinds = kinds
        self.cache: dict = {}
        self.metas: dict = {}  # (consts, num_warps, num_stages, tensor dtypes) -> small int used in keys
        self._ids = itertools.count()
        self.prep, fast = _generate(kinds, self.cache)
        self.fast = fast if FAST_LAUNCH else _never
        self.misses = 0  # launches that went through kernel[grid]: compiles, new specialisations, hooks
        params = getattr(fn, "params", None)
        # every constexpr is passed, defaults included (the cached C launch takes exactly these);
        # counted from the Python signature, which the interpreter's wrapper has too
        self.n_consts = len(inspect.signature(getattr(fn, "fn", fn)).parameters) - len(kinds)
        if params is not None:  # our invariant: runtime arguments first, one kind letter each
            assert [p.is_constexpr for p in params] == [False] * len(kinds) + [True] * (len(params) - len(kinds)), fn
            assert all(p.do_not_specialize == (k == "n") for p, k in zip(params, kinds) if k in "in"), (fn, kinds)

    def meta_id(self, consts: tuple, num_warps: int, num_stages: int, dtypes: tuple, pdl: bool = False,
                fp_fusion: bool = True, maxnreg: int | None = None) -> int:
        # A fresh id from the counter, kept only by the first setdefault of its config: two threads
        # asking for two new configs at once still get two ids (len(self.metas), read before the
        # setdefault, could give both the same one, and then one config's launch the other's kernel)
        return self.metas.setdefault((tuple(consts), num_warps, num_stages, tuple(dtypes), pdl, fp_fusion, maxnreg),
                                     next(self._ids))

    def key(self, dev, args, consts, num_warps, num_stages, pdl=False, fp_fusion=True, maxnreg=None):
        """The cache key of a launch, from the arguments themselves (the slow path, and tests)."""
        dtypes = tuple(a.dtype for a, k in zip(args, self.kinds) if k == "t")
        return self.prep(dev, self.meta_id(consts, num_warps, num_stages, dtypes, pdl, fp_fusion, maxnreg), *args)[0]

    def bind(self, dev, args, consts, num_warps, pdl, vary: int, num_stages: int = 1):
        """A launch with args[vary:] and the config fixed: go(g0, g1, *args[:vary]) -> bool (see
        _bound_source), for an op that memoises a prepared launch per operand facts. The leading
        `vary` arguments may only be tensors and do_not_specialize ints; the caller keys its memo on
        every fact that fixes args[vary:] and the tensors' dtypes.

        None where there is nothing to bind yet: the cached C launch for these arguments does not
        exist (call this after a launch of them), or a changing pointer is unaligned or a changing
        int wider than i32 (bind only the common specialisation). Without the fast launch (the
        interpreter, LMKERNELS_FAST_LAUNCH=0) go launches through __call__ with the bound config, so
        that the memo's logic runs on the CPU too; there it refuses tensors off the CPU (meta) and
        holds the fixed arguments themselves (a fast-launch go holds ints only)."""
        kinds = self.kinds[:vary]
        assert set(kinds) <= set("tn"), kinds
        tail = tuple(args[vary:])
        if not FAST_LAUNCH:
            def go(g0, g1, *head):
                if dev < 0 and not all(a.is_cpu for a, k in zip(head, kinds) if k == "t"):
                    return False
                self(dev, (g0, g1), head + tail, consts, num_warps, num_stages, pdl)
                return True
            return go
        dtypes = tuple(a.dtype for a, k in zip(args, self.kinds) if k == "t")
        key, launch_args = self.prep(dev, self.meta_id(consts, num_warps, num_stages, dtypes, pdl), *args)
        entry = self.cache.get(key)
        head = launch_args[:vary]
        if (entry is None or any(p & 15 for p, k in zip(head, kinds) if k == "t")
                or not all(_I32_MIN <= a <= _I32_MAX for a, k in zip(head, kinds) if k == "n")):
            return None
        c_launch, function, packed, coop, launch_pdl, fixed = entry
        return _bound_maker(kinds)(c_launch, function, packed, coop, launch_pdl, launch_args[vary:] + fixed, dev)

    def __call__(self, device, grid, args, consts, num_warps=4, num_stages=1, pdl=False, fp_fusion=True,
                 maxnreg=None, cluster=1, cluster_smem=0):
        """pdl: launch with programmatic dependent launch (a compile option in Triton, so part of the
        key); the kernel must then call gdc_wait() before its first global memory access.
        fp_fusion=False compiles with enable_fp_fusion=False: a * b + c stays two roundings instead of
        one FMA, so an epilogue can match a PyTorch reference that rounds after each op bit for bit.
        maxnreg: registers a thread at launch (a compile option; warp-specialised kernels need it so
        that all their partitions' warps fit the register file).
        cluster > 1 (cluster_launch_ok): grid[0] counts clusters of `cluster` consecutive CTAs, each
        with cluster_smem bytes of dynamic shared memory past the kernel's own; the kernel is
        compiled without launching (Triton's own launch cannot make clusters) and launched through
        the C launcher, launch hooks or not: a cluster kernel must never run without its cluster."""
        if len(consts) != self.n_consts:
            raise TypeError(f"{self.fn.__name__}: {len(consts)} constexprs given, the kernel has {self.n_consts}")
        opts = {"launch_pdl": True} if pdl else {}
        if not fp_fusion:
            opts["enable_fp_fusion"] = False
        if maxnreg is not None:
            opts["maxnreg"] = maxnreg
        if cluster > 1 and not cluster_launch_ok(device):
            raise ValueError(f"{self.fn.__name__}: clusters of {cluster} need an sm90+ NVIDIA GPU and the C launcher "
                             f"(not the interpreter, HIP or LMKERNELS_FAST_LAUNCH=0): cluster_launch_ok({device}) is False")
        if not FAST_LAUNCH:
            self.fn[grid](*args, *consts, num_warps=num_warps, num_stages=num_stages, **opts)
            return
        dev = _current_device()
        if device != dev:  # launch where the data is, as a CUDA op's device guard would
            with torch.cuda.device(device):
                self(device, grid, args, consts, num_warps, num_stages, pdl, fp_fusion, maxnreg, cluster, cluster_smem)
            return
        key = self.key(dev, args, consts, num_warps, num_stages, pdl, fp_fusion, maxnreg)
        entry = self.cache.get(key)
        if cluster > 1:
            if entry is None:
                self.misses += 1
                kernel = self.fn.warmup(*args, *consts, grid=grid, num_warps=num_warps, num_stages=num_stages, **opts)
                entry = _entry(kernel, consts, cluster, cluster_smem)
                if entry is None:
                    raise RuntimeError(f"{self.fn.__name__}: no C launcher to launch clusters of {cluster} with")
                self.cache[key] = entry
            c_launch, function, packed, coop, launch_pdl, fixed = entry
            c_launch(grid[0], 1, 1, _get_stream(dev), function, coop, launch_pdl, None, None, packed, None, None, None,
                     *self.prep(dev, key[0], *args)[1], *fixed)
            return
        if entry is not None and len(grid) < 3 and self.fast(dev, key[0], grid[0], grid[1] if len(grid) > 1 else 1, *args):
            return
        self.misses += 1
        kernel = self.fn[grid](*args, *consts, num_warps=num_warps, num_stages=num_stages, **opts)
        if entry is None and kernel is not None:
            entry = _entry(kernel, consts)
            if entry is not None:
                self.cache[key] = entry


class LaunchMemo:
    """An op's bound launches (Launcher.bind), keyed on a tuple of every operand fact they depend on.

    The op's public function builds the facts tuple and reads `last` itself: (facts, entry) of the
    last hit, one tuple assigned at once, so that a thread switch can never pair one call's facts
    with another's entry. The layers of a decode step call with equal facts, and one tuple
    comparison costs less than hashing the tuple (CPU: 0.23 against 0.39 µs); otherwise find(). On a
    miss the op takes its checked path, which launches and then fills entry(facts, make). Emptied
    when it reaches `limit` entries (one entry a model configuration in practice), so it cannot grow
    without bound. Keys hold no tensor, nor do entries on a GPU (a bound launch keeps pointers as
    ints)."""

    __slots__ = ("entries", "last", "limit")

    def __init__(self, limit: int = 256):
        self.entries: dict = {}
        self.last = (None, None)
        self.limit = limit

    def find(self, facts):
        entry = self.entries.get(facts)
        if entry is not None:
            self.last = (facts, entry)
        return entry

    def entry(self, facts, make):
        """The entry under facts, made by make() where there is none."""
        entry = self.entries.get(facts)
        if entry is None:
            if len(self.entries) >= self.limit:
                self.clear()
            entry = self.entries[facts] = make()
        return entry

    def clear(self) -> None:
        self.entries.clear()
        self.last = (None, None)

    def __len__(self) -> int:
        return len(self.entries)


def _never(*args) -> bool:
    return False


def _entry(kernel, consts, cluster: int = 1, cluster_smem: int = 0):
    """(c_launch, function, packed_metadata, cooperative, pdl, consts) for a compiled kernel whose
    launcher is Triton 3.6's CudaLauncher and which needs no scratch memory: its C entry point is then
    called directly (its Python __call__ only allocates scratch). None otherwise (kernels that ask for
    global or profile scratch memory, clusters): those always launch through kernel[grid].
    For kernels with host tensor-descriptor arguments `launch` is Triton's wrapper that encodes them.
    cluster > 1: the packed metadata launches clusters of that many CTAs (the C launcher's num_ctas
    slot) with cluster_smem bytes of dynamic shared memory past the kernel's own (Launcher's cluster
    launch).
    """
    kernel._init_handles()
    runner = kernel.run
    c_launch = getattr(runner, "launch", None)
    if not (type(runner).__name__ == "CudaLauncher" and c_launch is not None
            and getattr(runner, "global_scratch_size", 1) == 0
            and getattr(runner, "profile_scratch_size", 1) == 0
            and getattr(runner, "num_ctas", 2) == 1):
        return None
    packed = kernel.packed_metadata
    if cluster > 1:
        if not (isinstance(packed, tuple) and len(packed) == 3):
            return None
        shared = -(-packed[2] // 128) * 128 + cluster_smem  # the extra bytes at the end (kernels/cluster.py)
        _allow_dynamic_smem(kernel, shared)
        packed = (packed[0], cluster, shared)
    return (c_launch, kernel.function, packed, getattr(runner, "launch_cooperative_grid", False),
            getattr(runner, "launch_pdl", False), tuple(consts))


_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8


def _allow_dynamic_smem(kernel, nbytes: int) -> None:
    """Let `kernel` launch with nbytes of dynamic shared memory. Triton raises the function's limit
    past the default 48 KB only when its own allocation needs it; a cluster launch adds bytes."""
    if nbytes <= 48 * 1024 or kernel.metadata.shared > 48 * 1024:  # within the default, or Triton raised it
        return
    import ctypes
    optin = torch.cuda.get_device_properties(torch.cuda.current_device()).shared_memory_per_block_optin
    if nbytes > optin:
        raise ValueError(f"a cluster launch needs {nbytes} bytes of shared memory a CTA, over the device's {optin}")
    err = ctypes.CDLL("libcuda.so.1").cuFuncSetAttribute(ctypes.c_void_p(kernel.function),
                                                          _CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                          ctypes.c_int(nbytes))
    if err != 0:
        raise RuntimeError(f"cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {nbytes}) failed: CUresult {err}")


def cluster_launch_ok(dev: int) -> bool:
    """Whether Launcher can launch thread-block clusters on GPU `dev`: NVIDIA sm90+ through the C
    launcher this module knows (not under the interpreter, on HIP, or with LMKERNELS_FAST_LAUNCH=0)."""
    if not FAST_LAUNCH or dev < 0 or torch.version.hip is not None:
        return False
    return torch.cuda.get_device_capability(dev)[0] >= 9
