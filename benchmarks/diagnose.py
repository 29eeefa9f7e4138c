"""One-off GPU diagnostics: where eager host time goes, and access-mode bit differences."""
import cProfile
import pstats

import torch

import lmkernels
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime import launch
from lmkernels.verify import ulp_error

x = torch.randn(1, 4096, device="cuda", dtype=torch.bfloat16)
w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
y = torch.empty_like(x)
for _ in range(10):
    lmkernels.rms_norm(x, w, out=y)
m0 = norm_ops._launch.misses
pr = cProfile.Profile()
pr.enable()
for _ in range(2000):
    lmkernels.rms_norm(x, w, out=y)
pr.disable()
torch.cuda.synchronize()
print("misses during 2000 calls:", norm_ops._launch.misses - m0, "cache entries:", len(norm_ops._launch.cache))
print("enter hook", launch._knobs.runtime.launch_enter_hook, getattr(launch._knobs.runtime.launch_enter_hook, "calls", "n/a"))
print("exit hook", launch._knobs.runtime.launch_exit_hook, getattr(launch._knobs.runtime.launch_exit_hook, "calls", "n/a"))
pstats.Stats(pr).sort_stats("tottime").print_stats(18)

for dt in (torch.float32, torch.bfloat16):
    for H in (136, 1024, 4096):
        for stages in (1, 2):
            norm_ops.NORM_STAGES = stages
            xs = torch.randn(5, H, device="cuda", dtype=dt)
            rs = torch.randn(5, H, device="cuda", dtype=dt)
            ws = torch.randn(H, device="cuda", dtype=dt)
            out = {}
            for mode in ("pointer", "block_ptr", "descriptor"):
                xa, ra = xs.clone(), rs.clone()
                lmkernels.fused_add_rms_norm(xa, ra, ws, access=mode)
                out[mode] = (xa, ra, lmkernels.rms_norm(xs, ws, access=mode))
            p = out["pointer"]
            for mode in ("block_ptr", "descriptor"):
                o = out[mode]
                print(f"{dt} H={H} stages={stages} {mode}: fused x ulp {ulp_error(o[0], p[0]):g} res {ulp_error(o[1], p[1]):g}"
                      f" rms {ulp_error(o[2], p[2]):g} fused-x==rms(res)? {torch.equal(o[0], lmkernels.rms_norm(o[1], ws, access=mode))}")
norm_ops.NORM_STAGES = 2
