"""Throughput of the fused cross-entropy and of the backward kernels, beside a copy and torch.

Run
---
Smoke run (part of the normal test run: small shapes, every case once, results checked)::

    python -m pytest benchmarks/bench_losses.py -q

Timed run (cross-entropy on (4096, 32000) float32 logits, 0.5 GB each array)::

    python -m pytest benchmarks/bench_losses.py --benchmark-enable --benchmark-json=losses.json

What is measured
----------------
``test_cross_entropy``: ``lsm.cross_entropy(logits, target, return_grad=True)`` (mean reduction),
as ``lsm`` (a new gradient array per call) and ``lsm_grad_out`` (``grad_out=logits``: the
gradient is written over the logits, so nothing of their size is allocated), next to ``torch``:
``F.cross_entropy`` forward plus ``backward()`` on a CPU tensor with ``requires_grad``. Each lsm
case also times torch's forward plus backward right after the benchmark, in the same process
(``time.perf_counter``, median of 7), and records ``torch_s`` and ``torch_ratio = torch_s /
median_s`` (above 1: lsm faster). bytes_moved = 2 x N x C x itemsize (read the logits, write
the gradient).

``test_backward``: ``lsm.log_softmax_backward`` / ``lsm.softmax_backward`` into a preallocated
``out`` (and in place, ``out=grad``), next to torch's own kernels
(``torch._log_softmax_backward_data`` / ``torch._softmax_backward_data``). bytes_moved =
3 x n x itemsize (read grad and y, write the result).

Both record ``gbps``, ``copy_gbps`` (a same-run Numba ``parallel=True`` copy of an array of the
same size) and ``fraction_of_copy = gbps / copy_gbps``, as ``bench_ops.py`` does.
"""

import importlib.util
import statistics
import time
from dataclasses import dataclass

import numba
import numpy as np
import pytest

import lsm
from benchmarks.conftest import benchmarks_enabled
from lsm.bench.backends import parallel_copy
from lsm.bench.cases import SEED

HAVE_TORCH = importlib.util.find_spec("torch") is not None
CROSS_ENTROPY_SHAPES = {"timed": [(4096, 32000)], "smoke": [(64, 1000)]}
BACKWARD_SHAPES = {"timed": [(8192, 1024), (1024, 32768)], "smoke": [(100, 1000)]}
BACKWARD_AXES = (-1, 0)
DTYPES = ("float32", "float64")
CHECK_MAX_ELEMENTS = 10**6  # results up to this size are checked against lsm in float64


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
    def id(self):
        return f"{self.op}-axis{self.axis}-{self.dtype}-{'x'.join(map(str, self.shape))}-{self.impl}"

    @property
    def group(self):
        return f"{self.op} axis={self.axis} {self.dtype} {'x'.join(map(str, self.shape))}"

    @property
    def bytes_moved(self):
        passes = 2 if self.op == "cross_entropy" else 3
        return passes * self.elements * np.dtype(self.dtype).itemsize


def pytest_generate_tests(metafunc):
    mode = "timed" if benchmarks_enabled(metafunc.config) else "smoke"
    peers = ["torch"] if HAVE_TORCH else []
    if "ce_case" in metafunc.fixturenames:
        cases = [
            Case("cross_entropy", -1, "float32", shape, impl)
            for shape in CROSS_ENTROPY_SHAPES[mode]
            for impl in ["lsm", "lsm_grad_out", *peers]
        ]
        metafunc.parametrize("ce_case", cases, ids=[case.id for case in cases])
    if "bw_case" in metafunc.fixturenames:
        cases = [
            Case(op, axis, dtype, shape, impl)
            for shape in BACKWARD_SHAPES[mode]
            for dtype in DTYPES
            for op in ("log_softmax_backward", "softmax_backward")
            for axis in BACKWARD_AXES
            for impl in ["lsm", "lsm_in_place", *peers]
        ]
        metafunc.parametrize("bw_case", cases, ids=[case.id for case in cases])


# --- inputs and calls -------------------------------------------------------------------------


def _logits(shape, dtype):
    rng = np.random.default_rng([SEED, *shape])
    logits = rng.standard_normal(shape, dtype=dtype)
    logits *= 4
    return logits, rng.integers(0, shape[1], size=shape[0])


