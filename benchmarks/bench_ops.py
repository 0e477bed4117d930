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
allocating, lsm in place where an op has that, naive NumPy, scipy.special, torch and jitted jax
when installed; CuPy, cupyx and torch on CUDA when CuPy finds a GPU). The implementations of one
op on one input share a pytest-benchmark *group*, so the table puts them side by side, lsm's
last. A GPU call synchronises the device inside the timed call, a jax call waits for its result.

Every case stores in ``benchmark.extra_info`` its ``op``, ``impl``, ``backend``, ``dtype``,
``shape``, ``axis``, ``elements`` and ``bytes_moved``; when timed also ``gbps``, ``copy_gbps``
and ``fraction_of_copy`` (and more: see ``lsm.bench.runner``), from a copy of the same input
timed in the same process, and ``ratio_to_<impl>`` for the cases of its group timed before it
(``run_case`` in ``conftest.py``). Absolute GB/s on a shared machine is noise; the fraction of copy
bandwidth and the ratio to a peer measured in the same process are the figures to compare (see
``DESIGN.md``, "Measuring speed").
"""

from benchmarks.conftest import benchmarks_enabled, large_enabled, parametrize
from lsm.bench.backends import BACKENDS
from lsm.bench.cases import SHAPES, make_cases, shapes_of

SMOKE_MAX_ELEMENTS = 10**5  # untimed runs only exercise the code paths: keep them quick
DEFAULT_MAX_ELEMENTS = 10**7  # timed runs without --bench-large


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
    parametrize(metafunc, cases)


def test_op(run_case, case):
    run_case(case)
