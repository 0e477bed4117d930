"""Throughput of lsm's functions beside a memory copy and peers, from lsm's comparison table.

Run
---
Smoke run (part of the normal test run: benchmarks disabled, every case once, shapes up to
1e5 elements, each result checked against a float64 NumPy oracle)::

    python -m pytest benchmarks -q

Timed run (shapes up to 1e7 elements; add ``--bench-large`` or ``LSM_BENCH_LARGE=1`` for
1e8, which needs several GB of memory)::

    python -m pytest benchmarks --benchmark-enable --benchmark-json=bench.json
    python -m pytest benchmarks --benchmark-enable -k "1000x1000 and float32"
    python -m pytest benchmarks --benchmark-enable --benchmark-columns=median,iqr,ops

``lsm bench`` runs the same cases with its own timing loop and writes the same JSON layout;
``scripts/bench_compare.py`` and ``scripts/bench_report.py`` read both.

What is measured
----------------
The cases are ``lsm.bench.cases.make_cases``: op x dtype x shape x axis x backend x
implementation, with the implementations of ``lsm.bench.backends`` (lsm with ``out=``, lsm
allocating, naive NumPy, scipy.special, torch when installed; CuPy, cupyx and torch on CUDA when
CuPy finds a GPU). The implementations of one op on one input share a pytest-benchmark *group*,
so the table puts them side by side. A GPU call synchronises the device inside the timed call.

Every case stores in ``benchmark.extra_info`` its ``op``, ``impl``, ``backend``, ``dtype``,
``shape``, ``axis``, ``elements`` and ``bytes_moved``; when timed also ``gbps``, ``copy_gbps``
and ``fraction_of_copy`` (and more: see ``lsm.bench.runner``), from a copy of the same input
timed in the same process. Absolute GB/s on a shared machine is noise; the fraction of copy
bandwidth and the ratio to a peer measured in the same process are the figures to compare (see
``DESIGN.md``, "Measuring speed").
"""

import pytest

from benchmarks.conftest import benchmarks_enabled, large_enabled
from lsm.bench.backends import BACKENDS
from lsm.bench.cases import SHAPES, check_result, make_cases, shapes_of
from lsm.bench.runner import prepare, throughput

SMOKE_MAX_ELEMENTS = 10**5  # untimed runs only exercise the code paths: keep them quick
DEFAULT_MAX_ELEMENTS = 10**7  # timed runs without --bench-large
CHECK_MAX_ELEMENTS = 10**6  # results up to this size are checked against the float64 oracle
CASES = {}  # case id -> Case: tests take the id, which pytest-benchmark saves as the parameter


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    if not benchmarks_enabled(config):
        largest = SMOKE_MAX_ELEMENTS
    elif large_enabled(config):
        largest = max(SHAPES)
    else:
        largest = DEFAULT_MAX_ELEMENTS
    shapes = shapes_of([size for size in SHAPES if size <= largest])
    cases = [
        case
        for backend in BACKENDS.values()
        if backend.unavailable() is None
        for case in make_cases(backend, shapes=shapes)
    ]
    CASES.update((case.id, case) for case in cases)
    metafunc.parametrize("case", [case.id for case in cases])


def test_op(benchmark, inputs, references, normalisers, case):
    case = CASES[case]
    backend = BACKENDS[case.backend]
    x_host = inputs.get(case.shape, case.dtype)
    prepared = prepare(backend, case, x_host)
    try:
        result = prepared.call()  # warm-up: compiles lsm's kernels, faults in memory, loads the peer
    except NotImplementedError as error:  # e.g. lsm without a backend for these arrays
        pytest.skip(f"{case.impl} does not run this case: {error}")
    backend.synchronise()
    if case.elements <= CHECK_MAX_ELEMENTS:
        check_result(case, backend.to_host(result), references.get(case, x_host))

    benchmark.group = case.group
    benchmark.extra_info.update(case.describe(), **backend.info())
    if case.impl.startswith("torch"):
        import torch

        benchmark.extra_info["torch_threads"] = torch.get_num_threads()

    benchmark(backend.synchronised(prepared.call))

    if benchmark.disabled or not benchmark.stats:  # untimed smoke run: no derived figures
        return
    stats = benchmark.stats.stats
    copies = normalisers[case.backend].figures(prepared.x)
    benchmark.extra_info.update(throughput(case, stats.median, stats.min, copies))
