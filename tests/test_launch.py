"""The launch fast path: its key must be at least as fine as Triton's own specialisation.

Soundness argument: a cache hit reuses a compiled kernel, so two argument lists with equal keys must
get equal specialisations from Triton's binder (dtypes, 16-byte alignment, ints == 1, % 16, width).
Checked here against Triton's binder itself, on random arguments, for every kernel we launch.
"""
import random
from types import SimpleNamespace

import pytest
import torch
from helpers import DEVICE, ON_GPU, randn
from triton.backends.compiler import BaseBackend
from triton.runtime.jit import JITFunction, create_function_from_signature
from triton.tools.tensor_descriptor import TensorDescriptor

import lmkernels
from lmkernels.kernels.activation import _gated_act_kernel
from lmkernels.kernels.norm import _rms_norm_kernel
from lmkernels.ops import activation as act_ops
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime import launch

KERNELS = [(_rms_norm_kernel, norm_ops._launch), (_gated_act_kernel, act_ops._launch),
           (_rms_norm_kernel, norm_ops._launch_desc), (_gated_act_kernel, act_ops._launch_desc)]
INTS = [0, 1, 2, 15, 16, 17, 32, 769, 4096, 2**31 - 16, 2**31 - 1, 2**31, 2**32, 2**40 + 16, 2**63, 2**63 + 16,
        -1, -16, -(2**31), -(2**31) - 1, -(2**31) - 16]


def _jit(kernel):
    """A JITFunction for the kernel, also under the interpreter (which wraps the raw function)."""
    if isinstance(kernel, JITFunction):
        return kernel
    return JITFunction(kernel.fn, do_not_specialize=["n_rows"])


def _triton_spec(jit, args, consts):
    binder = create_function_from_signature(jit.signature, jit.params, BaseBackend)
    _, spec, _ = binder(*args, *consts)
    return tuple(spec)


