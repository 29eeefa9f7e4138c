"""Scratch memory of one-launch split-K ("last one finishes"): a workspace and zeroed int32 counters.

ll_gemm and scaled_mm split K across programs and finish each output tile in the same launch: every
program stores its raw partial tile to the workspace and counts itself in on the tile's counter;
the last to arrive sums the partials in a fixed order, runs the epilogue and puts the counter back
to 0 (kernels/split_k.py has the memory-ordering argument, kernels/small_gemm.py the protocol).
This module owns the buffers both use.

One (workspace, counters) pair per (device, stream, spec), made on first use and kept for the life
of the process (never freed or grown: a captured CUDA graph holds their addresses). spec is
(counters, workspace elements, workspace dtype). The workspace's contents are arbitrary; the
counters are zero. Sharing them between calls is sound because a launch touches them only after
the previous kernel in its stream is done (stream order, or gdc_wait with PDL) and leaves every
counter at 0; keying on the stream keeps calls on concurrent streams apart. A CUDA graph replays the
buffers of the stream it was captured on, so a graph must not be replayed concurrently with calls
issued on its capture stream (torch.cuda.graph captures on a side stream of its own, where nothing
else runs).

Counters come from a per-device slab zeroed when it was made, outside any capture, so a stream first
seen inside a capture (torch.cuda.graph's side stream always is) takes a zeroed slice with no GPU
work. Only if no slab exists yet or the slab is full while capturing does a call zero counters of
its own with a memset recorded into the graph (correct: it runs before the kernel at every replay,
but one more graph node); those are not cached, and the next call outside a capture makes a slab.
(A first version keyed zeroing on the capture and recorded a memset per call until an eager call ran
on the capture stream: on torch.cuda.graph's stream, every call, +1.5-2.3 µs and a broken PDL chain
in the bench graphs.)
"""
from __future__ import annotations

import torch

COUNTER_SLAB = 1 << 16  # int32 counters a slab: 256 KB; a spec takes one per output tile
_bufs: dict = {}  # (dev, stream) + spec -> (workspace, counters)
_slabs: dict = {}  # dev -> [zeroed int32 slab, first free index]
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def torch_device(dev: int) -> torch.device:
    """A tensor's get_device() index as a torch.device (-1: the CPU, under the interpreter)."""
    return torch.device("cuda", dev) if dev >= 0 else torch.device("cpu")


def _zeroed_counters(dev: int, n: int, capturing: bool):
    """n zero int32 counters carved from the device's slab (a new slab when it is full, unless
    capturing); None when capturing and no slab has room."""
    slab = _slabs.get(dev)
    if slab is None or slab[1] + n > slab[0].numel():
        if capturing:
            return None
        slab = _slabs[dev] = [torch.zeros(max(COUNTER_SLAB, n), dtype=torch.int32, device=torch_device(dev)), 0]
        if dev >= 0:  # other streams take slices of it next: the zeroing must be done for all of them
            torch.cuda.synchronize(dev)
    start = slab[1]
    slab[1] = start + n
    return slab[0][start:start + n]


def split_buffers(dev: int, scratch: tuple) -> tuple:
    """(workspace, counters) for a plan's scratch = (spec, {stream: buffers}) on the current stream of
    device dev; spec = (counters, workspace elements, workspace dtype). A plan's second call on a
    stream finds them with one dict lookup; the first looks in (or fills) the process-wide cache."""
    stream = _raw_stream(dev) if dev >= 0 else 0
    bufs = scratch[1].get(stream)
    if bufs is None:
        bufs = _cached(dev, stream, scratch[0], scratch[1])
    return bufs


def _cached(dev: int, stream: int, spec: tuple, fast: dict) -> tuple:
    """The process-wide (workspace, counters) of this device, stream and spec, made on first use;
    remembered in the plan's `fast` dict too once cached."""
    key = (dev, stream) + spec
    bufs = _bufs.get(key)
    if bufs is None:
        n_counters, n_elems, dtype = spec
        capturing = dev >= 0 and torch.cuda.is_current_stream_capturing()
        where = torch_device(dev)
        part = torch.empty(n_elems, dtype=dtype, device=where)
        count = _zeroed_counters(dev, n_counters, capturing)
        if count is None:  # the slab-less capture case above: this call's own, recorded memset
            return part, torch.zeros(n_counters, dtype=torch.int32, device=where)
        bufs = _bufs[key] = (part, count)
    fast[stream] = bufs
    return bufs


def buffers_of(dev: int) -> list:
    """Every cached (workspace, counters) pair of device dev (tests: all counters must be 0)."""
    return [v for k, v in _bufs.items() if k[0] == dev]
