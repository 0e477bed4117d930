"""Shared setup for the lsm benchmarks (see ``bench_ops.py`` for how to run them).

- :func:`parametrize` and the ``run_case`` fixture: a benchmark module picks its cases from
  ``lsm.bench``'s table and each test times one through ``run_case`` (prepare, warm up, check
  the result, time, record the figures);
- ``--bench-large`` (or the environment variable ``LSM_BENCH_LARGE=1``) adds the 1e8-element
  shapes: about 0.8 GB per float64 array, several GB in all with outputs and peers' temporaries.
- ``machine_info`` of a saved benchmark run records, besides pytest-benchmark's own fields, what
  ``lsm info`` reports: CPU model, core count, Numba's threading layer and thread count, the GPU
  and the versions, so runs on different machines or thread counts are not compared blindly.
"""

import os

import pytest

from lsm.bench.backends import BACKENDS
from lsm.bench.cases import InputCache, check_result
from lsm.bench.results import lsm_machine_info
from lsm.bench.runner import CopyNormaliser, References, prepare, throughput, traced_peak
from lsm.bench.timing import TimingOptions

CHECK_MAX_ELEMENTS = 10**6  # results up to this size are checked against the float64 oracle
CASES = {}  # case id -> Case: tests take the id, which pytest-benchmark saves as the parameter


def pytest_addoption(parser):
    parser.addoption(
        "--bench-large",
        action="store_true",
        default=False,
        help="lsm benchmarks: also run the 1e8-element shapes (several GB of memory); "
        "the environment variable LSM_BENCH_LARGE=1 does the same",
    )


def large_enabled(config):
    """Whether the 1e8-element shapes were asked for (``--bench-large`` or ``LSM_BENCH_LARGE``)."""
    flag = os.environ.get("LSM_BENCH_LARGE", "").strip().lower()
    return bool(config.getoption("bench_large", False)) or flag not in ("", "0", "false", "no")


def benchmarks_enabled(config):
    """Whether pytest-benchmark will time the cases (mirrors its own ``--benchmark-disable`` rule)."""
    if config.getoption("benchmark_skip", False):
        return False
    enable = config.getoption("benchmark_enable", False)
    disabled = config.getoption("benchmark_disable", False) and not enable
    xdist = config.getoption("dist", "no") != "no" or os.environ.get("PYTEST_XDIST_WORKER")
    return not disabled and not xdist


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info.update(lsm_machine_info())


def pytest_report_header(config):
    if not any("bench" in str(arg) for arg in config.args):
        return None
    if benchmarks_enabled(config):
        sizes = "up to 1e8 elements" if large_enabled(config) else "up to 1e7 elements (--bench-large: 1e8)"
        return f"lsm benchmarks: timed, {sizes}"
    return "lsm benchmarks: smoke run (benchmark disabled), shapes up to 1e5 elements, each case once"


@pytest.fixture(scope="session")
def inputs():
    """Session-wide :class:`lsm.bench.cases.InputCache` of benchmark inputs."""
    return InputCache()


@pytest.fixture(scope="session")
def references():
    """Session-wide :class:`lsm.bench.runner.References`: the float64 oracle of the current input."""
    return References()


@pytest.fixture(scope="session")
def normalisers():
    """One :class:`lsm.bench.runner.CopyNormaliser` per backend: same-run copy bandwidths per input."""
    return {name: CopyNormaliser(backend, TimingOptions()) for name, backend in BACKENDS.items()}


def parametrize(metafunc, cases, argname="case"):
    """Parametrize ``argname`` with the ids of ``cases``, lsm's implementations last in each group.

    pytest-benchmark times one case at a time, so a case can only be compared with the cases
    of its group timed before it (``ratio_to_<impl>`` in ``extra_info``); lsm last gets the
    ratio to every peer.
    """
    first_of_group = {}
    for index, case in enumerate(cases):
        first_of_group.setdefault(case.group, index)
    ordered = sorted(cases, key=lambda case: (first_of_group[case.group], case.impl.startswith("lsm")))
    CASES.update((case.id, case) for case in ordered)
    metafunc.parametrize(argname, [case.id for case in ordered])


@pytest.fixture(scope="session")
def group_speeds():
    """``{group: {impl: GB/s}}`` of the cases timed so far in this session."""
    return {}


@pytest.fixture
def run_case(benchmark, inputs, references, normalisers, group_speeds):
    """``run_case(case_id)``: benchmark one case of ``lsm.bench``'s table and record its figures.

    The result of the warm-up call is checked against the float64 oracle (inputs up to
    :data:`CHECK_MAX_ELEMENTS`). When timed, ``extra_info`` gets the throughput figures of
    ``lsm.bench.runner.throughput``, ``ratio_to_<impl>`` (this case's GB/s over that of each case
    of its group timed before it) and, for lsm on the CPU, ``traced_peak_bytes``.
    """

    def run(case_id):
        case = CASES[case_id]
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
        benchmark.extra_info.update(case.describe(), **backend.info(), **prepared.info)
        benchmark(backend.synchronised(prepared.call))

        if benchmark.disabled or not benchmark.stats:  # untimed smoke run: no derived figures
            return
        stats = benchmark.stats.stats
        copies = normalisers[case.backend].figures(prepared.x)
        figures = throughput(case, stats.median, stats.min, copies)
        earlier = group_speeds.setdefault(case.group, {})
        figures.update({f"ratio_to_{impl}": figures["gbps"] / gbps for impl, gbps in earlier.items()})
        earlier[case.impl] = figures["gbps"]
        if case.impl.startswith("lsm") and backend.traces_memory:
            figures["traced_peak_bytes"] = traced_peak(prepared.call)
        benchmark.extra_info.update(figures)

    return run
