"""Every kernel x access mode compiles for Hopper, Ampere and MI300 from this machine.

Runs in a subprocess without TRITON_INTERPRET (the interpreter replaces @triton.jit functions, and
the compiler needs the real ones). Skips carry the reason when a target's toolchain is missing.
"""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = r'''
import itertools, json, re, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from lmkernels.kernels.context_parallel import _correct_attn_out_kernel, _merge_attn_states_kernel
from lmkernels.kernels.norm import _rms_norm_kernel
from lmkernels.kernels.packing import _pack_kernel, _pack_rows_kernel, _seq_starts_kernel, _unpack_kernel
from lmkernels.kernels.activation import _gated_act_kernel
from lmkernels.kernels.kv_cache import _reshape_and_cache_kernel
from lmkernels.kernels.rotary import _rope_kernel
from lmkernels.kernels.scaled_mm import _scaled_mm_kernel, _split_k_reduce_kernel
from lmkernels.kernels.scaled_mm_wgmma import _scaled_mm_wgmma_kernel
from lmkernels.kernels.scaled_mm_ws import _scaled_mm_ws_kernel
from triton.experimental.gluon._runtime import GluonASTSource
from lmkernels.kernels.small_gemm import _ll_gemm_kernel, _ll_gemm_reduce_kernel
from lmkernels.kernels.sampling import (_lse_partial_kernel, _rank_partial_kernel, _token_logprobs_kernel,
                                        _token_ranks_kernel)

D16 = [["tt.divisibility", 16]]
TARGETS = {"sm90": GPUTarget("cuda", 90, 32), "sm80": GPUTarget("cuda", 80, 32),
           "gfx942": GPUTarget("hip", "gfx942", 64)}
results = []

def compile_one(name, fn, sig, consts, attrs, target, warps, **options):
    source = GluonASTSource if fn.is_gluon() else ASTSource  # Gluon kernels set their module's layout attributes
    src = source(fn, sig, constexprs=consts, attrs=attrs)
    try:
        k = triton.compile(src, target=TARGETS[target], options=dict(options, num_warps=warps))
        asm = k.asm.get("ptx", "") or k.asm.get("amdgcn", "")
        scalar = re.search(r"ld\.global(\.[a-z]+)*\.b32 \{ %r\d+ \}", asm)  # a 4-byte load (a scale)
        vector = re.search(r"ld\.global(\.[a-z]+)*\.v4\.b32|cp\.async", asm)  # an operand tile's first load
        results.append({"scalar_load_first": bool(scalar and vector and scalar.start() < vector.start()),
                        "cvt_bf16_f16": asm.count("cvt.bf16.f16"), "cvt_e4m3": asm.count("e4m3x2"), "case": name, "target": target, "ok": True,
                        "tma": "cp.async.bulk.tensor" in asm, "gdc": "griddepcontrol.wait" in asm,
                        "wgmma": "wgmma.mma_async" in asm, "mma": bool(re.search(r"wgmma\.mma_async|mma\.sync|v_mfma", asm)),
                        "wgmma_in_flight": bool(re.search(r"wgmma\.wait_group\.sync\.aligned [1-9]", asm)),
                        "wgmma_waits": sorted(set(re.findall(r"wgmma\.wait_group\.sync\.aligned (\d+)", asm))),
                        "prefetch": "prefetch.global.L2" in asm, "setmaxnreg": "setmaxnreg" in asm,
                        "bulk_prefetch": "cp.async.bulk.prefetch.L2.global" in asm,
                        "tma_store": "cp.async.bulk.tensor.2d.global.shared" in asm,
                        "cluster_copy": "cp.async.bulk.shared::cluster.shared::cta" in asm and "mapa.shared::cluster" in asm,
                        "bounded_wait": bool(re.search(r"mov\.u64 %?\w+, %globaltimer", asm)) and bool(re.search(r"\btrap;", asm)),
                        "vec16": bool(re.search(r"ld\.global(\.[a-z]+)*\.v4\.b32|ld\.global(\.[a-z]+)*\.v2\.b64|cp\.async\.c[ag]\.shared\.global(\.[a-z0-9]+)* \[[^]]*\], \[[^]]*\], 0x10", asm))})
    except Exception as e:
        results.append({"case": name, "target": target, "ok": False, "error": f"{type(e).__name__}: {e}"[:500]})

for target in TARGETS:
    for mode, dt, residual in itertools.product((0, 1, 2), ("bf16", "fp32"), (False, True)):
        t2 = f"tensordesc<{dt}[1, 4096]>" if mode == 2 else f"*{dt}"
        # the weight is a pointer in every mode (kernels/norm.py)
        sig = {"x_ptr": t2, "res_ptr": t2, "w_ptr": f"*{dt}", "y_ptr": t2, "n_rows": "i32",
               "H": "i32", "stride_x": "i32", "stride_res": "i32", "stride_y": "i32", "eps": "fp32",
               "HAS_RESIDUAL": "constexpr", "HAS_WEIGHT": "constexpr", "BLOCK_H": "constexpr",
               "ACCESS": "constexpr", "USE_PDL": "constexpr", "PREFETCH": "constexpr"}
        attrs = {(i,): D16 for i in ((0, 1, 2, 3, 5, 6, 7, 8) if mode != 2 else (2, 5, 6, 7, 8))}
        pdl = target == "sm90"  # PDL exists on sm90+ only
        pre = 132 if pdl and mode == 0 and not residual else 0  # programs that prefetch before the wait (ops/norm.py)
        compile_one(f"rms_norm mode={mode} {dt} residual={residual} pdl={pdl} prefetch={pre > 0}", _rms_norm_kernel, sig,
                    {"HAS_RESIDUAL": residual, "HAS_WEIGHT": True, "BLOCK_H": 4096, "ACCESS": mode,
                     "USE_PDL": pdl, "PREFETCH": pre}, attrs, target, 8)
    for mode, dt, act in itertools.product((0, 1, 2), ("bf16", "fp16", "fp32"), (0, 1)):
        t2 = f"tensordesc<{dt}[1, 1024]>" if mode == 2 else f"*{dt}"
        t3 = f"tensordesc<{dt}[1, 2, 1024]>" if mode == 2 else f"*{dt}"  # both halves in one box
        sig = {"x_ptr": t3, "y_ptr": t2, "n_rows": "i32", "d": "i32", "stride_x": "i32",
               "stride_y": "i32", "limit": "fp32", "ACT": "constexpr", "BLOCK_T": "constexpr",
               "BLOCK_D": "constexpr", "PRECISE": "constexpr", "ACCESS": "constexpr", "USE_PDL": "constexpr"}
        attrs = {(i,): D16 for i in ((0, 1, 3, 4, 5) if mode != 2 else (3, 4, 5))}
        pdl = target == "sm90" and dt == "bf16"  # PDL exists on sm90+ only
        compile_one(f"gated act={act} mode={mode} {dt} pdl={pdl}", _gated_act_kernel, sig,
                    {"ACT": act, "BLOCK_T": 1, "BLOCK_D": 1024, "PRECISE": True, "ACCESS": mode, "USE_PDL": pdl},
                    attrs, target, 4)
    # rotary: Llama-style 32 q + 8 kv heads of 128 (NeoX 4-D and GPT-J 3-D views), rotary and mrope
    nq, nk, head, half, bhq, bhk, bh = 32, 8, 128, 64, 32, 8, 64
    for mode, neox, mrope in itertools.product((0, 1, 2), (True, False), (False, True)):
        if mode == 2:
            box = f"[1, {{}}, 2, {bh}]" if neox else f"[1, {{}}, {2 * bh}]"
            tq, tk, tc = (f"tensordesc<bf16{box.format(bhq)}>", f"tensordesc<bf16{box.format(bhk)}>",
                          f"tensordesc<fp32[1, 2, {bh}]>")
        else:
            tq = tk = "*bf16"
            tc = "*fp32"
        sig = {"pos_ptr": "*i64", "q_ptr": tq, "k_ptr": tk, "cache_ptr": tc, "n_tokens": "i32", "max_pos": "i32",
               "stride_ps": "i32", "stride_pt": "constexpr", "stride_q": "i32", "stride_k": "i32", "stride_c": "i32"}
        consts = {"stride_pt": 1, "NQ": nq, "NK": nk, "HEAD": head, "HALF": half, "IS_NEOX": neox, "MROPE": mrope,
                  "INTERLEAVED": False, "SEC_T": 16, "SEC_H": 24, "SEC_W": 24, "HAS_KEY": True,
                  "BLOCK_HQ": bhq, "BLOCK_HK": bhk, "BLOCK_HALF": bh, "ACCESS": mode,
                  "USE_PDL": target == "sm90" and neox}  # PDL exists on sm90+ only
        sig.update({k: "constexpr" for k in consts})
        attrs = {(i,): D16 for i in ((0, 1, 2, 3, 5, 8, 9, 10) if mode != 2 else (0, 5, 8, 9, 10))}
        compile_one(f"rope mode={mode} neox={neox} mrope={mrope} pdl={consts['USE_PDL']}", _rope_kernel, sig, consts,
                    attrs, target, 4)
    # sampling: the two streaming partial kernels in every mode (bf16 and fp32 logits), the combines
    pdl = target == "sm90"
    for mode, dt in itertools.product((0, 1, 2), ("bf16", "fp32")):
        block, vec = (4096, 8) if dt == "bf16" else (2048, 4)
        xv = f"tensordesc<{dt}[1, {block}]>" if mode == 2 else f"*{dt}"
        sig = {"x_view": xv, "x_ptr": f"*{dt}", "ids_ptr": "*i64", "part_ptr": "*fp32", "n_rows": "i32", "V": "i32",
               "K": "i32", "stride_xv": "i32", "stride_ib": "i32", "stride_ik": "i32", "segs_per_prog": "i32",
               "progs_per_row": "i32", "BLOCK_V": "constexpr", "BLOCK_K": "constexpr", "VEC": "constexpr",
               "ACCESS": "constexpr", "USE_PDL": "constexpr"}
        attrs = {(i,): D16 for i in ((0, 1, 2, 3, 5, 7, 8) if mode != 2 else (1, 2, 3, 5, 7, 8))}
        compile_one(f"lse_partial mode={mode} {dt} pdl={pdl and dt == 'bf16'}", _lse_partial_kernel, sig,
                    {"BLOCK_V": block, "BLOCK_K": 32, "VEC": vec, "ACCESS": mode, "USE_PDL": pdl and dt == "bf16"},
                    attrs, target, 4)
        xv = f"tensordesc<{dt}[1, 2048]>" if mode == 2 else f"*{dt}"
        sig = {"x_view": xv, "x_ptr": f"*{dt}", "ids_ptr": "*i64", "part_ptr": "*i32", "n_rows": "i32", "V": "i32",
               "stride_x": "i32", "stride_i": "i32", "segs_per_prog": "i32", "progs_per_row": "i32",
               "BLOCK_V": "constexpr", "ACCESS": "constexpr", "USE_PDL": "constexpr"}
        attrs = {(i,): D16 for i in ((0, 1, 2, 3, 5, 6) if mode != 2 else (1, 2, 3, 5, 6))}
        compile_one(f"rank_partial mode={mode} {dt}", _rank_partial_kernel, sig,
                    {"BLOCK_V": 2048, "ACCESS": mode, "USE_PDL": False}, attrs, target, 8)
    sig = {"part_ptr": "*fp32", "out_ptr": "*fp32", "n_rows": "i32", "V": "i32", "K": "i32", "stride_ob": "i32",
           "stride_ok": "i32", "BLOCK_V": "constexpr", "BLOCK_SEG": "constexpr", "BLOCK_K": "constexpr",
           "USE_PDL": "constexpr"}
    compile_one(f"token_logprobs combine pdl={pdl}", _token_logprobs_kernel, sig,
                {"BLOCK_V": 4096, "BLOCK_SEG": 64, "BLOCK_K": 32, "USE_PDL": pdl}, {(i,): D16 for i in (0, 1, 3, 5)},
                target, 1)
    sig = {"part_ptr": "*i32", "out_ptr": "*i64", "n_rows": "i32", "stride_o": "i32", "progs_per_row": "i32",
           "BLOCK_P": "constexpr", "USE_PDL": "constexpr"}
    compile_one("token_ranks combine pdl=False", _token_ranks_kernel, sig, {"BLOCK_P": 64, "USE_PDL": False},
                {(i,): D16 for i in (0, 1)}, target, 1)
    # packing: bf16 rows of 1024 moved as 8-byte words in [8, 256] tiles; pack with in-kernel
    # sequence starts, unpack reading them from the starts kernel; odd uint8 rows (1-byte words,
    # no vectors to be had) once
    for mode in (0, 1, 2):
        t2, t3 = ("tensordesc<i64[8, 256]>", "tensordesc<i64[1, 8, 256]>") if mode == 2 else ("*bf16", "*bf16")
        pdl = target == "sm90" and mode != 1  # PDL exists on sm90+ only
        consts = {"stride_l": 1, "BLOCK_T": 8, "BLOCK_D": 256, "BLOCK_B": 256, "WORD_BYTES": 8, "HAS_STARTS": False,
                  "ACCESS": mode, "USE_PDL": pdl}
        sig = {"x_view": t2, "out_view": t3, "len_ptr": "*i32", "starts_ptr": "*i32", "n_rows": "i32", "n_seqs": "i32",
               "max_len": "i32", "row_words": "i32", "stride_xt": "i32", "stride_ob": "i32", "stride_ot": "i32",
               "stride_l": "constexpr", "pad": "i64", "n_t_tiles": "i32"}
        sig.update({k: "constexpr" for k in consts})
        compile_one(f"pack_seq mode={mode} pdl={pdl}", _pack_kernel, sig, consts,
                    {(i,): D16 for i in ((0, 1, 2, 3, 7, 8, 9, 10) if mode != 2 else (2, 3, 7, 8, 9, 10))}, target, 4)
        consts["HAS_STARTS"] = True
        sig = {"packed_view": t3, "out_view": t2, "out_ptr": "*bf16", "len_ptr": "*i32", "starts_ptr": "*i64",
               "n_rows": "i32", "n_seqs": "i32", "max_len": "i32", "row_words": "i32", "stride_pb": "i32",
               "stride_pt": "i32", "stride_ot": "i32", "stride_l": "constexpr", "n_t_tiles": "i32"}
        sig.update({k: "constexpr" for k in consts})
        compile_one(f"unpack_seq mode={mode} starts pdl={pdl}", _unpack_kernel, sig, consts,
                    {(i,): D16 for i in ((0, 1, 2, 3, 4, 8, 9, 10, 11) if mode != 2 else (2, 3, 4, 8, 9, 10, 11))},
                    target, 4)
    consts = {"stride_l": 1, "BLOCK_T": 64, "BLOCK_D": 8, "BLOCK_B": 256, "WORD_BYTES": 1, "HAS_STARTS": False,
              "ACCESS": 0}
    sig = {"x_view": "*u8", "out_view": "*u8", "len_ptr": "*i64", "starts_ptr": "*i64", "n_rows": "i32",
           "n_seqs": "i32", "max_len": "i32", "row_words": "i32", "stride_xt": "i32", "stride_ob": "i32",
           "stride_ot": "i32", "stride_l": "constexpr", "pad": "i32", "n_t_tiles": "i32"}
    sig.update({k: "constexpr" for k in consts})
    compile_one("pack_seq uint8 rows of 7 (1-byte words)", _pack_kernel, sig, consts, {(i,): D16 for i in (0, 1, 2, 3)},
                target, 1)
    # pack_seq's row-indexed kernel (pointer mode): decode's one-warp tiles (1 token x 512 words, 64
    # sequences) and the wide ones (8 x 256, 4 warps, 1024 sequences)
    for block_t, block_d, block_b, warps in ((1, 512, 64, 1), (8, 256, 1024, 4)):
        pdl = target == "sm90"
        consts = {"stride_l": 1, "BLOCK_T": block_t, "BLOCK_D": block_d, "BLOCK_B": block_b, "WORD_BYTES": 8,
                  "USE_PDL": pdl}
        sig = {"x_ptr": "*bf16", "out_ptr": "*bf16", "len_ptr": "*i64", "n_rows": "i32", "n_seqs": "i32",
               "max_len": "i32", "row_words": "i32", "stride_xt": "i32", "stride_ob": "i32", "stride_ot": "i32",
               "stride_l": "constexpr", "pad": "i64", "n_x_tiles": "i32", "n_t_tiles": "i32"}
        sig.update({k: "constexpr" for k in consts})
        compile_one(f"pack_seq rows mode=0 {block_t}x{block_d} pdl={pdl}", _pack_rows_kernel, sig, consts,
                    {(i,): D16 for i in (0, 1, 2, 6, 7, 8, 9)}, target, warps)
    compile_one("seq_starts", _seq_starts_kernel, {"len_ptr": "*i32", "starts_ptr": "*i64", "n_seqs": "i32",
                                                   "stride_l": "constexpr", "BLOCK_B": "constexpr"},
                {"stride_l": 1, "BLOCK_B": 1024}, {(i,): D16 for i in (0, 1)}, target, 4)
    # context parallel: merge_attn_states at T >= 256 (32 heads of 128 a program), both dtypes, and
    # correct_attn_out for decode (8 heads of 128 a program): in place with N = 2, and into a
    # [W, B, H, D] chunk buffer (n_split 2, the reduce-scatter path) with N = 3 and base-2 LSEs
    for mode, dt in itertools.product((0, 1, 2), ("bf16", "fp32")):
        t3 = f"tensordesc<{dt}[1, 32, 128]>" if mode == 2 else f"*{dt}"
        sig = {"out_view": t3, "p_view": t3, "s_view": t3, "p_lse_ptr": "*fp32", "s_lse_ptr": "*fp32",
               "o_lse_ptr": "*fp32", "n_tokens": "i32", "H": "i32"}
        sig.update({k: "i32" for k in ("stride_ot", "stride_oh", "stride_pt", "stride_ph", "stride_st", "stride_sh",
                                       "stride_plh", "stride_slh", "stride_olh")})
        sig.update({k: "constexpr" for k in ("stride_plt", "stride_slt", "stride_olt")})  # contiguous [H, T]: 1
        pdl = target == "sm90" and dt == "bf16"
        consts = {"stride_plt": 1, "stride_slt": 1, "stride_olt": 1, "D": 128, "HAS_OUT_LSE": True, "BLOCK_H": 32,
                  "BLOCK_D": 128, "ACCESS": mode, "USE_PDL": pdl}
        sig.update({k: "constexpr" for k in consts})
        attrs = {(i,): D16 for i in ((0, 1, 2, 3, 4, 5) if mode != 2 else (3, 4, 5)) + (7, 8, 9, 10, 11, 12, 13)}
        compile_one(f"merge_attn_states mode={mode} {dt} pdl={pdl}", _merge_attn_states_kernel, sig, consts, attrs,
                    target, 8)
        split = dt == "fp32"
        t4 = f"tensordesc<{dt}[1, 1, 8, 128]>" if mode == 2 else f"*{dt}"
        sig = {"src_view": t4, "dst_view": t4, "lses_ptr": "*fp32", "lse_out_ptr": "*fp32", "n_rows": "i32",
               "n_split": "i32" if split else "constexpr", "heads": "i32"}
        sig.update({k: "i32" for k in ("stride_sb", "stride_sw", "stride_sh", "stride_db", "stride_dw", "stride_dh",
                                       "stride_ln", "stride_lb")})
        sig.update({"stride_lh": "constexpr", "cp_rank": "i32"})
        consts = {"stride_lh": 1, "N": 3 if split else 2, "D": 128, "BASE_E": not split, "BLOCK_H": 8, "BLOCK_D": 128,
                  "ACCESS": mode, "USE_PDL": pdl}
        if not split:
            consts["n_split"] = 1
        sig.update({k: "constexpr" for k in consts})
        attrs = {(i,): D16 for i in ((0, 1, 2, 3) if mode != 2 else (2, 3)) + (6, 7, 8, 9, 10, 11, 12, 13, 14)}
        compile_one(f"correct_attn_out mode={mode} {dt} n_split={'2' if split else '1'} pdl={pdl}",
                    _correct_attn_out_kernel, sig, consts, attrs, target, 2)
    # kv cache: 8 heads of 128, bf16 key/value; a copy (4 tokens a program in pointer mode) and fp8
    # e4m3 / e5m2 with per-head scales: Triton's cast on sm90; integer encoding (SOFT_FP8) into a
    # uint8 cache on sm80 (Triton refuses fp8e4nv there) and gfx942; descriptor e4m3 with HND caches
    for mode, (variant, fp8) in itertools.product((0, 1, 2), (("copy", 0), ("e4m3", 1), ("e5m2", 2))):
        soft = fp8 > 0 and target != "sm90"
        cdt = "bf16" if not fp8 else "u8" if soft else ("fp8e4nv" if fp8 == 1 else "fp8e5")
        if mode == 2:  # e4m3: an HND cache's descriptor, over its memory order [nb, H, bs, D]
            tk = "tensordesc<bf16[1, 8, 128]>"
            tc = f"tensordesc<{cdt}[1, 8, 1, 128]>" if fp8 == 1 else f"tensordesc<{cdt}[1, 1, 8, 128]>"
        else:
            tk, tc = "*bf16", f"*{cdt}"
        sig = {"key_ptr": tk, "value_ptr": tk, "kc_ptr": tc, "vc_ptr": tc, "slot_ptr": "*i64", "n_tokens": "i32",
               "ks_ptr": "*fp32", "vs_ptr": "*fp32", "num_blocks": "i32", "block_size": "i32", "stride_kt": "i32",
               "stride_kh": "i32", "stride_vt": "i32", "stride_vh": "i32", "stride_cb": "i32", "stride_co": "i32",
               "stride_ch": "i32", "stride_slot": "i32"}  # num_blocks, stride_slot: never specialised
        pdl = target == "sm90" and not fp8
        consts = {"stride_ks": 1, "stride_vs": 1, "H": 8, "D": 128, "FP8": fp8,
                  "HAS_SCALE": fp8 > 0, "SOFT_FP8": soft, "BLOCK_T": 4 if mode == 0 and not fp8 else 1, "BLOCK_H": 8,
                  "BLOCK_D": 128, "ACCESS": mode, "USE_PDL": pdl, "HEAD_MAJOR": mode == 2 and fp8 == 1}
        sig.update({k: "constexpr" for k in consts})
        attrs = {(i,): D16 for i in ((0, 1, 2, 3, 4, 6, 7) if mode != 2 else (4, 6, 7)) + tuple(range(9, 17))}
        compile_one(f"kv_cache mode={mode} {variant} pdl={pdl}", _reshape_and_cache_kernel, sig, consts, attrs,
                    target, 4)
    # every specialised int argument 1 (Triton then makes each a constexpr): a one-block cache, block
    # size 1, int32 slots (num_blocks and stride_slot are never specialised: 1 stays an i32 there)
    ones = ["block_size", "stride_kt", "stride_kh", "stride_vt", "stride_vh", "stride_cb",
            "stride_co", "stride_ch"]
    sig = {"key_ptr": "*bf16", "value_ptr": "*bf16", "kc_ptr": "*u8", "vc_ptr": "*u8", "slot_ptr": "*i32",
           "n_tokens": "i32", "ks_ptr": "*fp32", "vs_ptr": "*fp32", "num_blocks": "i32"}
    sig.update({k: "constexpr" for k in ones})
    sig.update({"stride_slot": "i32", "stride_ks": "constexpr", "stride_vs": "constexpr"})
    ones += ["stride_ks", "stride_vs"]
    consts = dict({k: 1 for k in ones}, H=8, D=128, FP8=2, HAS_SCALE=True, SOFT_FP8=target != "sm90", BLOCK_T=4,
                  BLOCK_H=8, BLOCK_D=128, ACCESS=0, USE_PDL=False, HEAD_MAJOR=False)
    sig.update({k: "constexpr" for k in consts})
    compile_one("kv_cache every int argument 1", _reshape_and_cache_kernel, sig, consts, {}, target, 4)
# scaled_mm (int8 and fp8 e4m3, b = w.t(), per-token x per-channel scales, bf16 bias, launched with
# enable_fp_fusion off as the op does): sm90 pointer / descriptor / persistent / split-K at the
# heuristic's tiles (int8 128 x 256, fp8 256 x 128, decode 16 x 64 x 256), split-K finished in the
# launch (ONE_LAUNCH, the decode tiles; SPLIT_TAIL's 64 x 64 tiles, plain and persistent) and the
# split-K reduce, all with PDL (the decode tiles launching their dependents early); sm80 and gfx942 pointer mode (gfx942's split-K: two launches,
# as the op does on HIP). Triton refuses fp8e4nv below sm89: the sm80 fp8 case records it.
MM_CASES = {"sm90": [("i8", 0, 128, 256, 128, 1, False, False), ("i8", 2, 128, 256, 128, 1, False, False),
                     ("i8", 2, 128, 256, 128, 1, True, False), ("i8", 0, 16, 64, 256, 4, False, False),
                     ("fp8e4nv", 0, 256, 128, 128, 1, False, False), ("fp8e4nv", 2, 256, 128, 128, 1, False, False),
                     ("fp8e4nv", 2, 128, 256, 128, 1, True, True), ("fp8e4nv", 2, 16, 64, 256, 4, False, False),
                     ("i8", 2, 64, 64, 128, 2, False, False, 132), ("fp8e4nv", 2, 64, 64, 128, 2, True, True, 132),
                     # SWAP_AB: the decode tile transposed, the weight as wgmma's 64-row side
                     ("i8", 0, 16, 64, 256, 1, False, True, 0, True), ("i8", 2, 16, 64, 256, 1, False, True, 0, True),
                     ("fp8e4nv", 0, 16, 64, 256, 1, False, True, 0, True),
                     ("fp8e4nv", 2, 16, 64, 256, 1, False, True, 0, True)],
            "sm80": [("i8", 0, 128, 128, 64, 1, False, False), ("i8", 0, 16, 64, 128, 4, False, False),
                     ("fp8e4nv", 0, 128, 128, 64, 1, False, False)],
            "gfx942": [("i8", 0, 128, 128, 64, 1, False, False), ("i8", 0, 16, 64, 128, 4, False, False),
                       ("fp8e4nv", 0, 128, 128, 64, 1, False, False)]}
for target, cases in MM_CASES.items():
    for dt, mode, bm, bn, bk, split, persistent, fast, *tail in cases:  # tail: SPLIT_TAIL's SM count, SWAP_AB
        ta = f"tensordesc<{dt}[{bm}, {bk}]>" if mode == 2 else f"*{dt}"
        tb = f"tensordesc<{dt}[{bn}, {bk}]>" if mode == 2 else f"*{dt}"
        one_launch = split > 1 and target != "gfx942"  # HIP finishes split-K in a second launch
        acc = "*i32" if dt == "i8" else "*fp32"
        ws = acc if split > 1 and not one_launch else "*bf16"
        sig = {"a_view": ta, "b_view": tb, "c_ptr": ws, "part_ptr": acc if one_launch else ws,
               "count_ptr": "*i32" if one_launch else ws, "sa_ptr": "*fp32", "sb_ptr": "*fp32", "bias_ptr": "*bf16",
               "M": "i32", "N": "i32", "K": "i32", "stride_a": "i32", "stride_b": "i32", "stride_cm": "i32",
               "stride_cs": "i32", "stride_sa": "constexpr", "stride_sb": "constexpr", "k_chunk": "i32"}
        consts = {"stride_sa": 1, "stride_sb": 1, "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8, "SPLIT_K": split,
                  "PERSISTENT": persistent, "A_T": False, "B_T": True, "SA_PER_TOKEN": True, "SB_PER_CHANNEL": True,
                  "HAS_BIAS": True, "INT8": dt == "i8", "FAST_ACCUM": fast, "ACCESS": mode,
                  "USE_PDL": target == "sm90", "EARLY_LAUNCH": target == "sm90" and bm == 16,
                  "ONE_LAUNCH": one_launch, "TAIL_SMS": tail[0] if tail else 0, "SWAP_AB": tail[1:] == [True]}
        sig.update({k: "constexpr" for k in consts})
        attrs = {(i,): D16 for i in ((0, 1) if mode != 2 else ()) + (2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 17)}
        warps = 8 if bm >= 128 else 4
        compile_one(f"scaled_mm mode={mode} {dt} {bm}x{bn}x{bk} split={split} persistent={persistent} fast={fast} "
                    f"pdl={consts['USE_PDL']} early={consts['EARLY_LAUNCH']} one_launch={one_launch} "
                    f"tail_sms={consts['TAIL_SMS']} swap_ab={consts['SWAP_AB']}",
                    _scaled_mm_kernel, sig, consts, attrs, target, warps, num_stages=3 if bm >= 128 else 4,
                    enable_fp_fusion=False)
    for ws in ("i32", "fp32"):
        sig = {"ws_ptr": f"*{ws}", "c_ptr": "*bf16", "sa_ptr": "*fp32", "sb_ptr": "*fp32", "bias_ptr": "*bf16",
               "M": "i32", "N": "i32", "stride_ws": "i32", "stride_cm": "i32", "stride_sa": "constexpr",
               "stride_sb": "constexpr"}
        consts = {"stride_sa": 1, "stride_sb": 1, "SPLIT_K": 4, "BLOCK_M": 16, "BLOCK_N": 128, "SA_PER_TOKEN": True,
                  "SB_PER_CHANNEL": True, "HAS_BIAS": True, "USE_PDL": target == "sm90"}
        sig.update({k: "constexpr" for k in consts})
        compile_one(f"scaled_mm split-K reduce {ws} pdl={consts['USE_PDL']}", _split_k_reduce_kernel, sig, consts,
                    {(i,): D16 for i in (0, 1, 2, 3, 4, 6, 7, 8)}, target, 4, enable_fp_fusion=False)
# scaled_mm's sm90 Gluon kernel (kernels/scaled_mm_wgmma.py): int8 and fp8 at the heuristic's two
# tiles and the 64-row one, host descriptors typed as the op makes them (their NVMMA layout in the
# signature), with and without PDL. sm90 only: the op never takes it elsewhere.
import torch
from triton.runtime.jit import mangle_type
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor


def gluon_desc(dt, box):
    t = torch.zeros(256, 256, dtype={gl.int8: torch.int8, gl.bfloat16: torch.bfloat16}.get(dt, torch.float8_e4m3fn))
    return mangle_type(TensorDescriptor.from_tensor(t, box, gl.NVMMASharedLayout.get_default_for(box, dt)))


# (dtype, BLOCK_M, BLOCK_N, BLOCK_N2, BLOCK_K, warps, stages, pdl): BLOCK_N2 > 0 is a tile of two
# accumulators (128 + 64 = 192 and 64 + 32 = 96 columns)
for dt, bm, bn, bn2, bk, warps, stages, pdl in (
        ("i8", 128, 256, 0, 64, 8, 5, True), ("i8", 128, 128, 0, 128, 8, 3, False), ("i8", 64, 128, 0, 128, 4, 4, True),
        ("fp8e4nv", 128, 256, 0, 128, 8, 3, True), ("i8", 128, 128, 64, 128, 8, 4, True),
        ("i8", 64, 64, 32, 128, 4, 6, False), ("fp8e4nv", 128, 128, 64, 128, 8, 4, False)):
    gdt = gl.int8 if dt == "i8" else gl.float8e4nv
    sig = {"a_desc": gluon_desc(gdt, [bm, bk]), "b_desc": gluon_desc(gdt, [bn, bk]),
           "b2_desc": gluon_desc(gdt, [bn2 or bn, bk]), "c_ptr": "*bf16", "sa_ptr": "*fp32", "sb_ptr": "*fp32",
           "bias_ptr": "*bf16", "M": "i32", "N": "i32", "K": "i32", "stride_cm": "i32", "stride_sa": "constexpr",
           "stride_sb": "constexpr"}
    consts = {"stride_sa": 1, "stride_sb": 1, "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_N2": bn2, "BLOCK_K": bk,
              "GROUP_M": 8, "STAGES": stages, "SA_PER_TOKEN": True, "SB_PER_CHANNEL": True, "HAS_BIAS": True,
              "INT8": dt == "i8", "USE_PDL": pdl, "EARLY_LAUNCH": False}
    sig.update({k: "constexpr" for k in consts})
    compile_one(f"scaled_mm_wgmma {dt} {bm}x{bn}+{bn2}x{bk} w{warps} s{stages} pdl={pdl}", _scaled_mm_wgmma_kernel,
                sig, consts, {(i,): D16 for i in (3, 4, 5, 6, 8, 9, 10)}, "sm90", warps, enable_fp_fusion=False)
# the persistent warp-specialised Gluon kernel (kernels/scaled_mm_ws.py): one 8-warp consumer, two
# 4-warp ones (ping-pong), with maxnreg as ops/scaled_mm.ws_maxnreg gives it; the tiles stored from
# registers or through shared memory by TMA (TMA_STORE: c_desc a bf16 [BLOCK_M, BLOCK_N] box)
# (dtype, BLOCK_M, BLOCK_N, BLOCK_K, warps, stages, consumers, pdl, maxnreg, TMA_STORE)
for dt, bm, bn, bk, warps, stages, consumers, pdl, maxnreg, tma_store in (
        ("i8", 128, 256, 128, 8, 4, 1, True, 168, False), ("i8", 128, 128, 128, 4, 5, 2, False, 168, False),
        ("fp8e4nv", 128, 128, 64, 4, 4, 2, True, 168, False), ("i8", 64, 128, 128, 4, 4, 1, False, 256, False),
        ("fp8e4nv", 128, 256, 128, 8, 3, 1, True, 168, True), ("i8", 128, 128, 128, 4, 5, 2, False, 168, True)):
    gdt = gl.int8 if dt == "i8" else gl.float8e4nv
    sig = {"a_desc": gluon_desc(gdt, [bm, bk]), "b_desc": gluon_desc(gdt, [bn, bk]),
           "c_desc": gluon_desc(gl.bfloat16, [bm, bn]) if tma_store else gluon_desc(gdt, [bm, bk]), "c_ptr": "*bf16",
           "sa_ptr": "*fp32", "sb_ptr": "*fp32", "bias_ptr": "*bf16", "M": "i32", "N": "i32", "K": "i32",
           "stride_cm": "i32", "stride_sa": "constexpr", "stride_sb": "constexpr"}
    consts = {"stride_sa": 1, "stride_sb": 1, "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8,
              "STAGES": stages, "CONSUMERS": consumers, "SA_PER_TOKEN": True, "SB_PER_CHANNEL": True,
              "HAS_BIAS": True, "INT8": dt == "i8", "USE_PDL": pdl, "EARLY_LAUNCH": False, "TMA_STORE": tma_store}
    sig.update({k: "constexpr" for k in consts})
    compile_one(f"scaled_mm_ws {dt} {bm}x{bn}x{bk} w{warps} s{stages} consumers={consumers} pdl={pdl} "
                f"tma_store={tma_store}", _scaled_mm_ws_kernel, sig, consts,
                {(i,): D16 for i in (3, 4, 5, 6, 8, 9, 10)}, "sm90", warps,
                enable_fp_fusion=False, maxnreg=maxnreg)
# ll_gemm (decode GEMM, weight [N, K] row-major): FMA and tl.dot tiles, bf16 / fp16 / fp8 e4m3
# (scaled), split-K into the fp32 workspace and its reduce; sm90 with PDL (early launch and the L2
# prefetch once), sm80 and gfx942 without (Triton refuses fp8e4nv below sm89: no fp8 case on sm80)
# (in dtype, out dtype, BLOCK_M, BLOCK_N, BLOCK_K, SPLIT_K, USE_DOT, bias, stages, early, prefetch);
# bf16 at BLOCK_M 2 or 8 is M-tiled (M_TILED: the grid tiles M > BLOCK_M)
LL_CASES = [("bf16", "fp32", 1, 16, 512, 14, False, False, 1, False, False),
            ("bf16", "fp32", 4, 16, 512, 1, False, True, 3, False, False),
            ("bf16", "fp32", 16, 32, 256, 28, True, False, 1, True, True),
            ("fp16", "bf16", 16, 64, 128, 1, True, True, 3, False, False),
            ("fp8e4nv", "fp32", 16, 32, 512, 14, True, True, 1, False, False),
            ("fp8e4nv", "bf16", 2, 16, 512, 1, False, False, 3, False, False),
            # a router at M = 1, scaled, with bias: its epilogue operands loaded right after the wait
            ("fp8e4nv", "fp32", 1, 4, 8192, 1, False, True, 1, True, True),
            ("bf16", "fp32", 2, 2, 4096, 1, False, True, 2, True, True),
            # transposed (SWAP_AB): 8 rows on the mma's n8 side with chains, split-K (bf16: M tiled,
            # split-K in one launch per (m-tile, n-tile)); 16 rows x 64 weight rows, which sm90 runs
            # on wgmma (BLOCK_M 8 marks the first: the only 8-row dot)
            ("bf16", "fp32", 8, 16, 512, 7, True, False, 3, True, True),
            ("fp8e4nv", "fp32", 8, 16, 512, 7, True, True, 3, True, True),
            ("fp16", "fp16", 16, 64, 256, 1, True, False, 3, False, False)]
for target in TARGETS:
    pdl = target == "sm90"
    for dt, od, bm, bn, bk, split, dot, bias, stages, early, pre in LL_CASES:
        if dt == "fp8e4nv" and target == "sm80":
            continue
        scaled = dt == "fp8e4nv"
        one = split > 1 and target != "gfx942"  # HIP keeps the reduce kernel (kernels/small_gemm.py)
        sig = {"x_ptr": f"*{dt}", "w_ptr": f"*{dt}", "out_ptr": f"*{od}", "part_ptr": "*fp32" if split > 1 else f"*{od}",
               "count_ptr": "*i32" if one else f"*{od}",
               "bias_ptr": "*fp32" if scaled or not bias else f"*{dt}", "xs_ptr": "*fp32" if scaled else f"*{dt}",
               "ws_ptr": "*fp32" if scaled else f"*{dt}", "M": "i32", "N": "i32", "K": "i32", "stride_xm": "i32",
               "stride_wn": "i32", "k_chunk": "i32"}
        consts = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split, "USE_DOT": dot, "HAS_BIAS": bias,
                  "HAS_SCALE": scaled, "USE_PDL": pdl, "EARLY_LAUNCH": early and pdl, "PREFETCH": pre and pdl,
                  "ONE_LAUNCH": one, "PRELOAD": split == 14 and dot, "M_TILED": bm in (2, 8) and dt == "bf16",
                  "DOT_CHAINS": 4 if dot and bk >= 256 and bn != 64 else 1,
                  "SWAP_AB": dot and (bm == 8 or bn == 64 and od == "fp16"), "CLUSTER": False, "BULK_PREFETCH": False}
        sig.update({k: "constexpr" for k in consts})
        compile_one(f"ll_gemm {dt}->{od} {bm}x{bn}x{bk} split={split} dot={dot} early={early and pdl} "
                    f"prefetch={pre and pdl} one_launch={one} preload={split == 14 and dot} m_tiled={consts['M_TILED']} "
                    f"chains={consts['DOT_CHAINS']} swap={consts['SWAP_AB']} pdl={pdl}", _ll_gemm_kernel, sig, consts,
                    {(i,): D16 for i in (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13)}, target, 4, num_stages=stages)
    if target == "sm90":  # split-K finished in a cluster (kernels/cluster.py: sm90 PTX, mapa, bulk copies)
        for dt, od, bm, bn, bk, split, dot, swap, chains, stages in (
                ("bf16", "fp32", 8, 16, 512, 7, True, True, 4, 3), ("fp8e4nv", "bf16", 16, 16, 1024, 4, True, False, 4, 3),
                ("bf16", "bf16", 16, 2, 256, 16, False, False, 1, 2), ("bf16", "fp32", 1, 2, 256, 8, False, False, 1, 2)):
            scaled = dt == "fp8e4nv"
            sig = {"x_ptr": f"*{dt}", "w_ptr": f"*{dt}", "out_ptr": f"*{od}", "part_ptr": f"*{od}", "count_ptr": f"*{od}",
                   "bias_ptr": "*fp32" if scaled else f"*{dt}", "xs_ptr": "*fp32" if scaled else f"*{dt}",
                   "ws_ptr": "*fp32" if scaled else f"*{dt}", "M": "i32", "N": "i32", "K": "i32", "stride_xm": "i32",
                   "stride_wn": "i32", "k_chunk": "i32"}
            consts = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split, "USE_DOT": dot, "HAS_BIAS": True,
                      "HAS_SCALE": scaled, "USE_PDL": True, "EARLY_LAUNCH": True, "PREFETCH": True, "ONE_LAUNCH": False,
                      "PRELOAD": False, "M_TILED": bm == 8, "DOT_CHAINS": chains, "SWAP_AB": swap, "CLUSTER": True,
                      "BULK_PREFETCH": False}
            sig.update({k: "constexpr" for k in consts})
            compile_one(f"ll_gemm cluster {dt}->{od} {bm}x{bn}x{bk} split={split} dot={dot} swap={swap} prefetch=True "
                        f"pdl=True",
                        _ll_gemm_kernel, sig, consts, {(i,): D16 for i in (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13)},
                        target, 4, num_stages=stages)
        # the weight prefetched as one copy-engine request a row (BULK_PREFETCH): the M = 1 FMA router
        # and the transposed split-K dot tile, M tiled, in one launch (the counter finish)
        for dt, bm, bn, bk, split, dot in (("bf16", 1, 4, 8192, 1, False), ("fp8e4nv", 8, 16, 512, 5, True)):
            scaled = dt == "fp8e4nv"
            sig = {"x_ptr": f"*{dt}", "w_ptr": f"*{dt}", "out_ptr": "*fp32", "part_ptr": "*fp32",
                   "count_ptr": "*i32" if split > 1 else "*fp32", "bias_ptr": "*fp32" if scaled else f"*{dt}",
                   "xs_ptr": "*fp32" if scaled else f"*{dt}", "ws_ptr": "*fp32" if scaled else f"*{dt}", "M": "i32",
                   "N": "i32", "K": "i32", "stride_xm": "i32", "stride_wn": "i32", "k_chunk": "i32"}
            consts = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split, "USE_DOT": dot, "HAS_BIAS": False,
                      "HAS_SCALE": scaled, "USE_PDL": True, "EARLY_LAUNCH": True, "PREFETCH": True,
                      "ONE_LAUNCH": split > 1, "PRELOAD": False, "M_TILED": dot, "DOT_CHAINS": 4 if dot else 1,
                      "SWAP_AB": dot, "CLUSTER": False, "BULK_PREFETCH": True}
            sig.update({k: "constexpr" for k in consts})
            compile_one(f"ll_gemm {dt}->fp32 {bm}x{bn}x{bk} split={split} dot={dot} prefetch=bulk pdl=True",
                        _ll_gemm_kernel, sig, consts, {(i,): D16 for i in (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13)},
                        target, 16 if bk == 8192 else 4, num_stages=1 if bk == 8192 else 3)
    for rpdl in ((False, True) if pdl else (False,)):
        sig = {"ws_ptr": "*fp32", "out_ptr": "*fp32", "bias_ptr": "*bf16", "xs_ptr": "*bf16", "wsc_ptr": "*bf16",
               "M": "i32", "N": "i32"}
        consts = {"SPLIT_K": 28, "BLOCK_S": 32, "BLOCK": 128, "HAS_BIAS": True, "HAS_SCALE": False, "USE_PDL": rpdl}
        sig.update({k: "constexpr" for k in consts})
        compile_one(f"ll_gemm reduce pdl={rpdl}", _ll_gemm_reduce_kernel, sig, consts,
                    {(i,): D16 for i in (0, 1, 2, 3, 4, 6)}, target, 4)
print(json.dumps(results))
'''