def _torch_cross_entropy(logits, target):
    """A no-argument callable: torch's forward and backward, returning the gradient."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(logits.copy())
    t_target = torch.from_numpy(target)

    def call():
        leaf = tensor.detach().requires_grad_(True)
        F.cross_entropy(leaf, t_target).backward()
        return leaf.grad

    return call


def _cross_entropy_call(case, logits, target):
    if case.impl == "lsm":
        return lambda: lsm.cross_entropy(logits, target, return_grad=True)[1]
    if case.impl == "lsm_grad_out":
        work = logits.copy()  # overwritten by its gradient on every call: same work each time
        return lambda: lsm.cross_entropy(work, target, return_grad=True, grad_out=work)[1]
    return _torch_cross_entropy(logits, target)


def _backward_inputs(case):
    rng = np.random.default_rng([SEED, *case.shape, 7])
    x = rng.standard_normal(case.shape, dtype=case.dtype) * 4
    forward = lsm.log_softmax if case.op == "log_softmax_backward" else lsm.softmax
    return rng.standard_normal(case.shape, dtype=case.dtype), forward(x, axis=case.axis)


def _backward_call(case, grad, y):
    func = getattr(lsm, case.op)
    if case.impl == "lsm":
        out = np.empty_like(grad)
        return lambda: func(grad, y, axis=case.axis, out=out)
    if case.impl == "lsm_in_place":
        work = grad.copy()  # each call turns it into a gradient of the same magnitude
        return lambda: func(work, y, axis=case.axis, out=work)
    import torch

    t_grad, t_y = torch.from_numpy(grad.copy()), torch.from_numpy(y.copy())
    dim = case.axis % grad.ndim
    kernel = (
        torch._log_softmax_backward_data
        if case.op == "log_softmax_backward"
        else torch._softmax_backward_data
    )
    return lambda: kernel(t_grad, t_y, dim, t_grad.dtype)


def _as_numpy(result):
    return result.numpy() if hasattr(result, "numpy") else np.asarray(result)


def _record(benchmark, case):
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


# --- timing helpers (same-run copy, medians) ----------------------------------------------


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


def _record_throughput(benchmark, case, x, median):
    gbps = case.bytes_moved / median / 1e9
    copy_gbps, _ = copy_bandwidth(x)
    benchmark.extra_info.update(
        median_s=median, gbps=gbps, copy_gbps=copy_gbps, fraction_of_copy=gbps / copy_gbps
    )


def _smoke_copy(x):
    src = np.ascontiguousarray(x[:2]).reshape(-1)
    dst = np.empty_like(src)
    parallel_copy(src, dst)
    assert np.array_equal(src, dst)


# --- the benchmarks ---------------------------------------------------------------------------


def test_cross_entropy(benchmark, ce_case):
    logits, target = _logits(ce_case.shape, ce_case.dtype)
    call = _cross_entropy_call(ce_case, logits, target)
    grad = _as_numpy(call())  # warm-up: compiles, faults the output in
    if ce_case.elements <= CHECK_MAX_ELEMENTS:
        expected = lsm.cross_entropy(logits.astype(np.float64), target, return_grad=True)[1]
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-9)
    _record(benchmark, ce_case)
    benchmark(call)
    median = benchmark_median(benchmark)
    if median is None:
        _smoke_copy(logits)
        return
    _record_throughput(benchmark, ce_case, logits, median)
    if HAVE_TORCH and ce_case.impl != "torch":
        torch_s = median_seconds(_torch_cross_entropy(logits, target), min_repeat_s=0)
        benchmark.extra_info.update(torch_s=torch_s, torch_ratio=torch_s / median)


def test_backward(benchmark, bw_case):
    grad, y = _backward_inputs(bw_case)
    call = _backward_call(bw_case, grad, y)
    result = _as_numpy(call())
    if bw_case.impl != "lsm_in_place" and bw_case.elements <= CHECK_MAX_ELEMENTS:  # in place: changed
        func = getattr(lsm, bw_case.op)
        expected = func(grad.astype(np.float64), y.astype(np.float64), axis=bw_case.axis)
        tight = bw_case.dtype == "float64"
        np.testing.assert_allclose(
            result, expected, rtol=1e-10 if tight else 1e-4, atol=1e-12 if tight else 1e-5
        )
    _record(benchmark, bw_case)
    benchmark(call)
    median = benchmark_median(benchmark)
    if median is None:
        _smoke_copy(grad)
        return
    _record_throughput(benchmark, bw_case, grad, median)


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
def test_torch_peer_agrees():
    """The torch peer computes the same gradient (smoke check of the comparison itself)."""
    logits, target = _logits((8, 50), "float64")
    torch_grad = _torch_cross_entropy(logits, target)().numpy()
    np.testing.assert_allclose(torch_grad, lsm.cross_entropy(logits, target, return_grad=True)[1], rtol=1e-12)
