"""Shared test setup. Runs before any test module imports triton or lmkernels.

Without a CUDA device the kernels run under Triton's interpreter, which must be switched on
before triton is first imported (DESIGN.md, Tests). On a GPU machine nothing is changed, so the
same tests run there unchanged against compiled kernels.
"""
import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, os.path.dirname(__file__))  # `from helpers import ...` in the test modules

import pytest  # noqa: E402

import helpers  # noqa: E402  (imports lmkernels, after TRITON_INTERPRET is set)


@pytest.fixture
def device() -> str:
    """"cuda" where a GPU is present, else "cpu" (kernels then run under the interpreter)."""
    return helpers.DEVICE


@pytest.fixture
def on_gpu() -> bool:
    """True when kernels are compiled for a real GPU (not the interpreter)."""
    return helpers.ON_GPU


@pytest.fixture
def default_access(monkeypatch):
    """Lets a test set LMKERNELS_ACCESS: the cached process default is reread before the test and,
    after it, once the environment is restored (monkeypatch.undo here: this teardown would otherwise
    run before monkeypatch's own)."""
    from lmkernels.runtime import access

    monkeypatch.delenv("LMKERNELS_ACCESS", raising=False)
    access.reset_default()

    def set_mode(value: str) -> None:
        monkeypatch.setenv("LMKERNELS_ACCESS", value)
        access.reset_default()

    try:
        yield set_mode
    finally:
        monkeypatch.undo()
        access.reset_default()
