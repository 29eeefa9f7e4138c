"""Edge shapes for compute-sanitizer (GPU): every op x access mode on sizes that end mid-vector,
single rows and unaligned views. Run: compute-sanitizer --tool memcheck --error-exitcode 1 python3 this."""
import torch

import lmkernels
from lmkernels.runtime.access import available_modes

dev = "cuda"
for mode in available_modes():
    for dt in (torch.bfloat16, torch.float32):
        for T, H in ((1, 1), (1, 8), (3, 769), (2, 5125), (5, 4096)):
            aligned = H % 8 == 0
            if mode == "descriptor" and not aligned:
                continue
            base = torch.randn(T, H + 8, device=dev, dtype=dt)
            x = base[:, :H] if aligned else base[:, 1:H + 1]
            w = torch.randn(H, device=dev, dtype=dt)
            lmkernels.rms_norm(x, w, access=mode)
            xr, r = x.clone(), torch.randn(T, H, device=dev, dtype=dt)
            lmkernels.fused_add_rms_norm(xr, r, w, access=mode)
            g = torch.randn(T, 2 * H, device=dev, dtype=dt)
            lmkernels.silu_and_mul(g, access=mode)
            lmkernels.swiglustep_and_mul(g, 3.0, access=mode)
    lmkernels.silu_and_mul(torch.randn(65537, 2 * 24, device=dev), access=mode)  # 2-row tiles past grid axis 1
torch.cuda.synchronize()
print("edge shapes ran")
