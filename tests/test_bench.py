"""The pieces of lsm.bench: the comparison table, the result check, the engine, the gate."""

import dataclasses
import importlib.util
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.stats import Stats

from lsm.bench import compare, engine, report, table
from lsm.bench.backends import BACKENDS, TorchBackend, parallel_copy
from lsm.bench.table import OPS, Case, case_key, check_result, make_cases, make_input, reference, shapes_of

CPU = BACKENDS["cpu"]
BASELINE = Path(__file__).resolve().parent.parent / "benchmarks" / "baselines" / "cpu-2core-epyc-1thread.json"


def test_every_case_of_an_input_comes_in_one_run():
    cases = make_cases(CPU)
    inputs = [(case.shape, case.dtype) for case in cases]
    changes = sum(1 for before, after in itertools.pairwise(inputs) if before != after)
    assert changes == len(set(inputs)) - 1


def test_cases_cover_the_table_and_respect_the_choices():
    cases = make_cases(CPU, ops=["logsumexp", "softmax"], dtypes=["float32"], shapes=[(10, 100)], axes=[0])
    assert {case.op for case in cases} == {"softmax", "logsumexp"}
    assert {(case.dtype, case.shape, case.axis) for case in cases} == {("float32", (10, 100), 0)}
    logsumexp = {case.impl for case in cases if case.op == "logsumexp"}
    assert {"lsm", "numpy", "scipy"} <= logsumexp and "lsm_alloc" not in logsumexp  # not in its row
    assert {case.impl for case in cases if case.op == "softmax"} >= {"lsm", "lsm_alloc", "numpy", "scipy"}
    assert shapes_of([10**6]) == [(1000, 1000), (32768, 32)]


def test_make_cases_takes_shape_and_axis_pairs():
    pairs = [((4, 8, 6), 1), ((5, 7), 0), ((4, 8, 6), -1), ((5, 7), 0)]
    cases = make_cases(CPU, ops=["softmax"], dtypes=["float32"], impls=["lsm"], inputs=pairs)
    assert [(case.shape, case.axis) for case in cases] == [((4, 8, 6), 1), ((4, 8, 6), -1), ((5, 7), 0)]


def test_case_identity_round_trips_through_extra_info():
    case = Case("softmax", "cpu", "float16", (100, 1000), 0, "lsm")
    info = json.loads(json.dumps(case.describe()))
    assert case_key(info) == case.id == "softmax-cpu-float16-100x1000-axis0-lsm"
    assert info["bytes_moved"] == 2 * 100 * 1000 * 2
    assert Case("logsumexp", "cpu", "float64", (10, 100), -1, "lsm").bytes_moved == 1000 * 8


def test_inputs_are_seeded_and_read_only():
    x = make_input((10, 100), "float16")
    assert x.dtype == np.float16 and not x.flags.writeable
    np.testing.assert_array_equal(x, make_input((10, 100), "float16"))
    assert not np.array_equal(make_input((10, 100), "float32"), make_input((100, 10), "float32").T)


@pytest.mark.parametrize("op", list(OPS))
def test_check_accepts_each_implementation_and_rejects_the_wrong_axis(op):
    x = make_input((10, 100), "float32")
    impls = [impl for impl in CPU.implementations if impl.family in OPS[op].impls]
    assert {"lsm", "numpy"} <= {impl.name for impl in impls}
    for impl in impls:
        case = Case(op, "cpu", "float32", x.shape, 0, impl.name)
        _, call = engine.prepare(CPU, case, x)
        check_result("float32", CPU.to_host(call()), reference(op, x, 0))
    square = make_input((100, 100), "float32")
    columns = reference(op, square, 0).astype(np.float32)
    with pytest.raises(AssertionError, match="largest error"):
        check_result("float32", columns, reference(op, square, -1))


def test_check_rejects_dtype_nan_and_shape():
    expected = reference("log_softmax", make_input((10, 100), "float64"), -1)
    with pytest.raises(AssertionError, match="float32"):
        check_result("float64", expected.astype(np.float32), expected)
    broken = expected.copy()
    broken[3, 7] = np.nan
    with pytest.raises(AssertionError, match="largest error"):
        check_result("float64", broken, expected)
    with pytest.raises(AssertionError, match="expected"):
        check_result("float64", expected[:5], expected)


