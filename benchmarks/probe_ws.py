"""Sessions 19-20: scaled_mm on the persistent, warp-specialised Gluon kernel
(kernels/scaled_mm_ws.py) against the op at its tuned tables (GPU; a developer tool). The check and
the timing are probe_wgmma.py's, with configs that name the persistent kernel.

Session 19 prediction (benchmarks/NOTES.md, written before the run): a non-persistent tile pays
~3.4 µs of fill and write-out (int8 1250 TOP/s at K = 4096 against 1426 at K = 14336 with the same
tiles); with the producer loading the next tile during the write-out, the K = 4096 rows at
M >= 1024 gain 5-10 % (4096 x 4096 x 4096 int8 1238 -> ~1330 TOP/s), and two 4-warp consumers
(ping-pong, the write-out under the other consumer's MMAs) another few %; fp8 reaches
torch._scaled_mm. (results/h100/probe_ws.md was measured launching the kernel directly, before the
op took these configs; its rows name them as (BLOCK_M, BLOCK_N, BLOCK_K, stages, consumers, warps).)

Session 20 (`tma`): the same tiles with TMA_STORE (the consumer writes the tile to shared memory
and leaves it to a TMA store). Prediction: the one-consumer 128 x 256 tiles spend ~1.65 µs a tile
outside their K loop (fp8 4096 x 4096: 98.7 µs at K = 4096, 328.9 at K = 14336, 4 tiles a
program); an epilogue that does not wait for its global stores takes 2-4 % off the K = 4096 rows
there (fp8 4096 x 4096 x 4096 98.7 -> ~95.5 µs); the ping-pong tiles, whose write-out already
runs under the other consumer's MMAs, within noise (±1 %).
python benchmarks/probe_ws.py [check] [int8] [fp8] [tma]
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
# session 20: each TMA_STORE tile beside its register-store twin (bf16 output tiles of 64 KB a
# consumer: 128 x 256 x 128 fits 3 stages beside its tile, 128 x 256 x 64 six, ping-pong 128 x 128 x
# 128 five beside two)
TMA_CONFIGS = ((128, 256, 128, 3, 8, True, False, False), (128, 256, 128, 3, 8, True, False, True),
               (128, 256, 64, 6, 8, True, False, False), (128, 256, 64, 6, 8, True, False, True),
               (128, 128, 128, 5, 4, True, True, False), (128, 128, 128, 5, 4, True, True, True),
               (128, 128, 128, 4, 4, True, True, True))

if __name__ == "__main__":
    what = sys.argv[1:] or ["check", "int8"]
    print(torch.cuda.get_device_name(), "triton", triton.__version__)
    configs = TMA_CONFIGS if "tma" in what else CONFIGS
    if "check" in what:  # + enough tiles that every program walks several
        check(configs, CHECK_SHAPES + ((2000, 3000, 64),))
    for tag in ("int8", "fp8"):
        if tag in what:
            for M, N, K in ROWS:
                probe(M, N, K, tag == "fp8", configs)
