"""Shared setup for the lsm benchmarks (see ``bench_ops.py`` for how to run them).

- ``--bench-large`` (or the environment variable ``LSM_BENCH_LARGE=1``) adds the 1e8-element
  shapes: about 0.8 GB per float64 array, several GB in all with outputs and peers' temporaries.
- ``machine_info`` of a saved benchmark run records the CPU, the core count and Numba's
  threading setup, so runs on different machines or thread counts are not compared blindly.
"""

import os
import platform
from collections import OrderedDict

import numpy as np
import pytest

SEED = 20240601


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


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _numba_threading():
    """``(threading layer, thread count)`` after one parallel lsm launch has fixed the layer."""
    import numba

    import lsm

    lsm.softmax(np.zeros((1 << 16,)))  # above PARALLEL_MIN_ELEMENTS: runs the parallel kernel
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process
        layer = "unknown"
    return layer, numba.get_num_threads()


def pytest_benchmark_update_machine_info(config, machine_info):
    import numba

    layer, threads = _numba_threading()
    machine_info["cpu_model"] = _cpu_model()
    machine_info["cpu_count"] = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        machine_info["cpu_affinity_count"] = len(os.sched_getaffinity(0))
    machine_info["numpy_version"] = np.__version__
    machine_info["numba_version"] = numba.__version__
    machine_info["numba_threading_layer"] = layer
    machine_info["numba_num_threads"] = threads
    try:
        import torch
    except ImportError:
        pass
    else:
        machine_info["torch_version"] = torch.__version__
        machine_info["torch_num_threads"] = torch.get_num_threads()


def pytest_report_header(config):
    if not any("bench" in str(arg) for arg in config.args):
        return None
    if benchmarks_enabled(config):
        sizes = "up to 1e8 elements" if large_enabled(config) else "up to 1e7 elements (--bench-large: 1e8)"
        return f"lsm benchmarks: timed, {sizes}"
    return "lsm benchmarks: smoke run (benchmark disabled), shapes up to 1e6 elements, each case once"


class ArrayCache:
    """Seeded random inputs, one per ``(shape, dtype)``, keeping only the last few alive.

    The cases are ordered shape by shape, so a small cache serves every case of a shape from
    one array while memory stays bounded by the largest shapes' arrays.
    """

    def __init__(self, keep=2):
        self._keep = keep
        self._arrays = OrderedDict()

    def get(self, shape, dtype):
        key = (tuple(shape), np.dtype(dtype).name)
        if key in self._arrays:
            self._arrays.move_to_end(key)
            return self._arrays[key]
        while len(self._arrays) >= self._keep:
            self._arrays.popitem(last=False)
        rng = np.random.default_rng([SEED, *shape, np.dtype(dtype).itemsize])
        array = rng.standard_normal(shape, dtype=dtype)
        array *= 4  # logits with a realistic spread: softmax outputs span many orders of magnitude
        array.flags.writeable = False  # every implementation reads the same, unmodified input
        self._arrays[key] = array
        return array


@pytest.fixture(scope="session")
def arrays():
    """Session-wide :class:`ArrayCache` of benchmark inputs."""
    return ArrayCache()


@pytest.fixture
def rng():
    """A seeded generator for anything a benchmark draws beyond the cached inputs."""
    return np.random.default_rng(SEED)
