"""Shared setup of the pytest-benchmark cases under ``benchmarks/`` (``bench_dask.py``).

``machine_info`` of a saved run records, besides pytest-benchmark's own fields, what
``lsm bench`` adds: Numba's threading layer and thread count, the library versions and the load
average, so runs on different machines or thread counts are not compared blindly.
"""

import os

from lsm.bench.engine import lsm_machine_info


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
