"""Session 19: scaled_mm on a persistent, warp-specialised Gluon kernel (kernels/scaled_mm_ws.py)
against the op at its tuned tables (GPU; a developer tool). The check and the timing are
probe_wgmma.py's, with configs that name the persistent kernel.

Prediction (benchmarks/NOTES.md, written before the run): a non-persistent tile pays ~3.4 µs of
fill and write-out (int8 1250 TOP/s at K = 4096 against 1426 at K = 14336 with the same tiles);
with the producer loading the next tile during the write-out, the K = 4096 rows at M >= 1024 gain
5-10 % (4096 x 4096 x 4096 int8 1238 -> ~1330 TOP/s), and two 4-warp consumers (ping-pong, the
write-out under the other consumer's MMAs) another few %; fp8 reaches torch._scaled_mm.
(results/h100/probe_ws.md was measured launching the kernel directly, before the op took these
configs; its rows name them as (BLOCK_M, BLOCK_N, BLOCK_K, stages, consumers, warps).)
python benchmarks/probe_ws.py [check] [int8] [fp8]
"""
import sys

import torch
import triton

from probe_wgmma import CHECK_SHAPES, ROWS, check, probe

# (BLOCK_M, BLOCK_N, BLOCK_K, stages, warps, PERSISTENT, PINGPONG): one 8-warp consumer over
# 128 x 256 tiles, or two 4-warp consumers over 128 x 128 / 64 x 256 tiles
CONFIGS = ((128, 256, 128, 3, 8, True, False), (128, 256, 64, 5, 8, True, False), (256, 128, 128, 3, 8, True, False),
           (128, 256, 128, 4, 8, True, False), (128, 128, 128, 4, 4, True, True), (128, 128, 128, 5, 4, True, True),
           (128, 128, 64, 8, 4, True, True), (64, 256, 128, 4, 4, True, True))

if __name__ == "__main__":
    what = sys.argv[1:] or ["check", "int8"]
    print(torch.cuda.get_device_name(), "triton", triton.__version__)
    if "check" in what:  # + enough tiles that every program walks several
        check(CONFIGS, CHECK_SHAPES + ((2000, 3000, 64),))
    for tag in ("int8", "fp8"):
        if tag in what:
            for M, N, K in ROWS:
                probe(M, N, K, tag == "fp8", CONFIGS)
