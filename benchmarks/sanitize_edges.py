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
torch.cuda.synchronize()
print("edge shapes ran")
