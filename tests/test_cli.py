"""The command line: info and verify run here (interpreter on a CPU machine); bench refuses without a GPU."""
import subprocess
import sys

import pytest
import torch


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "lmkernels.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_info_names_versions_device_and_modes():
    p = _cli("info")
    assert p.returncode == 0, p.stderr
    for word in ("torch", "triton", "device", "access", "pointer"):
        assert word in p.stdout
    if not torch.cuda.is_available():
        assert "CPU, Triton interpreter" in p.stdout


def test_verify_one_op_passes_and_prints_a_table():
    p = _cli("verify", "--ops", "silu_and_mul")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "| silu_and_mul |" in p.stdout and " 0 failed" in p.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_bench_refuses_without_gpu():
    p = _cli("bench", "norm")
    assert p.returncode != 0 and "needs a GPU" in p.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_tune_refuses_without_gpu():
    p = _cli("tune", "scaled-mm", "--nk", "4096,4096", "--dtype", "int8")
    assert p.returncode == 2 and "needs a GPU" in p.stderr


@pytest.mark.parametrize("args, says", [
    (["--nk", "4096", "--dtype", "int8"], "argument --nk: expected N,K (two positive integers, e.g. 4096,14336), got '4096'"),
    (["--nk", "0,4096", "--dtype", "int8"], "N and K must be positive, got '0,4096'"),
    (["--nk", "4096,4096", "--dtype", "int4"], "argument --dtype: invalid choice: 'int4'"),
    (["--nk", "4096,4096"], "the following arguments are required: --dtype"),
    (["--dtype", "fp8"], "the following arguments are required: --nk"),
    (["--nk", "4096,4096", "--dtype", "fp8", "--m", "1,0"], "M values must be positive integers, got '1,0'"),
    (["--nk", "4096,4096", "--dtype", "fp8", "--m", "1,x"], "expected comma-separated positive integers"),
    (["--nk", "4096,4096", "--dtype", "fp8", "--max-minutes", "0"], "the budget must be positive, got '0'"),
    (["--nk", "4096,4096", "--dtype", "fp8", "--compile-workers", "-2"], "expected a whole number >= 0, got '-2'"),
])
def test_tune_argument_errors_are_clear(capsys, args, says):
    from lmkernels.cli import main
    with pytest.raises(SystemExit) as e:
        main(["tune", "scaled-mm", *args])
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_tune_needs_an_op(capsys):
    from lmkernels.cli import main
    with pytest.raises(SystemExit):
        main(["tune"])
    assert "OP" in capsys.readouterr().err


def test_bench_scaled_mm_cases_build_without_running_kernels():
    """The family's case list is data plus makers: building it allocates nothing and runs nothing."""
    from lmkernels.bench import scaled_mm as fam
    from lmkernels.cli import BENCH_FAMILIES
    assert "scaled_mm" in BENCH_FAMILIES
    cases = fam.cases()
    assert len(cases) == 2 * (4 * 5 + 4 * 2)
    for op, shape, dtype, nbytes, providers, extra in cases:
        M, N, K = (int(part.split("=")[1]) for part in shape.split())
        assert op == "scaled_mm" and extra["flops"] == 2 * M * N * K
        assert nbytes == M * K + N * K + 2 * M * N + 4 * (M + N)
        assert (extra["weight_bytes"] == N * K) == (M <= 16) == extra["copy_row"]
        assert "lmkernels" in providers and "lmkernels heuristic" in providers
        assert "cuBLAS bf16 torch.mm (unquantised)" in providers
        fp8 = dtype.startswith("fp8")
        assert ("torch._scaled_mm row-wise (cuBLASLt), fast accumulation" in providers) == fp8
        assert ("torch._scaled_mm row-wise (cuBLASLt), default precise accumulation" in providers) == fp8
        assert ("lmkernels precise accumulation (FP8_FAST_ACCUM=False)" in providers) == (fp8 and M >= 1024)
        assert ("torch._int_mm + scale epilogue" in providers) == (dtype.startswith("int8") and M > 16)