SCALED_MM_ROWS = {"sm90": 14 + 2 + 7 + 6, "sm80": 3 + 2, "gfx942": 3 + 2}  # sm90: + the Gluon kernels
LL_GEMM_ROWS = {"sm90": 11 + 4 + 2 + 2, "sm80": 7 + 1, "gfx942": 11 + 1}  # sm80: no fp8 case; sm90: 4 in clusters, 2 bulk


def _fp8_refused(row) -> bool:
    """The one expected failure: Triton has no fp8e4nv below sm89 (the op refuses fp8 there too)."""
    return row["target"] == "sm80" and "fp8e4nv" in row["case"] and "fp8e4nv not supported" in row.get("error", "")


@pytest.fixture(scope="module")
def compiled():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("target", ["sm90", "sm80", "gfx942"])
def test_every_kernel_and_mode_compiles(compiled, target):
    rows = [r for r in compiled if r["target"] == target]
    assert len(rows) == 12 + 18 + 12 + 14 + 10 + 12 + 10 + SCALED_MM_ROWS[target] + LL_GEMM_ROWS[target]  # norm, gated activation, rotary, sampling, packing, context parallel, kv cache, scaled_mm, ll_gemm
    failed = [r for r in rows if not r["ok"] and not _fp8_refused(r)]
    if failed and all("not found" in r["error"].lower() or "no such file" in r["error"].lower() for r in failed):
        pytest.skip(f"{target} toolchain missing here: {failed[0]['error'][:200]}")
    assert not failed, failed


