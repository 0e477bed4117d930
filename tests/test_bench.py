"""The pieces of lsm.bench: statistics, the case table, the result check, figures, the gate."""

import dataclasses
import itertools
import json
import os
import statistics

import numpy as np
import pytest

from lsm.bench import compare, results, timing
from lsm.bench.backends import BACKENDS, CpuBackend
from lsm.bench.cases import (
    OPS,
    Case,
    InputCache,
    case_key,
    check_result,
    make_cases,
    make_input,
    reference,
    shapes_of,
)
from lsm.bench.runner import CopyNormaliser, prepare, throughput, traced_peak
from lsm.bench.sweep import run_sweep

CPU = BACKENDS["cpu"]


def test_summarize_matches_the_statistics_module():
    times = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
    stats = timing.summarize(times, iterations=10)
    assert stats["min"] == 1.0 and stats["max"] == 9.0
    assert stats["median"] == statistics.median(times)
    assert stats["mean"] == pytest.approx(statistics.mean(times))
    assert stats["stddev"] == pytest.approx(statistics.stdev(times))
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    assert (stats["q1"], stats["q3"], stats["iqr"]) == pytest.approx((q1, q3, q3 - q1))
    assert stats["rounds"] == 7 and stats["iterations"] == 10
    assert stats["ops"] == pytest.approx(7 / sum(times))
    assert stats["hd15iqr"] == 5.0  # 9.0 lies beyond q3 + 1.5 IQR
    assert stats["iqr_outliers"] == 1
    assert stats["outliers"] == f"{stats['stddev_outliers']};1"


def test_summarize_one_round():
    stats = timing.summarize([2e-3], iterations=1)
    assert stats["median"] == stats["q1"] == stats["q3"] == 2e-3
    assert stats["stddev"] == 0.0 and stats["iqr"] == 0.0


def test_measure_calibrates_rounds_to_the_round_time():
    calls = []
    options = timing.TimingOptions(min_rounds=4, max_time=0.0, round_time=2e-3)
    times, iterations = timing.measure(lambda: calls.append(None), options, lambda: None)
    assert len(times) == 4
    assert iterations > 1  # one append takes far less than 2 ms
    assert all(t * iterations >= 0 for t in times)


def test_every_case_of_an_input_comes_in_one_run():
    cases = make_cases(CPU)
    inputs = [(case.shape, case.dtype) for case in cases]
    changes = sum(1 for before, after in itertools.pairwise(inputs) if before != after)
    assert changes == len(set(inputs)) - 1


def test_cases_cover_the_table_and_respect_the_choices():
    cases = make_cases(CPU, ops=["logsumexp", "softmax"], dtypes=["float32"], shapes=[(10, 100)], axes=[0])
    assert {case.op for case in cases} == {"softmax", "logsumexp"}
    assert {(case.dtype, case.shape, case.axis) for case in cases} == {("float32", (10, 100), 0)}
    impls = {case.impl for case in cases if case.op == "logsumexp"}
    assert (
        "lsm" in impls and "numpy" in impls and "lsm_alloc" not in impls
    )  # a reduction: nothing to allocate
    assert {case.impl for case in cases if case.op == "softmax"} >= {"lsm", "lsm_alloc", "numpy", "scipy"}
    assert shapes_of([10**6]) == [(1000, 1000), (32768, 32)]


def test_case_identity_round_trips_through_extra_info():
    case = Case("softmax", "cpu", "float16", (100, 1000), 0, "lsm")
    info = json.loads(json.dumps(case.describe()))
    assert case_key(info) == case.id
    assert info["bytes_moved"] == 2 * 100 * 1000 * 2
    assert Case("logsumexp", "cpu", "float64", (10, 100), -1, "lsm").bytes_moved == 1000 * 8


def test_inputs_are_seeded_read_only_and_cached():
    x = make_input((10, 100), "float16")
    assert x.dtype == np.float16 and not x.flags.writeable
    np.testing.assert_array_equal(x, make_input((10, 100), "float16"))
    cache = InputCache(keep=1)
    first = cache.get((10, 100), "float32")
    assert cache.get((10, 100), "float32") is first
    cache.get((100, 100), "float32")
    assert cache.get((10, 100), "float32") is not first  # evicted, rebuilt equal
    np.testing.assert_array_equal(cache.get((10, 100), "float32"), first)


@pytest.mark.parametrize("op", list(OPS))
def test_check_accepts_each_implementation_and_rejects_the_wrong_axis(op):
    x = make_input((10, 100), "float32")
    for impl in CPU.implementations:
        if not impl.supports(OPS[op]):
            continue
        case = Case(op, "cpu", "float32", x.shape, 0, impl.name)
        result = prepare(CPU, case, x).call()
        check_result(case, CPU.to_host(result), reference(case, x))
    square = make_input((100, 100), "float32")
    rows = Case(op, "cpu", "float32", square.shape, -1, "lsm")
    columns = reference(Case(op, "cpu", "float32", square.shape, 0, "lsm"), square)
    with pytest.raises(AssertionError, match="largest error"):
        check_result(rows, columns.astype(np.float32), reference(rows, square))


def test_check_rejects_dtype_nan_and_shape():
    x = make_input((10, 100), "float64")
    case = Case("log_softmax", "cpu", "float64", x.shape, -1, "lsm")
    expected = reference(case, x)
    with pytest.raises(AssertionError, match="float32"):
        check_result(case, expected.astype(np.float32), expected)
    broken = expected.copy()
    broken[3, 7] = np.nan
    with pytest.raises(AssertionError, match="largest error"):
        check_result(case, broken, expected)
    with pytest.raises(AssertionError, match="expected"):
        check_result(case, expected[:5], expected)


