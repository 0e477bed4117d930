"""The goal cases and the goal table (benchmarks/goals.py), and the startup measurement
(scripts/measure_startup.py): neither is shipped with lsm."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks import goals
from lsm.bench.backends import BACKENDS, Implementation
from lsm.bench.table import Case

CPU = BACKENDS["cpu"]
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(scope="module")
def startup():
    spec = importlib.util.spec_from_file_location("measure_startup", SCRIPTS / "measure_startup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_goal_cases_cover_every_goal_layout_and_leave_large_inputs_out():
    cases = goals.goal_cases(CPU)
    layouts = {(case.shape, case.axis) for case in cases}
    assert {((64, 1024, 256), 1), ((8192, 1024), 0), ((32, 1048576), -1), ((100,), -1)} <= layouts
    assert max(case.elements for case in cases) < 10**8
    assert max(case.elements for case in goals.goal_cases(CPU, large=True)) == 262144 * 1024
    assert {case.impl for case in cases if case.shape == (10000, 1000)} == {"lsm"}  # goal 7: lsm alone
    assert {case.dtype for case in cases if case.shape == (262144, 32)} == {"float16", "float32", "float64"}
    assert {case.op for case in cases} == {"log_softmax", "softmax", "logsumexp"}
    assert len({case.id for case in cases}) == len(cases)


def test_copy_limit_cases_time_lsm_beside_its_peer_only_and_keep_the_large_loss_inputs():
    cases = goals.goal_cases(CPU, goals=goals.COPY_LIMIT_GOALS)
    assert {case.op for case in cases} == {*goals.FORWARD, *goals.BACKWARD, "logsumexp", "cross_entropy"}
    assert {case.impl for case in cases} <= {"lsm", "torch_out", "torch", "jax"}
    loss_layouts = {(case.shape, case.axis) for case in cases if case.op == "cross_entropy"}
    assert loss_layouts == {((4096, 32000), -1), ((32000, 4096), 0)}  # 1.3e8 elements, kept
    assert {case.dtype for case in cases if case.shape == (64, 1000, 49)} == {"float16", "float32", "float64"}
    assert {case.impl for case in cases if case.op == "softmax_backward"} == {"lsm"}  # judged by the copy
    assert len({case.id for case in cases}) == len(cases)


def test_copy_limit_table_judges_losses_against_torch_and_backward_against_the_copy():
    infos = [
        _info("cross_entropy", "float32", (32000, 4096), 0, "lsm", 6.0),
        _info("cross_entropy", "float32", (32000, 4096), 0, "torch", 1.0),
        _info("softmax_backward", "float32", (64, 1000, 49), 1, "lsm", 10.0),
    ]
    table = goals.goal_table({"benchmarks": [{"extra_info": i} for i in infos]}, goals=goals.COPY_LIMIT_GOALS)
    rows = table.splitlines()
    case = "cross_entropy float32 32000x4096 axis 0"
    assert _line("X", case, "6.00 GB/s", "torch 1.00 GB/s", "6.00", ">= 5", "yes") in rows
    case = "softmax_backward float32 64x1000x49 axis 1"
    assert _line("B", case, "10.00 GB/s", "copy 20.00 GB/s", "0.50", ">= 0.6", "no") in rows
    assert "- goal B (backward: >= 0.6 of the copy): met on 0 of 1" in rows


def test_without_jax_the_jax_cases_are_left_out(monkeypatch):
    monkeypatch.setattr(Implementation, "installed", lambda impl: impl.module != "jax")
    impls = {case.impl for case in goals.goal_cases(CPU)}
    assert "jax" not in impls and {"lsm", "lsm_alloc", "numpy", "scipy"} <= impls


def _info(op, dtype, shape, axis, impl, gbps, **more):
    """A timed case's extra_info with made-up figures (copy at 20 GB/s)."""
    case = Case(op, "cpu", dtype, shape, axis, impl)
    figures = {"gbps": gbps, "median_s": case.bytes_moved / gbps / 1e9, "copy_gbps": 20.0}
    return {**case.describe(), **figures, "fraction_of_copy": gbps / 20.0, **more}


def _rows(infos, startup=()):
    table = goals.goal_table({"benchmarks": [{"extra_info": info} for info in infos]}, startup)
    return table.splitlines()


def _line(*cells):
    return "| " + " | ".join(cells) + " |"


def test_goal_table_judges_each_case_against_its_peer_and_the_copy():
    rows = _rows(
        [
            _info("log_softmax", "float32", (262144, 32), -1, "lsm", 12.0),
            _info("log_softmax", "float32", (262144, 32), -1, "torch_out", 10.0),
            _info("softmax", "float32", (64, 1024, 256), 1, "lsm", 5.0),
            _info("softmax", "float32", (64, 1024, 256), 1, "torch_out", 10.0),
            _info("softmax", "float32", (64, 1024, 256), 1, "lsm_alloc", 5.0),
        ]
    )
    assert rows[0] == "| goal | case | lsm | peer | ratio | target | met |"
    case = "log_softmax float32 262144x32 axis -1"
    assert _line("1", case, "12.00 GB/s", "torch_out 10.00 GB/s", "1.20", ">= 1.2", "yes") in rows
    case = "softmax float32 64x1024x256 axis 1"
    assert _line("1", case, "5.00 GB/s", "torch_out 10.00 GB/s", "0.50", ">= 1.2", "no") in rows
    assert _line("2", case, "5.00 GB/s", "copy 20.00 GB/s", "0.25", ">= 0.5", "no") in rows
    case += " (lsm_alloc)"
    assert _line("3a", case, "5.00 GB/s", "torch not measured", "-", ">= 1.2", "-") in rows
    assert "- goal 1 (out=: >= 1.2x torch out=): met on 1 of 2" in rows
    assert not any(row.startswith("- goal 3a") for row in rows)  # nothing to judge without the peer


