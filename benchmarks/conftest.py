"""Shared setup for the lsm benchmarks (see ``bench_ops.py`` for how to run them).

- ``--bench-large`` (or the environment variable ``LSM_BENCH_LARGE=1``) adds the 1e8-element
  shapes: about 0.8 GB per float64 array, several GB in all with outputs and peers' temporaries.
- ``machine_info`` of a saved benchmark run records, besides pytest-benchmark's own fields, what
  ``lsm info`` reports: CPU model, core count, Numba's threading layer and thread count, the GPU
  and the versions, so runs on different machines or thread counts are not compared blindly.
"""

import os

import pytest

from lsm.bench.backends import BACKENDS
from lsm.bench.cases import InputCache
from lsm.bench.results import lsm_machine_info
from lsm.bench.runner import CopyNormaliser, References
from lsm.bench.timing import TimingOptions


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
