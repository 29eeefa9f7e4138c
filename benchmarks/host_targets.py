"""The host-time target tables of `bench norm` and `bench kv_cache` alone (issues 2 and 4), three runs of
shuffled interleaved rounds on one host: python3 benchmarks/host_targets.py (GPU)."""
import torch

import lmkernels
from lmkernels.bench import harness

x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
y, r = torch.empty_like(x), torch.randn_like(x)
kv = torch.randn(1, 8, 128, device="cuda", dtype=torch.bfloat16)
kc = torch.zeros(512, 16, 8, 128, device="cuda", dtype=torch.bfloat16)
vc = torch.zeros_like(kc)
slot = torch.tensor([37], device="cuda")
scale = torch.tensor([1.0], device="cuda")
calls = {"torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
         "torch.mul(x, 2)": lambda: torch.mul(x, 2),
         "lmkernels.rms_norm(x, w)": lambda: lmkernels.rms_norm(x, w, 1e-6),
         "lmkernels.rms_norm(x, w, out=y)": lambda: lmkernels.rms_norm(x, w, 1e-6, out=y),
         "lmkernels.fused_add_rms_norm(x, r, w)": lambda: lmkernels.fused_add_rms_norm(x, r, w, 1e-6),
         "lmkernels.reshape_and_cache_flash, T = 1": lambda: lmkernels.reshape_and_cache_flash(kv, kv, kc, vc, slot),
         "  ... vLLM's call, scales passed": lambda: lmkernels.reshape_and_cache_flash(kv, kv, kc, vc, slot, "auto",
                                                                                      scale, scale)}
for i in range(3):
    print(harness.host_table(harness.interleaved_host_us(calls), harness.HOST_BAR_US, f"eager calls, run {i + 1}"))
    print()