def test_descriptor_mode_lowers_to_tma_on_hopper(compiled):
    rows = [r for r in compiled if r["target"] == "sm90" and r["ok"]]
    tma = {r["case"]: r["tma"] for r in rows}
    assert all(v for k, v in tma.items() if "mode=2" in k), tma
    assert not any(v for k, v in tma.items() if "mode=0" in k), tma


def test_pointer_mode_loads_16_bytes_on_hopper(compiled):
    rows = [r for r in compiled if r["target"] == "sm90" and r["ok"] and "mode=0" in r["case"]]
    assert rows and all(r["vec16"] for r in rows), [r["case"] for r in rows if not r["vec16"]]


def test_pdl_variants_wait_on_the_grid_dependency_on_hopper(compiled):
    rows = [r for r in compiled if r["target"] == "sm90" and r["ok"] and "pdl=" in r["case"]]
    gdc = {r["case"]: r["gdc"] for r in rows}
    assert any("pdl=True" in k for k in gdc), gdc
    assert all(v == ("pdl=True" in k) for k, v in gdc.items()), gdc


def test_scaled_mm_uses_the_tensor_cores(compiled):
    """wgmma on sm90 wherever a warpgroup's 64 rows fit the tile (mma.sync for 16-row tiles),
    mma.sync on sm80, MFMA on gfx942; descriptors lower to TMA (test above); fp8 refused on sm80."""
    rows = [r for r in compiled if r["case"].startswith("scaled_mm mode=")]
    for r in rows:
        if _fp8_refused(r):
            continue
        if not r["ok"]:
            continue  # reported (or skipped for a missing toolchain) by test_every_kernel_and_mode_compiles
        assert r["mma"], r["case"]
        if r["target"] == "sm90":
            assert r["wgmma"] == (" 16x" not in r["case"] or "swap_ab=True" in r["case"]), r["case"]
    sm80_fp8 = [r for r in rows if r["target"] == "sm80" and "fp8e4nv" in r["case"]]
    assert sm80_fp8 and all(not r["ok"] for r in sm80_fp8), "Triton compiled fp8e4nv for sm80: the op's guard is stale"


