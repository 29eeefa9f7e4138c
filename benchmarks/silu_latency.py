"""T = 1 latency of silu_and_mul: precise (libdevice expf, IEEE div) vs fast maths, by block size."""
import torch

from lmkernels.bench.harness import graph_us
from lmkernels.ops import activation as act

d = 14336
xs = [torch.randn(1, 2 * d, device="cuda", dtype=torch.bfloat16) for _ in range(64)]
ys = [torch.empty(1, d, device="cuda", dtype=torch.bfloat16) for _ in range(64)]
for precise in (True, False):
    for bd, warps in ((256, 1), (512, 2), (1024, 4), (2048, 8)):
        calls = [lambda x=x, y=y: act._launch(0, (1, -(-d // bd)), (x, x, y, 1, d, 2 * d, d, 0.0),
                                              (0, 1, bd, precise, False, 1, 0), num_warps=warps) for x, y in zip(xs, ys)]
        print(f"precise={precise} BLOCK_D={bd} warps={warps}: {graph_us(calls, reps=50):.2f} us")
