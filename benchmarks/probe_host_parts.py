"""Probe (GPU): where the host time of an eager rms_norm at T = 1 goes, piece by piece, each piece
timed in the same shuffled interleaved rounds (results/h100/probe_host_parts.txt): Triton's C
launch with prebuilt arguments, with data_ptr() and the stream asked, the memo's bound launch
(go), the memo's facts tuple, ops/norm._eager, the public call with and without out=.
Prediction (session 30, before the run): bare C launch ~0.5x torch.mul(out=) (session 5: 5.03 /
10.02); the bound go() +0.4-0.6 µs (4 data_ptr, stream, hooks); _eager's facts and lookup +0.8-1.2
µs; rms_norm's wrapper +0.2.
python benchmarks/probe_host_parts.py"""
import torch
import lmkernels
from lmkernels.bench import harness
from lmkernels.ops import norm as N
from lmkernels.runtime import access as _access

x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
y = torch.empty_like(x)
for _ in range(3):
    lmkernels.rms_norm(x, w, 1e-6, out=y)
entry = N._memo.last[1]
go = entry[2] if 1 <= entry[1] else entry[3]
# the bare C launch go() makes: rebuild its arguments once
key = list(N._launch.cache)[0]
c_launch, function, packed, coop, pdl, consts = N._launch.cache[key]
stream = torch._C._cuda_getCurrentRawStream(0)
xp, wp, yp = x.data_ptr(), w.data_ptr(), y.data_ptr()
print("go holds:", go.__code__.co_freevars)
tail = go.__closure__[[*go.__code__.co_freevars].index("tail")].cell_contents


def bare():
    c_launch(1, 1, 1, stream, function, coop, pdl, None, None, packed, None, None, None, xp, xp, wp, yp, 1, *tail)


def facts():
    return (x.get_device(), x.dtype, x.stride(), (w.get_device(), w.dtype, w.stride(), w.shape),
            (y.get_device(), y.dtype, y.stride()), None, 1e-6, None, _access._default, None)


calls = {
    "torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
    "bare C launch (prebuilt ints)": bare,
    "bare C launch + 3 data_ptr": lambda: c_launch(1, 1, 1, stream, function, coop, pdl, None, None, packed, None, None,
                                                   None, x.data_ptr(), x.data_ptr(), w.data_ptr(), y.data_ptr(), 1, *tail),
    "bare C launch + _get_stream": lambda: c_launch(1, 1, 1, torch._C._cuda_getCurrentRawStream(0), function, coop, pdl,
                                                    None, None, packed, None, None, None, xp, xp, wp, yp, 1, *tail),
    "go(...) (the memo's bound launch)": lambda: go(1, 1, x, x, w, y, 1),
    "facts tuple alone": facts,
    "_eager(x, None, w, y, ...)": lambda: N._eager(x, None, w, y, 1e-6, None, None),
    "lmkernels.rms_norm(x, w, out=y)": lambda: lmkernels.rms_norm(x, w, 1e-6, out=y),
    "lmkernels.rms_norm(x, w)": lambda: lmkernels.rms_norm(x, w, 1e-6),
    "torch.empty_like(x)": lambda: torch.empty_like(x),
}
torch.cuda.synchronize()
for i in range(3):
    res = harness.interleaved_host_us(calls)
    print(f"run {i + 1}")
    for k, v in res.items():
        print(f"  {v:6.2f} us  {k}")