def _random_args(kinds, rng, buf):
    args = []
    for kind in kinds:
        if kind == "t":
            dtype = rng.choice([torch.float16, torch.bfloat16, torch.float32])
            offset = rng.choice([0, 1, 8, 16, 3])
            args.append(buf[dtype][offset:offset + 64])
        elif kind == "d":
            dtype = rng.choice([torch.float16, torch.bfloat16, torch.float32])
            rows, block = rng.choice([(8, [1, 8]), (4, [1, 16]), (8, [2, 8]), (16, [1, 4])])
            args.append(TensorDescriptor(buf[dtype][:128].view(rows, -1), [rows, 128 // rows], [128 // rows, 1], block))
        elif kind in "in":
            args.append(rng.choice(INTS))
        else:
            args.append(rng.choice([1e-6, 0.5, 7.0]))
    return tuple(args)


@pytest.mark.parametrize("kernel,launcher", KERNELS, ids=["norm", "activation", "norm-desc", "activation-desc"])
def test_key_at_least_as_fine_as_triton(kernel, launcher):
    jit = _jit(kernel)
    n_const = len(jit.params) - len(launcher.kinds)
    rng = random.Random(0)
    buf = {dt: torch.randn(128).to(dt) for dt in (torch.float16, torch.bfloat16, torch.float32)}
    consts = tuple([1] * n_const)
    seen = {}
    for _ in range(3000):
        args = _random_args(launcher.kinds, rng, buf)
        key = launcher.key(0, args, consts, 4, 1)
        _, launch_args = launcher.prep(0, key[0], *args)
        spec = _triton_spec(jit, args, consts)
        assert seen.setdefault(key, spec) == spec, f"one key, two Triton specialisations: {args}"
        # tensors travel as their data_ptr ints, everything else unchanged
        assert all((b == a.data_ptr()) if isinstance(a, torch.Tensor) else (b is a or b == a)
                   for a, b in zip(args, launch_args))
    assert len(seen) > 50  # the random arguments did exercise many specialisations


def test_key_separates_alignment_and_ints():
    x = torch.randn(64)
    launcher = norm_ops._launch

    def key(*args, dev=0, consts=(False, True, 64, 0), warps=4):
        return launcher.key(dev, args, consts, warps, 1)
    base = (x, x, x, x, 8, 16, 16, 16, 16, 1e-6)
    k0 = key(*base)
    assert key(x[1:], *base[1:]) != k0  # unaligned pointer
    assert key(*base[:5], 17, *base[6:]) != k0  # H % 16
    assert key(*base[:5], 1, *base[6:]) != k0  # H == 1 (Triton makes it a constexpr)
    assert key(*base[:4], 9, *base[5:]) == k0  # n_rows is not specialised: no new kernel
    assert key(*base[:4], 2**31, *base[5:]) != k0  # ... except for its width
    # every pointer aligned and every int a multiple of 16 in [0, 2^31): the short common-case key
    assert len(k0) < len(key(x[1:], *base[1:]))
    assert key(*base[:5], 4096, 32, 0, 16, 1e-6) == k0  # the same specialisation ('D', i32 each)
    assert key(*base[:5], 2**31, *base[6:]) != k0  # a multiple of 16 but i64
    assert key(*base[:5], 2**32 + 16, *base[6:]) != k0
    assert key(*base[:5], -16, *base[6:]) != k0  # i32 and 'D' as 16, but outside the common case: finer
    assert key(*base, dev=1) != k0  # device
    assert key(x.half(), *base[1:]) != k0  # dtype (through the meta id)
    assert key(*base[:3], x.half(), *base[4:]) != k0  # ... of any tensor argument
    assert key(*base, consts=(True, True, 64, 0)) != k0  # constexprs
    assert key(*base, warps=8) != k0  # launch options


def test_fast_launches_on_a_hit_only(monkeypatch):
    """The generated fast(): a hit on the current device with no hooks calls the C launcher with
    Triton's argument order; a miss, another device, another meta id or an installed hook launch
    nothing and return False (the caller then takes Launcher.__call__). Runs on the CPU with a fake
    C launcher, so the logic is checked where no GPU is."""
    hooks = SimpleNamespace(launch_enter_hook=SimpleNamespace(calls=[]), launch_exit_hook=SimpleNamespace(calls=[]))
    monkeypatch.setattr(launch, "_current_device", lambda: 0)
    monkeypatch.setattr(launch, "_get_stream", lambda dev: 1234 + dev)
    monkeypatch.setattr(launch, "_hooks", hooks)
    cache = {}
    prep, fast = launch._generate(norm_ops._launch.kinds, cache)
    x = torch.randn(64)
    args = (x, x, x, x, 8, 16, 16, 16, 16, 1e-6)
    assert fast(0, 7, 8, 1, *args) is False  # nothing cached yet
    launched = []
    key, launch_args = prep(0, 7, *args)
    cache[key] = (lambda *a: launched.append(a), "function", "packed", False, False, ("c0", "c1"))
    assert fast(0, 7, 8, 1, *args) is True
    assert launched == [(8, 1, 1, 1234, "function", False, False, None, None, "packed", None, None, None,
                         *launch_args, "c0", "c1")]
    assert fast(0, 7, 3, 1, *args[:4], 3, *args[5:]) is True  # n_rows is not specialised
    assert fast(0, 8, 8, 1, *args) is False  # another meta id (constexprs, warps)
    assert fast(1, 7, 8, 1, *args) is False  # not the current device
    assert fast(0, 7, 8, 1, x[1:], *args[1:]) is False  # unaligned pointer: another specialisation
    assert fast(0, 7, 8, 1, *args[:5], 17, *args[6:]) is False  # H % 16 != 0
    hooks.launch_exit_hook.calls.append(print)
    assert fast(0, 7, 8, 1, *args) is False  # a profiler's hook: launch through Triton
    assert len(launched) == 2


def test_bound_launch_keeps_the_specialisation_it_was_bound_with(monkeypatch):
    """Launcher.bind's go(): the fixed arguments and constexprs bound once, the changing ones given
    each call; it launches only while they keep bind's specialisation (aligned pointers, i32 ints),
    with no hook and on the bound device. Runs on the CPU with a fake C launcher, as above."""
    hooks = SimpleNamespace(launch_enter_hook=SimpleNamespace(calls=[]), launch_exit_hook=SimpleNamespace(calls=[]))
    current = [0]  # the maker reads these functions once, when it is generated
    monkeypatch.setattr(launch, "_current_device", lambda: current[0])
    monkeypatch.setattr(launch, "_get_stream", lambda dev: 1234 + dev)
    monkeypatch.setattr(launch, "_hooks", hooks)
    monkeypatch.setattr(launch, "_ONE_DEVICE", False)
    monkeypatch.setattr(launch, "FAST_LAUNCH", True)
    monkeypatch.setattr(launch, "_bound_makers", {})
    launcher = launch.Launcher(norm_ops._rms_norm_kernel, norm_ops._launch.kinds)
    x = torch.randn(64)
    consts = (False, True, 64, 0, False, 0)
    args = (x, x, x, x, 8, 16, 16, 16, 16, 1e-6)
    assert launcher.bind(0, args, consts, 4, False, vary=5) is None  # nothing launched yet: nothing cached
    key, launch_args = launcher.prep(0, launcher.meta_id(consts, 4, 1, (x.dtype,) * 4, False), *args)
    launched = []
    launcher.cache[key] = (lambda *a: launched.append(a), "function", "packed", False, True, consts)
    assert launcher.bind(0, (x[1:], *args[1:]), consts, 4, False, vary=5) is None  # unaligned: not bound
    go = launcher.bind(0, args, consts, 4, False, vary=5)
    y = torch.randn(32)
    assert go(3, 1, y, x, x, y, 3) is True
    assert launched == [(3, 1, 1, 1234, "function", False, True, None, None, "packed", None, None, None,
                         y.data_ptr(), x.data_ptr(), x.data_ptr(), y.data_ptr(), 3, *launch_args[5:], *consts)]
    assert go(3, 1, y[1:], x, x, y, 3) is False  # an unaligned pointer: another specialisation
    assert go(3, 1, y, x, x, y, 2**31) is False  # n past i32: another specialisation
    current[0] = 1
    assert go(3, 1, y, x, x, y, 3) is False  # not the bound device
    current[0] = 0
    hooks.launch_enter_hook.calls.append(print)
    assert go(3, 1, y, x, x, y, 3) is False  # a profiler's hook: launch through Triton
    assert len(launched) == 1


def test_interface_detection():
    src_known = launch._KNOWN_CALL
    assert "kernel.run(grid_0" in src_known
    if DEVICE == "cpu":
        assert launch.FAST_LAUNCH is False, "the interpreter launches through kernel[grid]"
    else:
        import triton
        if triton.__version__.startswith("3.6"):
            assert launch.FAST_LAUNCH is True, "Triton 3.6's launch interface is the one we know"


@pytest.mark.skipif(not ON_GPU, reason="the fast path exists only for compiled kernels on a GPU")
def test_fast_path_changing_alignment_and_shapes():
    """Alternate aligned/unaligned views and shapes through one launcher: every result must match the
    reference and the cache must hold one entry per specialisation, not one per call."""
    ref = lmkernels.reference
    base = randn(64, 4096 + 16, dtype=torch.bfloat16, seed=1)
    w = randn(4096 + 16, dtype=torch.bfloat16, seed=2)
    norm_ops._launch.cache.clear()
    for rep in range(3):
        for off, H, T in [(0, 4096, 64), (1, 4096, 3), (0, 4095, 1), (3, 17, 5), (0, 16, 1), (0, 4096, 1)]:
            x = base[:T, off:off + H]
            out = lmkernels.rms_norm(x, w[:H])
            torch.testing.assert_close(out.float(), ref.rms_norm(x, w[:H]).float(), rtol=2**-7, atol=1e-3)
    assert len(norm_ops._launch.cache) <= 6


@pytest.mark.skipif(not ON_GPU, reason="the fast path exists only for compiled kernels on a GPU")
def test_fast_path_off_matches(monkeypatch):
    x = randn(7, 1024, dtype=torch.float16, seed=3)
    want = lmkernels.rms_norm(x)
    monkeypatch.setattr(launch, "FAST_LAUNCH", False)
    assert torch.equal(lmkernels.rms_norm(x), want)


@pytest.mark.skipif(not ON_GPU or torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_launches_on_the_tensors_device():
    x = randn(3, 256, dtype=torch.float32, seed=4).to("cuda:1")
    with torch.cuda.device(0):
        y = lmkernels.rms_norm(x)
    torch.testing.assert_close(y, lmkernels.reference.rms_norm(x), rtol=1e-5, atol=1e-6)


def test_meta_ids_stay_distinct_when_another_config_lands_in_between():
    """Two configs planned at once (two threads) must get two ids: a shared id would give one
    config's launches the other's compiled kernel. Simulated deterministically: the first time
    meta_id reads the table's size or draws an id, "another thread" plans a second config right
    there, before the first one's id is stored."""
    launcher = launch.Launcher(_rms_norm_kernel, "tttt" "n" "iiii" "f")
    a, b = ((1,), 4, 1, (torch.bfloat16,) * 4), ((2,), 4, 1, (torch.bfloat16,) * 4)
    pending = [b]

    def meanwhile():
        if pending:
            launcher.meta_id(*pending.pop())

    class Table(dict):
        def __len__(self):
            n = dict.__len__(self)
            meanwhile()
            return n

    class Ids:
        def __init__(self, ids):
            self.ids = ids

        def __next__(self):
            i = next(self.ids)
            meanwhile()
            return i

    launcher.metas = Table()
    launcher._ids = Ids(launcher._ids)
    id_a = launcher.meta_id(*a)
    assert not pending, "the in-between planning never ran: the test no longer exercises meta_id"
    assert launcher.meta_id(*b) != id_a
    assert launcher.meta_id(*a) == id_a
