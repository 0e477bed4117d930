"""The CPU backend's entry points: pick the serial or parallel kernel and run it thread-safely.

Numba's ``workqueue`` threading layer aborts the process when two Python threads enter parallel
kernels at the same time. lsm does not change the user's Numba configuration; instead the first
parallel launch runs under a lock, which tells us which layer Numba picked (``tbb`` or ``omp``
when available, else ``workqueue``). Under ``workqueue`` every parallel launch keeps taking the
lock; under the thread-safe layers the lock is dropped.
"""

import threading

import numba
import numpy as np

from . import _kernels

# Below this many elements a call runs on the calling thread: waking the pool costs more than it
# saves. scripts/measure_overhead.py puts the crossover between 1,024 elements (rows of 32) and
# 4,096 (rows of 1,024) on 2 cores; see benchmarks/RESULTS.md.
PARALLEL_MIN_ELEMENTS = 4096


class _ParallelGate:
    """Serialise parallel launches only when the active threading layer is not thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._needs_lock = True  # until the first launch has shown which layer is active

    def run(self, kernel, *args):
        if not self._needs_lock:
            return kernel(*args)
        with self._lock:
            result = kernel(*args)
            self._needs_lock = numba.threading_layer() == "workqueue"
        return result


_gate = _ParallelGate()
_ACCUMULATION_TYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _run(serial, parallel, size, *args):
    # A thread limited to one Numba thread (numba.set_num_threads(1), as lsm's Dask tasks may be)
    # runs the serial kernel: same result, and no trip through the launch gate.
    if size < PARALLEL_MIN_ELEMENTS or numba.get_num_threads() == 1:
        return serial(*args)
    return _gate.run(parallel, *args)


def _rows(array):
    """Drop the unit inner axis: row kernels index ``(outer, n)``, so LLVM sees unit strides."""
    return None if array is None else array[..., 0]


def _keeps_exps(x, where, out, log):
    """Whether softmax may keep its exponentials in ``out`` and rescale them there: no mask, an
    output in the accumulation type (so nothing is rounded twice), and not in place (writing
    into the input would force the sum loop onto its scalar, alias-safe version)."""
    return not log and where is None and out.dtype in _ACCUMULATION_TYPES and not np.may_share_memory(x, out)


def softmax(x, where, out, log):
    """Fill ``out`` with (log_)softmax of the canonical view ``x`` along axis 1."""
    if x.shape[2] == 1:
        x, where, out = _rows(x), _rows(where), _rows(out)
        exps = out if _keeps_exps(x, where, out, log) else None
        _run(_kernels.softmax_rows_serial, _kernels.softmax_rows_parallel, x.size, x, where, out, exps, log)
    else:
        kernels = _kernels.softmax_columns_serial, _kernels.softmax_columns_parallel
        _run(*kernels, x.size, x, where, out, log)


def logsumexp(x, where, b, lse, sign):
    """Fill ``lse`` (and ``sign`` unless None) with logsumexp of ``x`` along axis 1."""
    if x.shape[2] == 1:
        kernels = _kernels.logsumexp_rows_serial, _kernels.logsumexp_rows_parallel
        x, where, b, lse, sign = _rows(x), _rows(where), _rows(b), _rows(lse), _rows(sign)
    else:
        kernels = _kernels.logsumexp_columns_serial, _kernels.logsumexp_columns_parallel
    _run(*kernels, x.size, x, where, b, lse, sign)