def test_goal_table_memory_small_inputs_spread_and_startup():
    rows = _rows(
        [
            _info("log_softmax", "float16", (8192, 1024), 0, "lsm", 5.0, traced_peak_bytes=2**20),
            _info("log_softmax", "float32", (100,), -1, "lsm_alloc", 0.2),
            _info("log_softmax", "float32", (100,), -1, "scipy", 0.1),
            _info("logsumexp", "float32", (10, 1000), -1, "lsm", 1.0),  # 40 kB: not judged
            _info("logsumexp", "float32", (1000, 1000), -1, "lsm", 10.0),
            _info("logsumexp", "float32", (10000, 1000), -1, "lsm", 12.0),
            _info("logsumexp", "float32", (100000, 1000), -1, "lsm", 8.0),
        ],
        [{"op": "softmax", "shape": [8, 32], "warm_s": 0.5, "cold_s": 2.5}],
    )
    case = "log_softmax float16 8192x1024 axis 0"
    assert _line("5c", case, "peak 1.00 MiB", "float32 copy 32.00 MiB", "0.03", "<= 0.5", "yes") in rows
    case = "log_softmax float32 100 axis -1 (lsm_alloc)"
    assert _line("6", case, "4.00 us", "scipy 8.00 us", "2.00", ">= 1", "yes") in rows
    case = "logsumexp float32 1000x1000 .. 100000x1000"
    assert _line("7", case, "8.00 .. 12.00 GB/s", "median 10.00 GB/s", "0.20", "<= 0.25", "yes") in rows
    assert (
        _line("8", "softmax float32 8x32", "0.50 s", "cold compile 2.50 s", "0.50", "<= 1 s", "yes") in rows
    )
    assert goals.goal_table({"benchmarks": []}) == "(no goal case measured)"


def _shrunk(goal):
    """``goal`` on its layouts shrunk to at most 8 along each axis."""
    inputs = tuple((tuple(min(n, 8) for n in shape), axis) for shape, axis in goal.inputs)
    return dataclasses.replace(goal, inputs=tuple(dict.fromkeys(inputs)))


def test_goals_run_end_to_end_on_shrunk_inputs(monkeypatch, tmp_path, capsys):
    """The goal runner on the goals' layouts shrunk to at most 8 along each axis."""

    monkeypatch.setitem(goals.GOAL_SETS, "first", tuple(map(_shrunk, goals.GOALS)))
    assert goals.main(["--quick", "--no-startup", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| 2 | softmax float32 8x8x8 axis 1 |" in printed  # 64x1024x256 reduced along axis 1
    assert "| 6 | logsumexp float32 8 axis -1 |" in printed  # the 100-element array
    saved = json.loads((tmp_path / "lsm-goals-cpu.json").read_text())
    assert saved["startup"] == []
    assert {bench["extra_info"]["op"] for bench in saved["benchmarks"]} == {*goals.FORWARD, "logsumexp"}
    assert (tmp_path / "lsm-goals-cpu.md").read_text().startswith("Measured on ")


def test_startup_parses_the_child_output_and_summarises_runs(startup):
    assert startup.parse('noise\n{"import_s": 0.1, "first_call_s": 0.2}\n') == {
        "import_s": 0.1,
        "first_call_s": 0.2,
    }
    for bad in ("", "not json", '{"import_s": 1}', "[1, 2]"):
        with pytest.raises(ValueError, match="no startup figures"):
            startup.parse(bad)
    runs = [{"import_s": 0.1 * i, "first_call_s": 0.2} for i in (1, 2, 3)]
    info = startup.summary("logsumexp", runs)
    assert info["warm_s"] == pytest.approx(0.4) and info["import_s"] == pytest.approx(0.2)
    assert "cold_s" not in info
    assert "| logsumexp | float32 8x32 | 0.200 | 0.200 | 0.400 | - |" in startup.table([info])


def test_startup_times_a_fresh_process(startup):
    figures = startup.run_child("logsumexp")
    assert 0 < figures["import_s"] < 60 and 0 < figures["first_call_s"] < 600


def test_copy_limit_goals_run_end_to_end_on_shrunk_inputs(monkeypatch, tmp_path, capsys):
    """The issue-14 goals on their layouts shrunk to at most 8 along each axis (no startup run)."""

    monkeypatch.setitem(goals.GOAL_SETS, "copy-limit", tuple(map(_shrunk, goals.COPY_LIMIT_GOALS)))
    monkeypatch.setattr(goals, "measure_startup", lambda: pytest.fail("no goal of the set needs startup"))
    assert goals.main(["--set", "copy-limit", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| B | log_softmax_backward float32 8x8x8 axis 1 |" in printed
    assert "| X | cross_entropy float32 8x8 axis 0 |" in printed