def _sm90_built(compiled, prefix, count):
    """The built rows of the `count` sm90-only cases named `prefix`...; skips (with the first error)
    when none built here."""
    rows = [r for r in compiled if r["case"].startswith(prefix)]
    assert len(rows) == count and all(r["target"] == "sm90" for r in rows), [r["case"] for r in rows]
    built = [r for r in rows if r["ok"]]
    if not built:
        pytest.skip(f"no sm90 build here: {rows[0].get('error', '')[:200]}")
    return rows, built


def test_swap_ab_decode_tile_runs_on_wgmma_on_hopper(compiled):
    """SWAP_AB (ops/scaled_mm.py): the 16-row decode tile transposed runs on wgmma m64n16k32, fp8
    natively (no e4m3 -> f16 widening), where the unswapped fp8 tile takes mma.sync on f16 widened
    from e4m3 (Triton 3.6 has no sm90 fp8 mma.sync)."""
    rows = [r for r in compiled if r["target"] == "sm90" and r["ok"] and r["case"].startswith("scaled_mm mode=")
            and " 16x64" in r["case"]]
    if not rows:
        pytest.skip("no sm90 scaled_mm build here (see test_every_kernel_and_mode_compiles)")
    swapped = [r for r in rows if "swap_ab=True" in r["case"]]
    assert len(swapped) == 4 and all(r["wgmma"] and r["cvt_e4m3"] == 0 and r["gdc"] for r in swapped), swapped
    plain = [r for r in rows if "swap_ab=False" in r["case"] and "fp8e4nv" in r["case"]]
    assert plain and all(not r["wgmma"] and r["cvt_e4m3"] > 0 for r in plain), [r["case"] for r in plain]


