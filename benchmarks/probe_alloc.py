"""Probe (GPU): the host cost of the ways to allocate an eager op's output, on a [1, 4096] bf16 row,
beside torch.mul with and without out= (results/h100/probe_alloc_host.txt).
Prediction (session 30, before the run): torch.empty(shape, dtype=, device=) skips empty_like's
second dispatcher trip (empty_like -> empty_strided) and saves 0.3-0.6 µs of the ~1.7-1.9 µs
allocation; new_empty and empty_strided land between the two.
python benchmarks/probe_alloc.py"""
import torch
from lmkernels.bench import harness

x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
y = torch.empty_like(x)
shape, dt, dev_obj = x.shape, x.dtype, x.device
calls = {
    "torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
    "torch.mul(x, 2)": lambda: torch.mul(x, 2),
    "torch.empty_like(x)": lambda: torch.empty_like(x),
    "torch.empty_like(x, memory_format=contiguous)": lambda: torch.empty_like(x, memory_format=torch.contiguous_format),
    "torch.empty(shape, dtype=dt, device=x.device obj)": lambda: torch.empty(shape, dtype=dt, device=dev_obj),
    "torch.empty(shape, dtype=dt, device=0)": lambda: torch.empty(shape, dtype=dt, device=0),
    "x.new_empty(shape)": lambda: x.new_empty(shape),
    "torch.empty_strided(shape, (4096, 1), dtype=dt, device=obj)": lambda: torch.empty_strided(shape, (4096, 1), dtype=dt, device=dev_obj),
    "lambda: None": lambda: None,
}
for i in range(3):
    res = harness.interleaved_host_us(calls)
    print(f"run {i + 1}")
    for k, v in res.items():
        print(f"  {v:6.2f} us  {k}")
