"""The goal cases of issue 3, the goal table on made-up results, and the startup measurement."""

import json

import pytest

from lsm.bench import startup
from lsm.bench.backends import BACKENDS, Implementation
from lsm.bench.cases import Case, make_cases
from lsm.bench.goals import goal_cases, goal_table
from lsm.bench.sweep import add_arguments, run

CPU = BACKENDS["cpu"]


def test_make_cases_takes_shape_and_axis_pairs():
    pairs = [((4, 8, 6), 1), ((5, 7), 0), ((4, 8, 6), -1), ((5, 7), 0)]
    cases = make_cases(CPU, ops=["softmax"], dtypes=["float32"], impls=["lsm"], inputs=pairs)
    assert [(case.shape, case.axis) for case in cases] == [((4, 8, 6), 1), ((4, 8, 6), -1), ((5, 7), 0)]


def test_goal_cases_cover_every_goal_layout_and_leave_large_inputs_out():
    cases = goal_cases(CPU)
    layouts = {(case.shape, case.axis) for case in cases}
    assert {((64, 1024, 256), 1), ((8192, 1024), 0), ((32, 1048576), -1), ((100,), -1)} <= layouts
    assert max(case.elements for case in cases) < 10**8
    assert max(case.elements for case in goal_cases(CPU, large=True)) == 262144 * 1024
    series = [case for case in cases if case.shape == (10000, 1000)]
    assert {case.impl for case in series} == {"lsm"}  # goal 7 times lsm alone
    assert {case.dtype for case in cases if case.shape == (262144, 32)} == {"float16", "float32", "float64"}
    assert len({case.id for case in cases}) == len(cases)
    only = goal_cases(CPU, ops=["logsumexp"], impls=["lsm", "scipy"])
    assert {(case.op, case.impl) for case in only} == {("logsumexp", "lsm"), ("logsumexp", "scipy")}


def test_without_jax_the_jax_cases_are_left_out(monkeypatch):
    monkeypatch.setattr(Implementation, "installed", lambda impl: impl.module != "jax")
    assert "jax" not in {impl.name for impl in CPU.implementations}
    impls = {case.impl for case in goal_cases(CPU)}
    assert "jax" not in impls and {"lsm", "numpy", "torch_out"} <= impls


def _info(op, dtype, shape, axis, impl, gbps, **more):
    """A timed case's extra_info with made-up figures (copy at 20 GB/s)."""
    case = Case(op, "cpu", dtype, shape, axis, impl)
    figures = {"gbps": gbps, "median_s": case.bytes_moved / gbps / 1e9, "copy_gbps": 20.0}
    return {**case.describe(), **figures, "fraction_of_copy": gbps / 20.0, **more}


def _line(*cells):
    return "| " + " | ".join(cells) + " |"


def _table(infos, startups=()):
    entries = [{"extra_info": info} for info in infos] + [startup.entry(info) for info in startups]
    return goal_table({"benchmarks": entries})


def test_goal_table_judges_each_case_against_its_peer_and_the_copy():
    table = _table(
        [
            _info("log_softmax", "float32", (262144, 32), -1, "lsm", 12.0),
            _info("log_softmax", "float32", (262144, 32), -1, "torch_out", 10.0),
            _info("softmax", "float32", (64, 1024, 256), 1, "lsm", 5.0),
            _info("softmax", "float32", (64, 1024, 256), 1, "torch_out", 10.0),
            _info("softmax", "float32", (64, 1024, 256), 1, "lsm_alloc", 5.0),
        ]
    )
    rows = table.splitlines()
    assert rows[0] == "| goal | case | lsm | peer | ratio | target | met |"
    assert (
        _line(
            "1",
            "log_softmax float32 262144x32 axis -1",
            "12.00 GB/s",
            "torch_out 10.00 GB/s",
            "1.20",
            ">= 1.2",
            "yes",
        )
        in rows
    )
    assert (
        _line(
            "1",
            "softmax float32 64x1024x256 axis 1",
            "5.00 GB/s",
            "torch_out 10.00 GB/s",
            "0.50",
            ">= 1.2",
            "no",
        )
        in rows
    )
    assert (
        _line(
            "2", "softmax float32 64x1024x256 axis 1", "5.00 GB/s", "copy 20.00 GB/s", "0.25", ">= 0.5", "no"
        )
        in rows
    )
    assert (
        _line(
            "3a",
            "softmax float32 64x1024x256 axis 1 (lsm_alloc)",
            "5.00 GB/s",
            "torch not measured",
            "-",
            ">= 1.2",
            "-",
        )
        in rows
    )
    assert "- goal 1 (out=: >= 1.2x torch out=): met on 1 of 2" in rows
    assert not any(row.startswith("- goal 3a") for row in rows)  # nothing to judge without the peer