def test_int8_wgmma_waits_every_k_step_on_hopper(compiled):
    """Why int8 tiles run two programs an SM (ops/scaled_mm.heuristic_config, the tuner's 3-stage
    tiles): Triton 3.6 keeps a wgmma in flight across K steps only with an fp32 accumulator, so the
    int8 loops wait for every group (wait_group 0) while fast-accumulation fp8 keeps one in flight.
    A Triton that lifts this fails here: then re-tune the int8 tables (results/h100/README.md,
    session 16)."""
    rows = [r for r in compiled if r["target"] == "sm90" and r["ok"] and r["wgmma"]
            and r["case"].startswith("scaled_mm mode=")]
    int8 = [r for r in rows if " i8 " in r["case"]]
    fast_fp8 = [r for r in rows if "fp8e4nv" in r["case"] and "fast=True" in r["case"]]
    if not rows:
        pytest.skip("no sm90 scaled_mm build here (see test_every_kernel_and_mode_compiles)")
    assert int8 and fast_fp8
    assert not any(r["wgmma_in_flight"] for r in int8), [r["case"] for r in int8 if r["wgmma_in_flight"]]
    assert all(r["wgmma_in_flight"] for r in fast_fp8), [r["case"] for r in fast_fp8 if not r["wgmma_in_flight"]]