def test_harness_tables_add_matmul_columns_only_when_rows_have_them(tmp_path):
    from lmkernels.bench.harness import Row, Table
    plain = Table("norm", 3000.0, [Row("rms_norm", "T=1", "bf16", "x", 2.0, 100.0, 0.03, 5.0)])
    assert plain.markdown().splitlines()[4:] == [
        "| op | shape | dtype | provider | µs (graph median) | GB/s | of copy BW | host µs/call | note |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
        "| rms_norm | T=1 | bf16 | x | 2.00 | 100 | 0.030 | 5.0 |  |"]
    plain.write_csv(tmp_path / "a.csv")
    assert (tmp_path / "a.csv").read_text().splitlines()[0] == \
        "op,shape,dtype,provider,us,gbs,frac_copy,host_us,copy_gbs,note"
    mm = Table("mm", 3000.0, [Row("scaled_mm", "M=1", "int8", "x", 10.0, 1700.0, 0.57, 9.0, tflops=3.4,
                                  weight_gbs=1680.0, weight_frac=0.56),
                              Row("scaled_mm", "M=4096", "int8", "x", 900.0, 50.0, 0.02, None, tflops=600.0)])
    lines = mm.markdown().splitlines()
    assert "| of copy BW | TFLOP/s | weight GB/s | weight of copy BW | host µs/call |" in lines[4]
    assert lines[6].endswith("| 0.570 | 3.4 | 1680 | 0.560 | 9.0 |  |")
    assert lines[7].endswith("| 0.020 | 600.0 |  |  |  |  |")
    mm.write_csv(tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_text().splitlines()[0].endswith(",note,tflops,weight_gbs,weight_frac_copy")
    # a one-input-set time (ANCHORS' method) adds its columns, empty where unmeasured
    mm.rows[0].warm_us, mm.rows[0].warm_gbs = 7.5, 1234.5
    lines = mm.markdown().splitlines()
    assert ("| weight of copy BW | µs, one input set (L2-warm, ANCHORS' method) | GB/s, one input set "
            "| host µs/call |") in lines[4]
    assert lines[6].endswith("| 0.560 | 7.50 | 1234 | 9.0 |  |") and lines[7].endswith("| 600.0 |  |  |  |  |  |  |")
    mm.write_csv(tmp_path / "c.csv")
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert rows[0].endswith(",weight_frac_copy,warm_us,warm_gbs") and rows[1].endswith(",7.500,1234.5")


@pytest.mark.parametrize("n, block", [(1, 128), (1000, 128), (4096, 4096), (5000, 4096)])
def test_bench_copy_kernel_copies_every_element(device, on_gpu, n, block):
    """The best-copy row's kernel (bench/copies.py): all n elements, nothing past them (PDL only on
    a GPU: the interpreter has no grid dependency)."""
    from lmkernels.bench import copies
    g = torch.Generator().manual_seed(n)
    src = torch.randn(n, generator=g).to(device=device, dtype=torch.bfloat16)
    buf = torch.full((n + 64,), float("nan"), device=device, dtype=torch.bfloat16)
    copies.copy(src, buf[:n], block, 4, pdl=on_gpu and torch.cuda.get_device_capability()[0] >= 9)
    assert torch.equal(buf[:n], src) and buf[n:].isnan().all()


def test_best_copy_row_takes_the_fastest_and_names_it(monkeypatch):
    """harness.best_copy_row on stand-in timings: the minimum over torch.add's row and each PDL copy,
    the note listing them all; the torch.add row left out when it failed (NaN)."""
    from lmkernels.bench import copies, harness
    fake = iter([11.0, 9.5, 10.0, 12.0, 9.9] * 2)
    monkeypatch.setattr(harness, "copy_buffers", lambda nbytes: lambda i: (None, None))
    monkeypatch.setattr(harness, "graph_us", lambda calls: next(fake))
    t = harness.Table("t", 3000.0)
    add = harness.Row("rms_norm", "T=4096", "bf16", harness.COPY_ROW, 10.5, 0, 0, None)
    row = harness.best_copy_row(t, "rms_norm", "T=4096", "bf16", 25_000_000, 4, add)
    assert row.provider == copies.BEST_COPY_ROW and row.us == 9.5
    assert row.gbs == pytest.approx(25_000_000 / 9.5 / 1e3) and row.frac_copy == pytest.approx(row.gbs / 3000.0)
    assert row.note.startswith("fastest: Triton PDL copy 4096 x 8 warps; torch.add 10.50, ")
    assert row.note.count("Triton PDL copy") == 1 + len(copies.PDL_COPIES)  # the fastest, then each
    add.us = float("nan")
    row = harness.best_copy_row(t, "rms_norm", "T=4096", "bf16", 25_000_000, 4, add)
    assert "torch.add" not in row.note and row.us == 9.5
