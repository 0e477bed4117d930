"""Throughput of lsm.log_softmax, lsm.softmax and lsm.logsumexp beside a memory copy and peers.

Run
---
Smoke run (part of the normal test run: benchmarks disabled, every case once, shapes up to
1e6 elements, each result checked against scipy in float64)::

    python -m pytest benchmarks -q

Timed run (shapes up to 1e7 elements; add ``--bench-large`` or ``LSM_BENCH_LARGE=1`` for
1e8, which needs several GB of memory)::

    python -m pytest benchmarks --benchmark-enable --benchmark-json=bench.json
    python -m pytest benchmarks --benchmark-enable -k "1000x1000 and float32"
    python -m pytest benchmarks --benchmark-enable --benchmark-columns=median,iqr,ops

What is measured
----------------
One case is ``(op, axis, dtype, shape, implementation)``. The implementations of a case share a
pytest-benchmark *group*, so the table puts them side by side, with each figure's ratio to the
group's best in parentheses:

- ``lsm``: the public function writing into a preallocated ``out=``;
- ``lsm_alloc`` (log_softmax only): the public function allocating its result;
- ``scipy``: ``scipy.special.log_softmax`` / ``softmax`` / ``logsumexp`` (always allocate);
- ``numpy``: the textbook NumPy version (max, subtract, exp, sum, log), into ``out=`` where
  NumPy allows it;
- ``torch``: ``torch.log_softmax`` / ``softmax`` / ``logsumexp`` on a CPU tensor holding a
  copy of the input (torch warns on read-only arrays), only where torch is installed.

Every case stores in ``benchmark.extra_info``: ``op``, ``impl``, ``dtype``, ``shape``,
``axis``, ``elements`` and ``bytes_moved`` (2 x n x itemsize for log_softmax and softmax, which
must read the input once and write the output once; n x itemsize for logsumexp). When the
benchmark is timed it adds ``median_s``, ``gbps`` (bytes_moved / median) and, from copies of
the same array timed in the same test right after the benchmark (``time.perf_counter``, median
of 7 repeats), ``copy_gbps`` (a Numba ``parallel=True`` copy on as many threads as lsm uses),
``copy_serial_gbps`` (``np.copyto``), ``fraction_of_copy = gbps / copy_gbps`` and
``fraction_of_serial_copy = gbps / copy_serial_gbps``. A copy moves 2 x n x itemsize bytes.
Absolute GB/s on a shared machine is noise; the fraction of copy bandwidth and the ratio to a
peer measured in the same process are the figures to compare (see ``DESIGN.md``, "Measuring speed").
"""

import importlib.util
import statistics
import time
from dataclasses import dataclass

import numba
import numpy as np
import pytest
import scipy.special
from numba import njit, prange

import lsm
from benchmarks.conftest import benchmarks_enabled, large_enabled

# --- the cases ------------------------------------------------------------------------------

# (rows, cols) by total size. The default suite stays under about 1 GB; 1e8 is opt-in.
SHAPES = {
    10**3: [(10, 100)],
    10**5: [(1000, 100), (100, 1000)],
    10**6: [(32768, 32), (1000, 1000)],
    10**7: [(10000, 1000), (100, 100000)],
    10**8: [(100000, 1000)],
}
SMOKE_MAX_ELEMENTS = 10**6  # untimed runs only exercise the code paths: keep them quick
DEFAULT_MAX_ELEMENTS = 10**7  # timed runs without --bench-large
CHECK_MAX_ELEMENTS = 10**6  # results up to this size are checked against scipy in float64
DTYPES = ("float32", "float64")
OPS = (  # (op, axis): axis -1 is the row case, axis 0 the column (strided) case
    ("log_softmax", -1),
    ("softmax", -1),
    ("logsumexp", -1),
    ("log_softmax", 0),
    ("softmax", 0),
)
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def implementations(op):
    impls = ["lsm"]
    if op == "log_softmax":
        impls.append("lsm_alloc")
    impls += ["scipy", "numpy"]
    if HAVE_TORCH:
        impls.append("torch")
    return impls


@dataclass(frozen=True)
class Case:
    op: str
    axis: int
    dtype: str
    shape: tuple
    impl: str

    @property
    def elements(self):
        return self.shape[0] * self.shape[1]

    @property
    def shape_id(self):
        return "x".join(map(str, self.shape))

    @property
    def id(self):
        return f"{self.op}-axis{self.axis}-{self.dtype}-{self.shape_id}-{self.impl}"

    @property
    def group(self):
        return f"{self.op} axis={self.axis} {self.dtype} {self.shape_id}"

    @property
    def bytes_moved(self):
        itemsize = np.dtype(self.dtype).itemsize
        passes = 1 if self.op == "logsumexp" else 2  # read x; softmax types also write out
        return passes * self.elements * itemsize


def make_cases(max_elements):
    """Every case up to ``max_elements``, ordered shape by shape so inputs can be cached."""
    return [
        Case(op, axis, dtype, shape, impl)
        for size, shapes in sorted(SHAPES.items())
        if size <= max_elements
        for shape in shapes
        for dtype in DTYPES
        for op, axis in OPS
        for impl in implementations(op)
    ]


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    if not benchmarks_enabled(config):
        max_elements = SMOKE_MAX_ELEMENTS
    elif large_enabled(config):
        max_elements = max(SHAPES)
    else:
        max_elements = DEFAULT_MAX_ELEMENTS
    cases = make_cases(max_elements)
    metafunc.parametrize("case", cases, ids=[case.id for case in cases])