def test_gluon_wgmma_kernel_keeps_a_group_in_flight_on_hopper(compiled):
    """kernels/scaled_mm_wgmma.py: int8 too waits only for the previous K step's wgmmas
    (wait_group 1; 2 where a tile has two accumulators, each its own group), its operands through
    TMA, griddepcontrol exactly in the PDL variants."""
    _, built = _sm90_built(compiled, "scaled_mm_wgmma", 7)
    for r in built:
        assert r["wgmma"] and r["wgmma_in_flight"] and r["tma"], r["case"]
        assert r["wgmma_waits"] == (["0", "2"] if "+0x" not in r["case"] else ["0", "1"]), (r["case"], r["wgmma_waits"])
        assert r["gdc"] == ("pdl=True" in r["case"]), r["case"]


def test_ws_kernel_specialises_its_warps_on_hopper(compiled):
    """kernels/scaled_mm_ws.py: partitions that move registers among themselves (setmaxnreg), the
    consumer's K steps waiting only for the previous step's wgmmas, operands through TMA,
    griddepcontrol exactly in the PDL variants, a TMA store exactly in the TMA_STORE ones."""
    rows, built = _sm90_built(compiled, "scaled_mm_ws", 6)
    assert len(built) == len(rows), [r.get("error") for r in rows if not r["ok"]]
    for r in built:
        assert r["setmaxnreg"] and r["wgmma"] and r["tma"], r["case"]
        assert r["wgmma_waits"] == ["0", "1"], (r["case"], r["wgmma_waits"])
        assert r["gdc"] == ("pdl=True" in r["case"]), r["case"]
        assert r["tma_store"] == ("tma_store=True" in r["case"]), r["case"]


