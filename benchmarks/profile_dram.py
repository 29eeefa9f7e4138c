"""Kernels for an Nsight Compute look at DRAM throughput: rms_norm at T = 4096, H = 4096 (bf16, the
issue-2 row 1.8 % under its target) beside SM copies of the same 64 MiB (torch.add(x, 0, out=y))
and of 1 GiB. Each runs 3 times on fresh inputs; ncu (caches flushed before each kernel by default)
reports each launch alone, so the numbers are one kernel's, without PDL overlap.

    ncu --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,\
dram__throughput.avg.pct_of_peak_sustained_elapsed python benchmarks/profile_dram.py
"""
import torch

import lmkernels

T, H = 4096, 4096
for i in range(3):
    x = torch.randn(T, H, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(H, device="cuda", dtype=torch.bfloat16)
    lmkernels.rms_norm(x, w)
    src = torch.randn(T * H, device="cuda", dtype=torch.bfloat16)  # 32 MiB read + 32 MiB written
    torch.add(src, 0, out=torch.empty_like(src))
big = torch.randn(2**29, device="cuda", dtype=torch.bfloat16)  # 1 GiB read + 1 GiB written
torch.add(big, 0, out=torch.empty_like(big))
torch.cuda.synchronize()
