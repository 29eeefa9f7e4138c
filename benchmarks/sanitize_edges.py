"""Edge shapes for compute-sanitizer (GPU): every op x access mode on sizes that end mid-vector,
single rows and unaligned views. Run: compute-sanitizer --tool memcheck --error-exitcode 1 python3 this
[--clusters: only ll_gemm's split-K finished in thread-block clusters]."""
import sys

import torch

import lmkernels
from lmkernels.runtime.access import available_modes
from lmkernels.runtime.launch import cluster_launch_ok

dev = "cuda"


def cluster_edges():
    """ll_gemm's split-K finished in thread-block clusters (sm90+, kernels/cluster.py): transposed
    8-row dot tiles (M tiled at M > 8) with 7 splits (slices that do not divide the tile), 16-row
    1024-deep tiles, 16 splits (the non-portable cluster size), FMA rows whose 2-element tile at M = 1
    is sent in 16-byte padded copies; odd K and N, x rows at an odd offset, a bias, PDL on and off,
    fp8 with scales where the GPU has it."""
    if not cluster_launch_ok(torch.cuda.current_device()):
        return
    tiles = ((8, 16, 512, 7, True, True, 4, 3), (16, 16, 1024, 4, True, False, 4, 3), (16, 32, 64, 16, True, False, 1, 1),
             (None, 2, 256, 8, False, False, 1, 2))
    dts = (torch.bfloat16, torch.float8_e4m3fn) if torch.cuda.get_device_capability() >= (8, 9) else (torch.bfloat16,)
    for dt in dts:
        for M, N, K in ((1, 100, 1001), (5, 256, 7169), (16, 33, 4099), (11, 3, 2047)):
            x = torch.randn(M, K + 1, device=dev).to(dt)[:, 1:]
            w = torch.randn(N, K, device=dev).to(dt)
            s = (torch.ones((), device=dev), torch.ones(1, device=dev)) if dt != torch.bfloat16 else (None, None)
            bias = torch.randn(N, device=dev)
            for bm, bn, bk, split, dot, swap, chains, stages in tiles:
                cfg = {**({} if bm is None else {"BLOCK_M": bm}), "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split,
                       "USE_DOT": dot, "SWAP_AB": swap, "DOT_CHAINS": chains, "num_warps": 4, "num_stages": stages,
                       "ONE_LAUNCH": True, "CLUSTER": True}
                lmkernels.ll_gemm(x, w, bias=bias, x_scale=s[0], w_scale=s[1], config=cfg)
                lmkernels.ll_gemm(x, w, out_dtype=torch.bfloat16, x_scale=s[0], w_scale=s[1], config=cfg, pdl=False)