def test_l2_prefetch_exactly_where_asked_on_hopper(compiled):
    """prefetch.global.L2 (before the PDL wait) in exactly the sm90 variants named prefetch=True:
    rms_norm in pointer mode with PDL, and ll_gemm's PREFETCH configs."""
    rows = [r for r in compiled if r["target"] == "sm90" and r["ok"]]
    pre = {r["case"]: r["prefetch"] for r in rows}
    assert sum(v for k, v in pre.items() if k.startswith("rms_norm")) == 2, pre
    assert all(v == ("prefetch=True" in k) for k, v in pre.items()), pre


def test_scaled_mm_decode_tiles_read_scales_before_the_k_loop(compiled):
    """sm90: the decode tile (16 x 64) loads its per-token and per-channel scales before its first
    operand tile (kernels/scaled_mm.py, EARLY_EPILOGUE); the 128 x 256 tile still reads them in its
    epilogue."""
    rows = {r["case"]: r for r in compiled if r["target"] == "sm90" and r["ok"] and r["case"].startswith("scaled_mm mode=0")}
    decode = [r for k, r in rows.items() if " 16x64x256 " in k]
    large = [r for k, r in rows.items() if " 128x256x128 " in k]
    assert decode and large, sorted(rows)
    assert all(r["scalar_load_first"] for r in decode), decode
    assert not any(r["scalar_load_first"] for r in large), large