@pytest.mark.parametrize("op", ["softmax_backward", "cross_entropy"])
def test_in_place_cases_overwrite_their_own_copy_of_the_input(op):
    x = make_input((10, 100), "float32")
    x_device, call = engine.prepare(CPU, Case(op, "cpu", "float32", x.shape, -1, "lsm_in_place"), x)
    result = call()
    assert np.shares_memory(result, x_device) and not np.shares_memory(result, x)
    check_result("float32", result, reference(op, x, -1))


def test_jax_keeps_the_dtype_and_reduces_any_axis():
    pytest.importorskip("jax")
    for dtype in ("float16", "float64"):
        x = make_input((4, 6, 5), dtype)
        for op in ("log_softmax", "logsumexp"):
            _, call = engine.prepare(CPU, Case(op, "cpu", dtype, x.shape, 1, "jax"), x)
            check_result(dtype, CPU.to_host(call()), reference(op, x, 1))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_the_copy_normaliser_copies_the_bytes_of_every_dtype(dtype):
    x = make_input((100, 100), dtype)
    src = x.reshape(-1).view(f"u{x.itemsize}")
    dst = np.zeros_like(src)
    parallel_copy(src, dst)
    np.testing.assert_array_equal(dst.view(dtype).reshape(x.shape), x)
    kinds = {"numba", "numpy", "torch"} if importlib.util.find_spec("torch") else {"numba", "numpy"}
    out = np.zeros_like(x)
    calls = CPU.copy_calls(x, out)
    assert set(calls) == kinds
    for kind, copy in calls.items():  # float16 included: they copy it as unsigned integers
        out[...] = 0
        copy()
        np.testing.assert_array_equal(out, x, err_msg=kind)


def test_time_together_interleaves_rounds_and_reports_pytest_benchmark_statistics():
    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    timing = engine.Timing(min_rounds=3, max_time=0.0, round_time=1e-4)
    stats = engine.time_together(calls, timing, lambda: None)
    assert set(stats["a"]) == {*Stats.fields, "iterations"}
    assert stats["a"]["rounds"] == stats["b"]["rounds"] == 3
    a_calls, b_calls = stats["a"]["iterations"], stats["b"]["iterations"]
    assert a_calls > 1  # one append takes far less than 0.1 ms: calibrated to more calls per round
    one_pass = ["a"] * (1 + a_calls) + ["b"] * (1 + b_calls)  # an untimed call opens each round
    assert order[-3 * len(one_pass) :] == one_pass * 3
    assert 0 < stats["a"]["min"] <= stats["a"]["median"] <= stats["a"]["max"]


def test_traced_peak_counts_what_a_call_allocates():
    assert engine.traced_peak(lambda: np.ones(2**20, dtype=np.uint8)) >= 2**20
    assert engine.traced_peak(lambda: None) < 2**16


def _run_softmax(monkeypatch, **impls):
    row = OPS["softmax"]
    monkeypatch.setitem(OPS, "softmax", dataclasses.replace(row, impls={**row.impls, **impls}))
    cases = make_cases(CPU, ops=["softmax"], dtypes=["float32"], shapes=[(10, 100)], axes=[-1])
    cases = [case for case in cases if case.impl in ("lsm", "scipy", "numpy")]
    timing = engine.Timing(min_rounds=1, max_time=0.0)
    entries, skipped, failed = engine.run_cases(CPU, cases, timing)
    return (
        [entry["extra_info"]["impl"] for entry in entries],
        _impls(skipped),
        _impls(failed),
        failed + skipped,
    )


def _impls(found):
    return [case_id.rsplit("-", 1)[1] for case_id, _ in found]


def _zeros(module, args, axis, out):
    out[...] = 0
    return out


def _refuse(module, args, axis, out):
    raise TypeError("float32 not supported here")


