"""The measurement scripts under scripts/ keep running against the current kernels."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_measure_overhead_writes_its_measurements(tmp_path):
    report = tmp_path / "overhead.json"
    command = [sys.executable, str(SCRIPTS / "measure_overhead.py"), "--repeats", "1", "--passes", "1"]
    command += ["--cols", "32", "--json", str(report)]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    measured = json.loads(report.read_text())
    assert {row["op"] for row in measured["overhead"]} == {"log_softmax", "softmax", "logsumexp"}
    assert all(row["lsm_us"] > 0 and row["scipy_us"] > 0 for row in measured["overhead"])
    assert {row["elements"] for row in measured["crossover"]} >= {1024, 262144}
    assert all(row["serial_us"] > 0 and row["parallel_us"] > 0 for row in measured["crossover"])


def test_gpu_bench_formats_its_table():
    """scripts/gpu_bench.py needs a GPU to measure; here its arguments and table are checked."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPTS / "gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.parse_args(["--out", "results", "--cols", "32", "1024"])
    assert args.cols == [32, 1024] and args.megabytes == 256 and args.dtypes == ["float32", "float16"]
    record = {"dtype": "float32", "rows": 8, "cols": 32, "axis": -1, "op": "softmax", "lsm_gbs": 1500.0}
    record.update(fraction_of_copy=0.9, vs_cupyx=3.5)
    table = bench.markdown([record], {"lsm_softmax_us": 12.5}, "Some GPU")
    assert "| float32 | -1 | 8 x 32 | softmax | 1500 | 90% | 3.50x | - |" in table
    assert "lsm_softmax_us 12.5" in table and table.startswith("GPU: Some GPU")
    assert bench.moved_bytes("logsumexp", 100) == 100 and bench.moved_bytes("softmax", 100) == 200
