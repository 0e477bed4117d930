"""``lsm bench`` end to end, and the regression gate on what it writes.

One tiny real sweep per module (1e3 elements, two rounds per case) feeds every test: the files
it writes are valid, and the gate passes on identical input and fails on an injected regression.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_benchmark.stats import Stats

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--size", "1e3", "--time", "0.001", "--rounds", "2", "--dtype", "float32", "float64"]
TINY += ["--op", "softmax", "logsumexp", "--impl", "lsm", "lsm_alloc", "numpy"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(*command, check=True):
    return subprocess.run(
        [sys.executable, *map(str, command)],
        capture_output=True,
        text=True,
        check=check,
        timeout=600,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The output folder and stdout of a tiny ``python -m lsm bench`` run."""
    out = tmp_path_factory.mktemp("bench")
    return out, run("-m", "lsm", "bench", *TINY, "--out", out).stdout


@pytest.fixture(scope="module")
def results(sweep):
    return json.loads((sweep[0] / "lsm-bench-cpu.json").read_text())


def test_bench_prints_the_table_and_names_its_files(sweep):
    out, stdout = sweep
    assert (
        "| op | backend | dtype | shape | axis | copy GB/s | lsm | lsm_alloc | numpy | lsm / best peer |"
        in stdout
    )
    assert "20 cases timed, 0 skipped, 0 failed" in stdout
    for suffix in ("json", "md", "png"):
        assert f"wrote {out / f'lsm-bench-cpu.{suffix}'}" in stdout


def test_bench_json_has_pytest_benchmarks_layout_and_the_figures(results):
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(results)
    machine = results["machine_info"]
    assert machine["numba_num_threads"] >= 1 and machine["numba_threading_layer"]
    assert machine["cpu"]["count"] >= 1 and machine["python_version"]
    assert len(results["commit_info"]["id"]) == 40  # run in the checkout: its commit
    assert len(results["benchmarks"]) == 20  # 2 dtypes x 2 axes x (softmax: 3 impls + logsumexp: 2)
    for bench in results["benchmarks"]:
        assert {"group", "name", "fullname", "params", "extra_info", "options", "stats"} <= set(bench)
        stats, info = bench["stats"], bench["extra_info"]
        assert set(stats) == {*Stats.fields, "iterations"}
        assert stats["rounds"] >= 2 and 0 < stats["min"] <= stats["median"] <= stats["max"]
        assert info["shape"] == [10, 100] and info["dtype"] in ("float32", "float64")
        assert info["gbps"] == pytest.approx(info["bytes_moved"] / stats["median"] / 1e9)
        assert info["fraction_of_copy"] == pytest.approx(info["gbps"] / info["copy_gbps"])
        # the reference is the fastest of the copies timed beside the group, and says which
        assert {"numba", "numpy"} <= set(info["copy_gbps_by_kind"])
        assert info["copy_gbps"] == max(info["copy_gbps_by_kind"].values())
        assert info["copy_gbps"] == info["copy_gbps_by_kind"][info["copy_kind"]]
        assert info["best_gbps"] == pytest.approx(info["bytes_moved"] / stats["min"] / 1e9)
        assert bench["group"] == f"{info['op']} cpu {info['dtype']} 10x100 axis={info['axis']}"
    by_name = {bench["name"]: bench["extra_info"] for bench in results["benchmarks"]}
    lsm = by_name["softmax-cpu-float32-10x100-axis0-lsm"]
    numpy = by_name["softmax-cpu-float32-10x100-axis0-numpy"]
    assert lsm["copy_gbps"] == numpy["copy_gbps"]  # one copy per group, timed with it
    assert lsm["ratio_to_numpy"] == pytest.approx(lsm["gbps"] / numpy["gbps"])
    assert numpy["ratio_to_lsm"] == pytest.approx(1 / lsm["ratio_to_numpy"])
    assert lsm["traced_peak_bytes"] >= 0 and "traced_peak_bytes" not in numpy


