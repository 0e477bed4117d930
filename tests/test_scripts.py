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