def test_goal_table_memory_small_inputs_spread_and_startup():
    warm = [{"import_s": 0.2, "first_call_s": 0.3, "process_s": 0.8}] * 3
    table = _table(
        [
            _info("log_softmax", "float16", (8192, 1024), 0, "lsm", 5.0, traced_peak_bytes=2**20),
            _info("log_softmax", "float32", (100,), -1, "lsm_alloc", 0.2),
            _info("log_softmax", "float32", (100,), -1, "scipy", 0.1),
            _info("logsumexp", "float32", (10, 1000), -1, "lsm", 1.0),  # 40 kB: not judged
            _info("logsumexp", "float32", (1000, 1000), -1, "lsm", 10.0),
            _info("logsumexp", "float32", (10000, 1000), -1, "lsm", 12.0),
            _info("logsumexp", "float32", (100000, 1000), -1, "lsm", 8.0),
        ],
        [startup.startup_info("softmax", warm, {"import_s": 0.5, "first_call_s": 2.0, "process_s": 3.0})],
    )
    rows = table.splitlines()
    assert (
        _line(
            "5c",
            "log_softmax float16 8192x1024 axis 0",
            "peak 1.00 MiB",
            "float32 copy 32.00 MiB",
            "0.03",
            "<= 0.5",
            "yes",
        )
        in rows
    )
    assert (
        _line(
            "6",
            "log_softmax float32 100 axis -1 (lsm_alloc)",
            "4.00 us",
            "scipy 8.00 us",
            "2.00",
            ">= 1",
            "yes",
        )
        in rows
    )
    assert (
        _line(
            "7",
            "logsumexp float32 1000x1000 .. 100000x1000",
            "8.00 .. 12.00 GB/s",
            "median 10.00 GB/s",
            "0.20",
            "<= 0.25",
            "yes",
        )
        in rows
    )
    assert (
        _line("8", "softmax float32 8x32", "0.50 s", "cold compile 2.50 s", "0.50", "<= 1 s", "yes") in rows
    )


def test_goals_refuse_their_own_shape_options(capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--goals", "--size", "1e3", "--no-plot"])) == 2
    assert "--goals picks its own shapes and axes" in capsys.readouterr().err


def test_startup_parses_the_child_output_and_summarises_runs():
    assert startup.parse('noise\n{"import_s": 0.1, "first_call_s": 0.2}\n') == {
        "import_s": 0.1,
        "first_call_s": 0.2,
    }
    for bad in ("", "not json", '{"import_s": 1}', "[1, 2]"):
        with pytest.raises(ValueError, match="no startup figures"):
            startup.parse(bad)
    runs = [{"import_s": 0.1 * i, "first_call_s": 0.2, "process_s": 1.0} for i in (1, 2, 3)]
    info = startup.startup_info("logsumexp", runs)
    assert info["warm_s"] == pytest.approx(0.4) and info["import_s"] == pytest.approx(0.2)
    assert "cold_s" not in info and info["rounds"] == 3
    entry = json.loads(json.dumps(startup.entry(info)))
    assert entry["stats"]["rounds"] == 3 and entry["extra_info"]["measure"] == "startup"
    table = startup.startup_table([info])
    assert "| logsumexp | float32 8x32 | 0.200 | 0.200 | 0.400 | 1.000 | - | yes |" in table