def test_throughput_figures():
    case = Case("log_softmax", "cpu", "float32", (1000, 1000), -1, "lsm")
    figures = throughput(case, median_s=1e-3, min_s=5e-4, copies={"copy": (16.0, 20.0)})
    assert figures["gbps"] == pytest.approx(8.0)  # 8 MB moved in 1 ms
    assert figures["best_gbps"] == pytest.approx(16.0)
    assert figures["fraction_of_copy"] == pytest.approx(0.5)
    assert figures["best_fraction_of_copy"] == pytest.approx(0.8)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_copy_normaliser_copies_every_dtype_once_per_input(dtype):
    normaliser = CopyNormaliser(CpuBackend(), timing.TimingOptions(min_rounds=2, max_time=0.0))
    x = make_input((100, 100), dtype)
    figures = normaliser.figures(x)
    assert set(figures) == {"copy", "serial_copy"}
    assert all(median > 0 and best >= median for median, best in figures.values())
    assert normaliser.figures(x) is figures


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
    assert compare.compare(baseline, baseline, threshold=0.1).regressed == []
    assert compare.compare(baseline, current, threshold=0.1, impls=["numpy"]).changes == {}


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
        results.load(not_json)
    other = tmp_path / "b.json"
    other.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="no 'benchmarks' list"):
        results.load(other)


def _sweep_softmax(monkeypatch, **families):
    monkeypatch.setitem(OPS, "softmax", dataclasses.replace(OPS["softmax"], **families))
    cases = make_cases(CPU, ops=["softmax"], dtypes=["float32"], shapes=[(10, 100)], axes=[-1])
    cases = [case for case in cases if case.impl in ("lsm", "scipy", "numpy")]
    options = timing.TimingOptions(min_rounds=1, max_time=0.0)
    entries, skipped, failed = run_sweep(CPU, cases, options, progress=lambda items: items)
    timed = [entry["extra_info"]["impl"] for entry in entries]
    return timed, _impls(skipped), _impls(failed), failed + skipped


def _impls(found):
    return [case_id.rsplit("-", 1)[1] for case_id, _ in found]


def _zeros(module, args, axis, out):
    out[...] = 0
    return out


def _refuse(module, args, axis, out):
    raise TypeError("float32 not supported here")


def test_sweep_fails_a_wrong_result_and_skips_a_peer_that_refuses(monkeypatch):
    timed, skipped, failed, reasons = _sweep_softmax(monkeypatch, lsm=_zeros, special=_refuse)
    assert (timed, skipped, failed) == (["numpy"], ["scipy"], ["lsm"])
    assert "largest error" in reasons[0][1] and "TypeError: float32 not supported" in reasons[1][1]


def test_sweep_fails_when_lsm_raises_but_skips_what_lsm_does_not_implement(monkeypatch):
    assert _sweep_softmax(monkeypatch, lsm=_refuse)[2] == ["lsm"]

    def not_here(module, args, axis, out):
        raise NotImplementedError("lsm has no GPU backend yet")

    assert _sweep_softmax(monkeypatch, lsm=not_here)[1] == ["lsm"]


def test_measure_together_interleaves_the_rounds_of_its_calls():
    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    options = timing.TimingOptions(min_rounds=3, max_time=0.0, round_time=1e-4)
    measured = timing.measure_together(calls, options, lambda: None)
    a_calls, b_calls = measured["a"][1], measured["b"][1]
    assert len(measured["a"][0]) == len(measured["b"][0]) == 3
    one_pass = ["a"] * (1 + a_calls) + ["b"] * (1 + b_calls)  # an untimed call opens each round
    assert order[-3 * len(one_pass) :] == one_pass * 3


def test_jax_keeps_the_dtype_and_reduces_any_axis():
    pytest.importorskip("jax")
    for dtype in ("float16", "float64"):
        x = make_input((4, 6, 5), dtype)
        for op in ("log_softmax", "logsumexp"):
            case = Case(op, "cpu", dtype, x.shape, 1, "jax")
            prepared = prepare(CPU, case, x)
            check_result(case, CPU.to_host(prepared.call()), reference(case, x))
    assert prepared.info == {"xla_flags": os.environ.get("XLA_FLAGS", "")}


@pytest.mark.parametrize("op", ["softmax_backward", "cross_entropy"])
def test_in_place_cases_overwrite_their_own_copy_of_the_input(op):
    x = make_input((10, 100), "float32")
    case = Case(op, "cpu", "float32", x.shape, -1, "lsm_in_place")
    prepared = prepare(CPU, case, x)
    result = prepared.call()
    assert np.shares_memory(result, prepared.x) and not np.shares_memory(result, x)
    check_result(case, result, reference(case, x))


def test_traced_peak_counts_what_a_call_allocates():
    assert traced_peak(lambda: np.ones(2**20, dtype=np.uint8)) >= 2**20
    assert traced_peak(lambda: None) < 2**16


def test_benchmarks_time_lsm_after_the_peers_of_its_group():
    from benchmarks.conftest import CASES, parametrize

    class Metafunc:
        def parametrize(self, name, ids):
            self.ids = ids

    cases = make_cases(CPU, ops=["softmax"], dtypes=["float32"], shapes=[(10, 100)], impls=["lsm", "numpy"])
    metafunc = Metafunc()
    parametrize(metafunc, cases)
    assert [CASES[case_id].impl for case_id in metafunc.ids] == ["numpy", "lsm", "numpy", "lsm"]
    assert [CASES[case_id].axis for case_id in metafunc.ids] == [-1, -1, 0, 0]