def test_run_fails_a_wrong_result_and_skips_a_peer_that_refuses(monkeypatch):
    timed, skipped, failed, reasons = _run_softmax(monkeypatch, lsm=_zeros, scipy=_refuse)
    assert (timed, skipped, failed) == (["numpy"], ["scipy"], ["lsm"])
    assert "largest error" in reasons[0][1] and "TypeError: float32 not supported" in reasons[1][1]


def test_run_fails_when_lsm_raises_but_skips_what_lsm_does_not_implement(monkeypatch):
    assert _run_softmax(monkeypatch, lsm=_refuse)[2] == ["lsm"]

    def not_here(module, args, axis, out):
        raise NotImplementedError("lsm has no backend for these arrays")

    assert _run_softmax(monkeypatch, lsm=not_here)[1] == ["lsm"]


def _doc(figures):
    """A results document with one lsm case per ``(shape, fraction_of_copy)``."""
    entries = []
    for shape, fraction in figures:
        case = Case("softmax", "cpu", "float32", shape, -1, "lsm")
        info = {**case.describe(), "fraction_of_copy": fraction, "best_fraction_of_copy": fraction}
        entries.append({"name": case.id, "extra_info": info, "stats": {}})
    return {"machine_info": {}, "benchmarks": entries, "datetime": "2026-11-26T08:00:00"}


def test_gate_flags_a_fall_beyond_the_threshold_only():
    baseline = _doc([((10, 100), 0.50), ((100, 100), 0.40), ((1000, 100), 0.30)])
    current = _doc([((10, 100), 0.46), ((100, 100), 0.30), ((100, 1000), 0.9)])
    found = compare.compare(baseline, current, threshold=0.1)
    assert found.regressed == ["softmax-cpu-float32-100x100-axis-1-lsm"]  # -25%; -8% passes
    assert found.only_baseline == ["softmax-cpu-float32-1000x100-axis-1-lsm"]
    assert found.only_current == ["softmax-cpu-float32-100x1000-axis-1-lsm"]
    assert compare.compare(current, baseline, threshold=0.1).improved == [
        "softmax-cpu-float32-100x100-axis-1-lsm"
    ]
    assert compare.compare(baseline, baseline, threshold=0.1).regressed == []
    assert compare.compare(baseline, current, threshold=0.1, impls=["numpy"]).changes == {}


def test_gate_reads_the_committed_baseline():
    baseline = engine.load(BASELINE)
    cases = engine.timed_cases(baseline)
    assert len(cases) == 204 and "softmax-cpu-float32-1000x1000-axis0-lsm" in cases
    assert compare.compare(baseline, baseline, threshold=0.1).regressed == []
    slower = json.loads(BASELINE.read_text())
    slower["benchmarks"][0]["extra_info"]["best_fraction_of_copy"] *= 0.5
    slower["machine_info"]["numba_num_threads"] = 2
    found = compare.compare(baseline, slower, threshold=0.1, figure="best_fraction_of_copy")
    assert found.regressed == [slower["benchmarks"][0]["name"]]
    assert compare.machine_differences(baseline, slower) == ["numba threads: 1 -> 2"]


@pytest.mark.parametrize(("text", "value"), [("10%", 0.1), ("2.5%", 0.025), ("0.1", 0.1)])
def test_threshold_accepts_percentages_and_fractions(text, value):
    assert compare.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["10", "0", "150%", "ten", "-5%"])
def test_threshold_rejects_the_rest(text):
    with pytest.raises(ValueError, match="threshold"):
        compare.parse_threshold(text)


def test_load_rejects_files_that_are_not_results(tmp_path):
    not_json = tmp_path / "a.json"
    not_json.write_text("{")
    with pytest.raises(ValueError, match="not a JSON file"):
        engine.load(not_json)
    other = tmp_path / "b.json"
    other.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="no 'benchmarks' list"):
        engine.load(other)


def test_machine_info_records_threads_versions_and_load():
    info = engine.lsm_machine_info(CPU)
    assert info["numba_num_threads"] >= 1 and info["versions"]["numpy"] == np.__version__
    assert ("load_average" in info) == hasattr(os, "getloadavg")