def test_ll_gemm_pdl_prefetch_and_wide_loads(compiled):
    """sm90: griddepcontrol.wait exactly in the PDL variants, prefetch.global.L2 only where asked,
    16-byte weight loads; the dots on the tensor cores everywhere (mma.sync at 16 rows, MFMA on gfx942)
    but the 8-row transposed tile on gfx942."""
    rows = [r for r in compiled if r["case"].startswith("ll_gemm") and r["ok"]]
    assert rows
    for r in rows:
        assert r["gdc"] == ("pdl=True" in r["case"]), r["case"]
        assert r["prefetch"] == ("prefetch=True" in r["case"]), r["case"]
        assert r["bulk_prefetch"] == ("prefetch=bulk" in r["case"]), r["case"]  # BULK_PREFETCH: no line prefetch
        if "dot=True" in r["case"]:
            # but the 8-row transposed tile on gfx942, which Triton 3.6 lowers to FMAs (no MFMA with
            # an N of 8): the heuristic keeps it off HIP (ops/small_gemm._dot_split_config)
            assert r["mma"] == (r["target"] != "gfx942" or " 8x16x512" not in r["case"]), r["case"]
        if r["target"] == "sm90" and "reduce" not in r["case"] and " 1x2x256" not in r["case"]:
            assert r["vec16"], r["case"]  # (a 1 x 2 x 256 tile is 4 bf16 a thread of 4 warps: 8-byte loads)
    # the scales are read right after the wait, before the weight tile, not after the K loop
    # (kernels/small_gemm._epilogue_operands): the M = 1 fp8 router's PTX loads them first
    router = [r for r in rows if r["target"] == "sm90" and r["case"].startswith("ll_gemm fp8e4nv->fp32 1x4x8192")]
    assert len(router) == 1 and router[0]["scalar_load_first"], router
    # fp8 dot tiles widen to fp16, one cvt per e4m3 pair; the bf16 widening added a cvt.bf16.f16 per
    # element and ran the same tiles in up to 2.2x the time (results/h100/probe_fp8_widen.md)
    fp8_dots = [r for r in rows if r["target"] == "sm90" and r["case"].startswith("ll_gemm fp8e4nv") and "dot=True" in r["case"]]
    assert fp8_dots and all(r["cvt_bf16_f16"] == 0 for r in fp8_dots), fp8_dots
    # SWAP_AB: 64 weight rows a program put the transposed tile on sm90's wgmma (m64n16); 16-column
    # tiles stay on mma.sync (probe_swap_ll_gemm.md: the wgmma tiles lost, the 8-row mma.sync won)
    swapped = {r["case"].split(" split")[0]: r["wgmma"] for r in rows
               if r["target"] == "sm90" and "swap=True" in r["case"] and "cluster" not in r["case"]}
    assert swapped == {"ll_gemm bf16->fp32 8x16x512": False, "ll_gemm fp8e4nv->fp32 8x16x512": False,
                       "ll_gemm fp16->fp16 16x64x256": True}, swapped
    # the cluster finish's bulk copies into peers' shared memory, in exactly the cluster cases (among
    # them a 1 x 2 FMA tile: 2 fp32 elements, copies padded to 16 bytes, kernels/cluster.slice_bytes)
    clustered = {r["case"].split(" split")[0]: r["cluster_copy"] for r in rows if r["target"] == "sm90" and r["cluster_copy"]}
    assert clustered == {"ll_gemm cluster bf16->fp32 8x16x512": True, "ll_gemm cluster fp8e4nv->bf16 16x16x1024": True,
                         "ll_gemm cluster bf16->bf16 16x2x256": True, "ll_gemm cluster bf16->fp32 1x2x256": True}, clustered
    # ... each waiting for its peers' slices on a clock, trapping past WAIT_LIMIT_NS (never a hang)
    bounded = {r["case"].split(" split")[0] for r in rows if r["target"] == "sm90" and r.get("bounded_wait")}
    assert bounded == set(clustered), bounded