def test_bench_writes_a_png_and_a_markdown_table(sweep):
    out, _ = sweep
    assert (out / "lsm-bench-cpu.png").read_bytes().startswith(PNG_SIGNATURE)
    from matplotlib.image import imread

    height, width, _ = imread(out / "lsm-bench-cpu.png").shape
    assert width > 800 and height > 600
    table = (out / "lsm-bench-cpu.md").read_text()
    assert table.startswith("Measured on ")
    assert table.count("\n| softmax | cpu |") == 4 and table.count("\n| logsumexp | cpu |") == 4


def test_gate_passes_on_identical_results(sweep):
    path = sweep[0] / "lsm-bench-cpu.json"
    completed = run(ROOT / "scripts" / "bench_compare.py", path, path)
    assert "20 cases compared on fraction_of_copy, threshold 10%" in completed.stdout
    assert "OK: no case regressed" in completed.stdout


def test_gate_fails_naming_an_injected_regression(sweep, results, tmp_path):
    slower = copy.deepcopy(results)
    victim = next(b["extra_info"] for b in slower["benchmarks"] if b["extra_info"]["impl"] == "lsm")
    victim["fraction_of_copy"] *= 0.8
    del slower["benchmarks"][-1]
    current = tmp_path / "current.json"
    current.write_text(json.dumps(slower))
    baseline = sweep[0] / "lsm-bench-cpu.json"
    completed = run("-m", "lsm.bench.compare", baseline, current, check=False)
    assert completed.returncode == 1
    name = f"softmax-cpu-{victim['dtype']}-10x100-axis{victim['axis']}-lsm"
    assert f"REGRESSED (1):\n  {name}: " in completed.stdout
    assert "(-20.0%)" in completed.stdout
    assert "only in the baseline (ignored) (1):" in completed.stdout
    assert "FAILED: 1 cases regressed by more than 10%" in completed.stdout
    # A looser threshold lets the same fall pass.
    assert run("-m", "lsm.bench.compare", baseline, current, "--threshold", "25%").returncode == 0


def test_gate_refuses_files_without_results(sweep, tmp_path):
    other = tmp_path / "other.json"
    other.write_text("{}")
    completed = run(
        ROOT / "scripts" / "bench_compare.py", sweep[0] / "lsm-bench-cpu.json", other, check=False
    )
    assert completed.returncode == 2
    assert "no 'benchmarks' list" in completed.stderr


@pytest.mark.parametrize("command", ["demo", "info"])
def test_demo_and_info_do_not_import_the_benchmarks(command):
    # what the command imported, printed even if the command itself fails (that is not tested here)
    code = f"import sys\nfrom lsm.__main__ import main\ntry:\n    main([{command!r}])\nfinally:\n"
    code += "    print(sorted(m for m in sys.modules if m.startswith('lsm.bench')))"
    assert run("-c", code, check=False).stdout.splitlines()[-1] == "[]"


def test_help_names_no_file_outside_the_package():
    text = run("-m", "lsm", "bench", "--help").stdout
    assert "python -m lsm.bench.compare BASELINE.json CURRENT.json" in text
    assert "scripts/" not in text and ".py" not in text


def test_the_row_sweep_reports_its_cliffs(tmp_path):
    """``--row-sweep 128``: groups of 32, 64 and 128 of 128 elements in all, rows and columns,
    and the cliffs between neighbouring lengths after the table (and in the markdown file)."""
    sweep = ["--row-sweep", "128", "--op", "logsumexp", "--dtype", "float32", "--impl", "lsm"]
    completed = run(
        "-m", "lsm", "bench", *sweep, "--time", "0.001", "--rounds", "2", "--no-plot", "--out", tmp_path
    )
    assert "6 cases timed, 0 skipped, 0 failed" in completed.stdout
    shapes = {(tuple(b["extra_info"]["shape"]), b["extra_info"]["axis"]) for b in _results(tmp_path)}
    assert shapes == {((4, 32), -1), ((2, 64), -1), ((1, 128), -1), ((32, 4), 0), ((64, 2), 0), ((128, 1), 0)}
    verdict = "No cliff" if "No cliff" in completed.stdout else "Cliffs ("
    assert verdict in completed.stdout and verdict in (tmp_path / "lsm-bench-cpu.md").read_text()


def _results(folder):
    return json.loads((folder / "lsm-bench-cpu.json").read_text())["benchmarks"]