if "--clusters" in sys.argv:
    cluster_edges()
    torch.cuda.synchronize()
    print("cluster edge shapes ran")
    raise SystemExit(0)
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
    # rotary: head 80 (rot/2 = 40, not a power of two), partial rot 32 of 128, q/k slices of qkv, key None,
    # positions out of the cache (negative and == max_pos: NaN rows, nothing read out of bounds)
    for dt in (torch.bfloat16, torch.float32):
        for T, head, rot, hq, hkv in ((1, 80, 80, 3, 1), (7, 128, 32, 5, 5), (2, 64, 64, 2, 1)):
            qkv = torch.randn(T, (hq + 2 * hkv) * head, device=dev, dtype=dt)
            cache = torch.randn(9, rot, device=dev, dtype=torch.float32)
            pos = torch.randint(0, 9, (T,), device=dev)
            pos[0] = 9 if T > 1 else -1
            q, k = qkv[:, :hq * head], qkv[:, hq * head:(hq + hkv) * head]
            for neox in (True, False):
                lmkernels.rotary_embedding(pos, q, k, head, cache, neox, access=mode)
                lmkernels.rotary_embedding(pos, q, None, head, cache, neox, access=mode)
                s3 = [rot // 2 - 2 * (rot // 6), rot // 6, rot // 6]
                lmkernels.mrope(torch.stack([pos, pos.flip(0), pos]), q, k, cache, s3, head, is_neox=neox,
                                access=mode)
    # sampling: odd V (111: explicit descriptor refuses it), a strided row, ids out of range
    for dt in (torch.bfloat16, torch.float32):
        for B, V in ((1, 111), (3, 32000), (2, 151936)):
            if mode == "descriptor" and V % 8:
                continue
            logits = torch.randn(B, V + 8, device=dev, dtype=dt)[:, :V]
            ids = torch.randint(0, V, (B, 21), device=dev)
            ids[0, 0], ids[-1, -1] = V, -5
            lmkernels.token_logprobs(logits, ids, access=mode)
            lmkernels.token_ranks(logits, ids[:, 0].contiguous(), access=mode)
    # merge / correct: D not a power of two (80, 100) and above one TMA box (320), +-inf LSEs, strided heads
    for dt in (torch.bfloat16, torch.float32):
        for T, H, D in ((1, 1, 80), (5, 3, 100), (2, 4, 320), (3, 32, 128)):
            if mode == "descriptor" and (D * dt.itemsize) % 16:
                continue
            p, s = (torch.randn(T, H + 1, D, device=dev, dtype=dt)[:, :H] for _ in range(2))
            pl, sl = (torch.randn(H, T, device=dev) for _ in range(2))
            pl[0, 0], sl[-1, -1] = float("inf"), float("-inf")
            o, ol = torch.empty(T, H, D, device=dev, dtype=dt), torch.empty(H, T, device=dev)
            lmkernels.merge_attn_states(o, p, pl, s, sl, ol, access=mode)
            for N in (1, 3):
                lses = torch.randn(N, T, H, device=dev)
                lses[0, 0, 0] = float("nan")
                lmkernels.correct_attn_out(p.clone(), lses, N - 1, access=mode)
    # pack / unpack: lengths with zeros, a row of 7 bytes (1-byte words), max_len truncating
    for dt, trailing in ((torch.bfloat16, (8, 128)), (torch.uint8, (7,)), (torch.float32, ())):
        if mode == "descriptor" and trailing in ((7,), ()):
            continue  # 7- and 4-byte rows: explicit descriptor refuses them (TMA needs 16-byte strides)
        lengths = torch.tensor([0, 3, 1, 0, 5], device=dev)
        x = torch.randn(9, *trailing, device=dev).to(dt)
        for max_len in (None, 2):
            lmkernels.pack_seq(x, lengths, 0, max_len=max_len, access=mode)
        packed = lmkernels.pack_seq(x, lengths, 0, access=mode)
        lmkernels.unpack_seq(packed, lengths, access=mode)
        lmkernels.unpack_seq(packed, lengths, num_tokens=4, access=mode)
    # pack past one wave (pointer: the row-indexed kernel's wide tiles, 8 rows a program), a sequence
    # truncated at max_len, x 5 rows short of sum(lengths) (its last tile straddles x's end)
    lengths = torch.randint(0, 50, (300,), device=dev, generator=torch.Generator(device=dev).manual_seed(3))
    lengths[7] = 200
    x = torch.randn(int(lengths.sum()) - 5, 64, device=dev, dtype=torch.bfloat16)
    packed = lmkernels.pack_seq(x, lengths, 0, max_len=40, access=mode)
    lmkernels.unpack_seq(packed, lengths, num_tokens=x.shape[0], access=mode)
    # kv cache: head 80 (a 128-wide tile, masked), a one-block cache, ragged token counts (300: 4 a
    # program), slots 0, the last, the capacity, -1 and 2^40; NHD and HND; fp8 into uint8
    for kv, cdt in (("auto", torch.bfloat16), ("fp8", torch.uint8)):
        for T, nb, bs, layout in ((1, 1, 16, "NHD"), (7, 3, 8, "HND"), (300, 40, 16, "NHD")):
            qkv = torch.randn(T, 3, 2, 80, device=dev, dtype=torch.bfloat16)
            shape = (nb, 2, bs, 80) if layout == "HND" else (nb, bs, 2, 80)
            kc, vc = (torch.zeros(shape, device=dev, dtype=cdt) for _ in range(2))
            if layout == "HND":
                kc, vc = kc.transpose(1, 2), vc.transpose(1, 2)
            slots = torch.randperm(nb * bs, device=dev)[:T]
            slots[:5] = torch.tensor([0, nb * bs - 1, nb * bs, -1, 2**40], device=dev)[:T]
            scale = torch.tensor([0.5], device=dev) if kv == "fp8" else None
            # twice more, the second time fewer slots: repeat calls launch from the op's memo
            for n in (T, T, max(1, T - 3)):
                lmkernels.reshape_and_cache_flash(qkv[:, 1], qkv[:, 2], kc, vc, slots[:n], kv, scale, scale,
                                                  access=mode)
    # scaled_mm: M = 1 and ragged M, N and K (tiles masked on every side), a column-major a, a
    # row-major b, split-K (workspace and reduce, or finished in one launch), persistent, fp8 where the
    # GPU has it
    kinds = (torch.int8, torch.float8_e4m3fn) if torch.cuda.get_device_capability() >= (8, 9) else (torch.int8,)
    for dt in kinds:
        for M, N, K in ((1, 971, 496), (33, 20, 1040), (5, 256, 80), (130, 97, 16), (100, 971, 496)):
            if dt == torch.int8:
                a, w = (torch.randint(-128, 128, shape, device=dev, dtype=dt) for shape in ((M, K), (N, K)))
            else:
                a, w = (torch.randn(shape, device=dev).to(dt) for shape in ((M, K), (N, K)))
            sa, sb, bias = torch.rand(M, 1, device=dev), torch.rand(1, N, device=dev), torch.randn(N, device=dev)
            if mode == "descriptor" and K % 16:
                continue  # explicit descriptor refuses rows of K % 16 bytes (tested)
            split = {"BLOCK_SIZE_M": 16, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 64, "GROUP_SIZE_M": 4, "num_warps": 4,
                     "num_stages": 3, "SPLIT_K": 3}
            for cfg in (None, dict(split, PERSISTENT=True), dict(split, ONE_LAUNCH=True),
                        dict(split, ONE_LAUNCH=True, PERSISTENT=True)):
                lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, access=mode, config=cfg)
            if mode != "descriptor" or M % 16 == 0 and N % 16 == 0:
                lmkernels.scaled_mm(a.t().contiguous().t(), w.t().contiguous(), sa, sb, torch.float16, access=mode)
            if mode == "pointer":  # the sm90 heuristic's M = 33-128 tile (64 x 64 x 128, 6 stages), transposed
                mid = {"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 128, "GROUP_SIZE_M": 8, "num_warps": 4,
                       "num_stages": 6, "ACCESS": "pointer"}
                for swap in (False, True):
                    lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=dict(mid, SWAP_AB=swap))
        # SPLIT_TAIL: ragged 16 x 16 tiles, 3 x 150 of them (132 SMs: 54 past the last whole wave, split
        # in 3 and finished in the launch), plain and persistent
        M, N, K = 33, 2399, 1040
        if dt == torch.int8:
            a, w = (torch.randint(-128, 128, shape, device=dev, dtype=dt) for shape in ((M, K), (N, K)))
        else:
            a, w = (torch.randn(shape, device=dev).to(dt) for shape in ((M, K), (N, K)))
        sa, sb, bias = torch.rand(M, 1, device=dev), torch.rand(1, N, device=dev), torch.randn(N, device=dev)
        tail = {"BLOCK_SIZE_M": 16, "BLOCK_SIZE_N": 16, "BLOCK_SIZE_K": 64, "GROUP_SIZE_M": 4, "num_warps": 4,
                "num_stages": 3, "SPLIT_K": 3, "ONE_LAUNCH": True, "SPLIT_TAIL": True}
        for cfg in (tail, dict(tail, PERSISTENT=True)):
            lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, access=mode, config=cfg)
        # the sm90 Gluon kernel (WGMMA): TMA boxes past every edge (M = 1, ragged N, K = 16 under a
        # 128-deep box, K tails), the 64-row tile, the 128 x 256 one and two of two accumulators (the
        # second box starts past N where N < 192)
        if mode == "descriptor" and torch.cuda.get_device_capability() == (9, 0):
            for M, N, K in ((1, 971, 496), (130, 97, 16), (257, 300, 4112), (1000, 2000, 208), (129, 136, 64)):
                if dt == torch.int8:
                    a, w = (torch.randint(-128, 128, shape, device=dev, dtype=dt) for shape in ((M, K), (N, K)))
                else:
                    a, w = (torch.randn(shape, device=dev).to(dt) for shape in ((M, K), (N, K)))
                sa, sb, bias = torch.rand(M, 1, device=dev), torch.rand(1, N, device=dev), torch.randn(N, device=dev)
                for bm, bn, bk, warps, stages in ((64, 128, 128, 4, 4), (128, 256, 64, 8, 5), (128, 192, 128, 8, 5),
                                                  (64, 96, 128, 4, 8)):
                    cfg = {"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": 8,
                           "num_warps": warps, "num_stages": stages, "WGMMA": True}
                    lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg)
                # the persistent warp-specialised kernel: one 8-warp consumer and the ping-pong pair,
                # programs walking several ragged tiles
                for bm, bn, bk, warps, stages, pingpong in ((128, 256, 128, 8, 4, False), (128, 128, 128, 4, 5, True),
                                                            (64, 64, 64, 4, 4, True)):
                    cfg = {"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": 8,
                           "num_warps": warps, "num_stages": stages, "WGMMA": True, "PERSISTENT": True,
                           "PINGPONG": pingpong}
                    lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=cfg)
                    # TMA stores clipped at the ragged edges, where the rows are 16-byte units
                    if N % 8 == 0:  # 128 x 256: 3 stages beside its 64 KB output tile
                        tma_cfg = dict(cfg, TMA_STORE=True, num_stages=3 if bn == 256 else stages)
                        lmkernels.scaled_mm(a, w.t(), sa, sb, torch.bfloat16, bias, config=tma_cfg)
