"""Host side of the memory-access modes: names, availability, and whether a call meets a mode's rules.

The device side (how a tile is addressed) lives only in kernels/access.py; this module decides
which of its three branches a launch compiles. Modes are ints because they travel as a constexpr.
"""
from __future__ import annotations

import os

import triton.language as tl

from .device import triton_version

POINTER, BLOCK_PTR, DESCRIPTOR = 0, 1, 2
MODES = {"pointer": POINTER, "block_ptr": BLOCK_PTR, "descriptor": DESCRIPTOR}
NAMES = {v: k for k, v in MODES.items()}


def unavailable_reason(mode: int) -> str | None:
    """Why the installed Triton cannot compile `mode` at all, or None when it can."""
    if mode == BLOCK_PTR and (triton_version() >= (3, 9) or not hasattr(tl, "make_block_ptr")):
        return "tl.make_block_ptr was removed in Triton 3.9"
    if mode == DESCRIPTOR and not hasattr(tl, "make_tensor_descriptor"):
        return "tl.make_tensor_descriptor needs Triton >= 3.4"
    return None


def available_modes() -> list[str]:
    return [name for name, mode in MODES.items() if unavailable_reason(mode) is None]


def _parse(name: str, what: str) -> int:
    mode = MODES.get(name)
    if mode is None:
        raise ValueError(f"{what}={name!r} is not an access mode; expected one of {sorted(MODES)} or None")
    return mode


_default: int | None = None  # read inline by the ops' hot paths; set below at import (None: invalid env)


def default_mode() -> int:
    """The process default: env LMKERNELS_ACCESS, else pointer. Read once; reset_default() rereads."""
    global _default
    if _default is None:
        mode = _parse(os.environ.get("LMKERNELS_ACCESS", "pointer"), "LMKERNELS_ACCESS")
        _default = POINTER if unavailable_reason(mode) else mode
    return _default


def reset_default() -> None:
    """Forget the default and read LMKERNELS_ACCESS again (now, or on first use if it is invalid)."""
    global _default
    _default = None
    try:
        default_mode()
    except ValueError:  # an invalid LMKERNELS_ACCESS is reported by the first op call, not at import
        pass


reset_default()


def descriptor_problem(operands) -> str | None:
    """Why TMA cannot address these operands, or None.

    operands: (name, tensor, strides[, inner]): the strides (elements) of every dim but the last,
    one int for a 2-D operand's row stride; inner, where given, the box's last-dim elements. TMA
    needs a 16-byte aligned base, 16-byte multiples for those strides, and boxes 16 bytes to 256
    elements wide."""
    for name, t, strides, *inner in operands:
        e = t.element_size()
        if t.data_ptr() % 16:
            return f"{name}.data_ptr() % 16 = {t.data_ptr() % 16} (TMA needs a 16-byte aligned base)"
        for s in (strides,) if isinstance(strides, int) else strides:
            if (s * e) % 16:
                return f"{name} stride {s} x {e} bytes is not a multiple of 16 (TMA needs 16-byte strides)"
        if inner and (inner[0] * e < 16 or inner[0] > 256):
            return f"{name}'s tile is {inner[0]} elements of {e} bytes wide (TMA boxes are 16 bytes to 256 elements)"
    return None


def resolve(access, operands) -> int:
    """The constexpr for one launch.

    operands: what descriptor_problem takes, for every operand the kernel tiles.
    An explicit mode that cannot serve the call raises ValueError naming the reason; the default
    falls back to pointer instead, so the default never fails for a reason of addressing.
    """
    if access is None:
        mode = default_mode()
        if mode == DESCRIPTOR and descriptor_problem(operands) is not None:
            return POINTER
        return mode
    if not isinstance(access, str):
        raise TypeError(f"access must be a str or None, got {type(access).__name__}")
    mode = _parse(access, "access")
    why = unavailable_reason(mode)
    if why is None and mode == DESCRIPTOR:
        why = descriptor_problem(operands)
    if why is not None:
        raise ValueError(f"access={access!r} cannot serve this call: {why}")
    return mode