def test_bfloat16_cases_are_made_when_asked_for():
    assert "bfloat16" not in {case.dtype for case in make_cases(CPU)}  # not in the default sweep
    cases = make_cases(CPU, ops=["softmax"], dtypes=["bfloat16"], shapes=[(10, 100)], axes=[-1])
    assert {case.dtype for case in cases} == {"bfloat16"} and "lsm" in {case.impl for case in cases}
    x = make_input((10, 100), "bfloat16")
    assert x.dtype.name == "bfloat16" and not x.flags.writeable
    np.testing.assert_array_equal(x.view(np.int16), make_input((10, 100), "bfloat16").view(np.int16))


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_the_torch_backend_runs_lsm_beside_torch_in_bfloat16():
    """The ``cuda-torch`` backend's code on torch CPU tensors (lsm takes them to its host kernels):
    bfloat16 inputs and results cross between NumPy and torch through their bits, every case is
    checked against the float64 reference, and the copy is torch's ``copy_``."""
    backend = TorchBackend("cpu")
    assert backend.unavailable() is None and BACKENDS["cuda-torch"].device == "cuda"
    ops = ["log_softmax", "logsumexp", "softmax_backward", "cross_entropy"]
    cases = make_cases(backend, ops=ops, dtypes=["bfloat16", "float32"], shapes=[(10, 100)])
    entries, skipped, failed = engine.run_cases(backend, cases, engine.Timing(min_rounds=1, max_time=0.0))
    assert failed == [] and skipped == []
    infos = [entry["extra_info"] for entry in entries]
    timed = {(info["op"], info["dtype"], info["impl"]) for info in infos}
    assert {(op, "bfloat16", "lsm") for op in ops} <= timed
    assert ("log_softmax", "bfloat16", "torch_out") in timed
    assert all(info["copy_kind"] == "torch" for info in infos)


def test_the_row_sweep_keeps_the_element_count_across_lengths():
    inputs = table.row_sweep()
    lengths = [shape[axis] for shape, axis in inputs]
    assert lengths == [*table.ROW_LENGTHS, *table.ROW_LENGTHS]
    assert lengths[0] == 32 and lengths[-1] == 262144
    assert {int(np.prod(shape)) for shape, _ in inputs} == {table.ROW_SWEEP_ELEMENTS}
    assert inputs[0] == ((2**19, 32), -1) and inputs[-1] == ((262144, 64), 0)
    assert table.row_sweep(4096, axes=(0,)) == [
        ((n, 4096 // n), 0) for n in (32, 64, 128, 256, 512, 1024, 2048, 4096)
    ]


def _sweep_doc(gbps_by_shape):
    """A results document with one lsm softmax case per ``(shape, axis) -> GB/s``."""
    entries = []
    for (shape, axis), gbps in gbps_by_shape.items():
        info = {**Case("softmax", "cpu", "float32", shape, axis, "lsm").describe(), "gbps": gbps}
        entries.append({"extra_info": {**info, "fraction_of_copy": gbps / 10}})
    return {"machine_info": {}, "benchmarks": entries}


def test_cliffs_are_steps_beyond_the_drop_between_neighbouring_lengths():
    doc = _sweep_doc(
        {
            ((64, 32), -1): 8.0,
            ((32, 64), -1): 10.0,  # +25% over its neighbour: within the drop
            ((16, 128), -1): 7.4,  # -26%: a cliff
            ((8, 256), -1): 9.9,  # +34% back up: a cliff too
            ((32, 64), 0): 1.0,  # another series (axis 0), alone
            ((100, 100), -1): 1.0,  # another element count: not a neighbour of the sweep
        }
    )
    found = report.cliffs(doc)
    assert [(before[0], after[0]) for *_, before, after in found] == [
        ((32, 64), (16, 128)),
        ((16, 128), (8, 256)),
    ]
    assert report.cliffs(doc, drop=0.4) == []
    assert "| softmax | cpu | float32 | -1 | lsm | 32x64 | 10.00 | 16x128 | 7.40 |" in report.cliffs_table(
        doc
    )
    assert report.cliffs_table(doc, drop=0.4).startswith("No cliff")