# ll_gemm (no access modes): M = 1 and 16, N = 1, odd K (unaligned rows: no 16-byte loads), x rows
# at an odd offset, the heuristic (whole K rows at M = 1, one-launch split-K at M = 16) and explicit FMA /
# dot / split-K configs, PDL with and without the early launch and the L2 prefetch (whose predicated-off
# addresses must not fault), PRELOAD, split-K in two launches, DOT_CHAINS (split-K and one K tile),
# SWAP_AB (64 weight rows; 8 rows, M tiled at M = 16, and at M <= 8 below), the weight prefetched as one
# bulk request a row (BULK_PREFETCH: rows 2 bytes off 16, one element long at K = 5); fp8 with odd K where
# the GPU has it
fp8_ll = torch.version.hip or torch.cuda.get_device_capability() >= (8, 9)
for dt in (torch.bfloat16, torch.float8_e4m3fn) if fp8_ll else (torch.bfloat16,):
    for M, N, K in ((1, 1, 17), (16, 1, 2047), (1, 256, 7169), (16, 3, 1001), (16, 384, 5)):
        x = torch.randn(M, K + 1, device=dev).to(dt)[:, 1:]
        w = torch.randn(N, K, device=dev).to(dt)
        s = (torch.ones((), device=dev), torch.ones(1, device=dev)) if dt != torch.bfloat16 else (None, None)
        bias = torch.randn(N, device=dev)
        for cfg in (None, {"USE_DOT": False, "SPLIT_K": 3, "BLOCK_K": 64, "BLOCK_N": 2},
                    {"USE_DOT": True, "BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 128},
                    {"EARLY_LAUNCH": False, "PREFETCH": False, "SPLIT_K": 2}, {"PRELOAD": True},
                    {"ONE_LAUNCH": False, "SPLIT_K": 2, "BLOCK_K": 64},
                    {"USE_DOT": True, "BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 256, "SPLIT_K": 3, "DOT_CHAINS": 4},
                    {"USE_DOT": True, "BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 128, "SPLIT_K": 64, "DOT_CHAINS": 8},
                    {"USE_DOT": True, "SWAP_AB": True, "BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128, "SPLIT_K": 3},
                    {"USE_DOT": True, "SWAP_AB": True, "BLOCK_M": 8, "BLOCK_N": 16, "BLOCK_K": 128, "SPLIT_K": 5,
                     "DOT_CHAINS": 4},
                    {"PREFETCH": True, "BULK_PREFETCH": True},
                    {"USE_DOT": False, "SPLIT_K": 3, "BLOCK_K": 64, "BLOCK_N": 2, "PREFETCH": True, "BULK_PREFETCH": True}):
            lmkernels.ll_gemm(x, w, bias=bias, x_scale=s[0], w_scale=s[1], config=cfg)
            lmkernels.ll_gemm(x, w, out_dtype=torch.bfloat16, x_scale=s[0], w_scale=s[1], config=cfg, pdl=False)
    # whole-K FMA rows (2 <= M <= 8): masked rows of BLOCK_M (3 of 4, 5 of 8), an odd N past the last
    # two-row tile, the K tail, PRELOAD of all of K, split-K of row tiles in one launch and in two
    for M, N, K in ((3, 257, 7169), (5, 3, 1001), (2, 1, 17)):
        x = torch.randn(M, K + 1, device=dev).to(dt)[:, 1:]
        w = torch.randn(N, K, device=dev).to(dt)
        s = (torch.ones((), device=dev), torch.ones(1, device=dev)) if dt != torch.bfloat16 else (None, None)
        for cfg in (None, {"EARLY_LAUNCH": False, "PREFETCH": False},
                    {"PRELOAD": True, "BLOCK_N": 1, "BLOCK_K": 8192, "num_warps": 16, "SPLIT_K": 1},
                    {"SPLIT_K": 2, "BLOCK_K": 64, "BLOCK_N": 2}, {"ONE_LAUNCH": False, "SPLIT_K": 2, "BLOCK_K": 64},
                    {"USE_DOT": True, "SWAP_AB": True, "BLOCK_M": 8, "BLOCK_N": 16, "BLOCK_K": 256, "SPLIT_K": 3,
                     "DOT_CHAINS": 4}):
            lmkernels.ll_gemm(x, w, x_scale=s[0], w_scale=s[1], config=cfg)
            lmkernels.ll_gemm(x, w, out_dtype=torch.float16, x_scale=s[0], w_scale=s[1], config=cfg, pdl=False)
    # M tiled over programs (BLOCK_M < M): 13 rows in tiles of 4 (the last one partial) and of 1
    # (PRELOAD of all of K), an odd N past the last two-row tile, the K tail, unaligned x rows
    x = torch.randn(13, 4098, device=dev).to(dt)[:, 1:]
    w = torch.randn(9, 4097, device=dev).to(dt)
    s = (torch.ones((), device=dev), torch.ones(1, device=dev)) if dt != torch.bfloat16 else (None, None)
    for cfg in ({"USE_DOT": False, "BLOCK_M": 4, "BLOCK_N": 2, "SPLIT_K": 1, "BLOCK_K": 1024, "num_warps": 4,
                 "num_stages": 2},
                {"USE_DOT": False, "BLOCK_M": 1, "BLOCK_N": 2, "SPLIT_K": 1, "BLOCK_K": 8192, "num_warps": 8,
                 "num_stages": 1, "PRELOAD": True}):
        lmkernels.ll_gemm(x, w, x_scale=s[0], w_scale=s[1], config=cfg)
        lmkernels.ll_gemm(x, w, out_dtype=torch.float16, x_scale=s[0], w_scale=s[1], config=cfg, pdl=False)
# the norms' memo of bound launches (ops/norm.py): repeat calls with one set of facts and changing row
# counts (both configs: one program an SM and more), and rows 2 bytes off 16 with the same strides, which
# the bound launches must refuse
buf = torch.randn(300, 4104, device=dev, dtype=torch.bfloat16)
w = torch.randn(4096, device=dev, dtype=torch.bfloat16)
for T in (1, 300, 2, 133, 1, 300):
    for x in (buf[:T, :4096], buf[:T, 1:4097]):
        lmkernels.rms_norm(x, w)
        lmkernels.rms_norm(x, w, out=torch.empty(T, 4096, device=dev, dtype=torch.bfloat16))
        lmkernels.fused_add_rms_norm(x, torch.randn(T, 4096, device=dev, dtype=torch.bfloat16), w)
cluster_edges()
torch.cuda.synchronize()
print("edge shapes ran")
