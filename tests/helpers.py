"""Helpers shared by the test modules (importable as `from helpers import ...`; conftest puts
tests/ on sys.path after setting TRITON_INTERPRET where there is no GPU)."""
from __future__ import annotations

import zlib

import pytest
import torch

from lmkernels.runtime import access as access_rt

from lmkernels.runtime.device import is_interpreter
from lmkernels.verify import ulp_error

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERPRETER = is_interpreter()
# Compiled kernels on a real GPU: the place where "bit-exact" claims are checked at 0 ulp.
ON_GPU = DEVICE == "cuda" and not INTERPRETER
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def dtype_id(dtype) -> str:
    return str(dtype).split(".")[-1]


def poisoned(shape, dtype) -> torch.Tensor:
    """A NaN-filled output buffer on DEVICE: an element the kernel does not write fails the check."""
    return torch.full(shape, float("nan"), dtype=dtype, device=DEVICE)


def randn(*shape, dtype=torch.float32, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """Fresh standard-normal data on DEVICE (never zeros), reproducible from `seed`."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    x = torch.randn(*shape, dtype=torch.float32, device=DEVICE, generator=gen)
    return (x * scale).to(dtype)


def assert_ulps(actual: torch.Tensor, expected: torch.Tensor, ulps: float) -> None:
    """max |actual - expected| <= ulps units in the last place of expected's dtype (NaN only where
    expected is NaN). Shapes and dtypes must match exactly."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != expected {expected.dtype}"
    err = ulp_error(actual, expected)
    assert err <= ulps, (f"max ulp error {err:g} > allowed {ulps:g} ({expected.dtype}, shape "
                         f"{tuple(expected.shape)}; inf means a NaN where the reference has none, or the reverse)")


def assert_equal_nan(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Bit-for-bit equal values, NaN where and only where expected is NaN."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    same = (actual == expected) | (actual.isnan() & expected.isnan())
    if not bool(same.all()):
        bad = (~same).nonzero()
        i = tuple(bad[0].tolist())
        raise AssertionError(f"{bad.shape[0]} of {same.numel()} elements differ; first at {i}: "
                             f"{actual[i].item()!r} != expected {expected[i].item()!r}")


def seed_of(*parts) -> int:
    """A reproducible seed per parameter combination (str hash() is salted per process)."""
    return zlib.crc32(repr(parts).encode())


def skip_unavailable(mode: str) -> None:
    """Skip, with the reason, an access mode the installed Triton cannot compile."""
    why = access_rt.unavailable_reason(access_rt.MODES[mode])
    if why is not None:
        pytest.skip(f"access={mode!r} is unavailable with this Triton: {why}")


def capture(fn):
    """(graph, fn()'s result) with fn's launches captured in one CUDA graph; run fn once eagerly
    before, so that compiles happen outside the capture. graph.replay() is then followed by
    torch.cuda.synchronize() in the caller's checks."""
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


class CountingLauncher:
    """Stands in for an op module's Launcher (monkeypatched over _launch / _launch_reduce): counts
    the launches and keeps the runtime arguments of the last."""

    def __init__(self, real):
        self.real, self.n, self.args = real, 0, None

    def meta_id(self, *a, **k):
        return self.real.meta_id(*a, **k)

    def fast(self, dev, meta, g0, g1, *args):
        ok = self.real.fast(dev, meta, g0, g1, *args)
        if ok:
            self.n, self.args = self.n + 1, args
        return ok

    def __call__(self, dev, grid, args, *a, **k):
        self.n, self.args = self.n + 1, args
        return self.real(dev, grid, args, *a, **k)