# --- the implementations ----------------------------------------------------------------------


def _numpy_log_softmax(x, axis, out):
    np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    total = np.exp(out).sum(axis=axis, keepdims=True)
    np.subtract(out, np.log(total), out=out)
    return out


def _numpy_softmax(x, axis, out):
    np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


def _numpy_logsumexp(x, axis, out):
    peak = x.max(axis=axis, keepdims=True)
    np.log(np.exp(x - peak).sum(axis=axis), out=out)
    out += np.squeeze(peak, axis=axis)
    return out


NUMPY_IMPLS = {"log_softmax": _numpy_log_softmax, "softmax": _numpy_softmax, "logsumexp": _numpy_logsumexp}


def make_call(case, x):
    """A no-argument callable running ``case`` on ``x`` (outputs allocated here, not timed)."""
    op, axis, impl = case.op, case.axis, case.impl
    reduced = np.empty(np.delete(x.shape, axis), dtype=x.dtype) if op == "logsumexp" else None
    out = reduced if op == "logsumexp" else np.empty_like(x)
    if impl == "lsm":
        func = getattr(lsm, op)
        return lambda: func(x, axis=axis, out=out)
    if impl == "lsm_alloc":
        func = getattr(lsm, op)
        return lambda: func(x, axis=axis)
    if impl == "scipy":
        func = getattr(scipy.special, op)
        return lambda: func(x, axis=axis)
    if impl == "numpy":
        func = NUMPY_IMPLS[op]
        return lambda: func(x, axis, out)
    if impl == "torch":
        torch = pytest.importorskip("torch")
        tensor = torch.from_numpy(np.array(x))  # a writeable copy: torch warns on read-only arrays
        func = getattr(torch, op)
        return lambda: func(tensor, axis)
    raise ValueError(f"unknown implementation {impl!r}")


def reference(case, x):
    """The case's result in float64 from scipy, the oracle for the smoke check."""
    return getattr(scipy.special, case.op)(x.astype(np.float64), axis=case.axis)


def check_result(case, result, x):
    result = np.asarray(result.numpy() if hasattr(result, "numpy") else result)
    assert result.dtype == x.dtype, (case.id, result.dtype)
    tight = case.dtype == "float64"
    np.testing.assert_allclose(
        result,
        reference(case, x),
        rtol=1e-10 if tight else 2e-5,
        atol=1e-12 if tight else 1e-5,  # float32 x - lse: a few ulp of |x| ~ 16
        err_msg=case.id,
    )


# --- the memory copy every case is measured against -----------------------------------------


@njit(parallel=True, cache=True)
def parallel_copy(src, dst):
    """``dst[:] = src`` for contiguous 1-d arrays, spread over Numba's threads like lsm's kernels."""
    for i in prange(src.shape[0]):
        dst[i] = src[i]


def median_seconds(func, repeats=7, min_repeat_s=2e-3):
    """Median per-call time of ``func`` over ``repeats`` repeats of enough calls to last ``min_repeat_s``."""
    func()
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= min_repeat_s:
            break
        loops *= 2 if elapsed * 10 > min_repeat_s else 10
    times = [elapsed / loops]
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(loops):
            func()
        times.append((time.perf_counter() - start) / loops)
    return statistics.median(times)


def copy_bandwidth(x):
    """``(parallel, serial)`` copy bandwidth in GB/s for an array like ``x`` (read + write)."""
    src = np.ascontiguousarray(x).reshape(-1)
    dst = np.empty_like(src)
    copied = 2 * src.nbytes
    parallel = copied / median_seconds(lambda: parallel_copy(src, dst)) / 1e9
    serial = copied / median_seconds(lambda: np.copyto(dst, src)) / 1e9
    return parallel, serial


def benchmark_median(benchmark):
    """The benchmark's median seconds per call, or None when it was not timed."""
    if benchmark.disabled or benchmark.stats is None:
        return None
    stats = getattr(benchmark.stats, "stats", None)
    return getattr(stats, "median", None) if stats is not None else None


# --- the benchmark ----------------------------------------------------------------------------


def test_op(benchmark, arrays, case):
    x = arrays.get(case.shape, case.dtype)
    call = make_call(case, x)
    result = call()  # warm-up: compiles lsm's kernels, faults in the output, loads the peer
    if case.elements <= CHECK_MAX_ELEMENTS:
        check_result(case, result, x)

    benchmark.group = case.group
    benchmark.extra_info.update(
        op=case.op,
        impl=case.impl,
        dtype=case.dtype,
        shape=list(case.shape),
        axis=case.axis,
        elements=case.elements,
        bytes_moved=case.bytes_moved,
        numba_threads=numba.get_num_threads(),
    )
    if case.impl == "torch":
        import torch

        benchmark.extra_info["torch_threads"] = torch.get_num_threads()

    benchmark(call)

    median = benchmark_median(benchmark)
    if median is None:  # untimed smoke run: exercise the copy once, record no derived figures
        src = np.ascontiguousarray(x[:2]).reshape(-1)
        dst = np.empty_like(src)
        parallel_copy(src, dst)
        assert np.array_equal(src, dst)
        return
    gbps = case.bytes_moved / median / 1e9
    copy_gbps, copy_serial_gbps = copy_bandwidth(x)
    benchmark.extra_info.update(
        median_s=median,
        gbps=gbps,
        copy_gbps=copy_gbps,
        copy_serial_gbps=copy_serial_gbps,
        fraction_of_copy=gbps / copy_gbps,
        fraction_of_serial_copy=gbps / copy_serial_gbps,
    )
