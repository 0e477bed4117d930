"""The CPU backend's entry points: pick the serial or parallel kernel and run it thread-safely.

A backend module provides ``softmax``, ``logsumexp``, ``softmax_backward``, ``check_targets``,
``cross_entropy`` and ``nll_loss`` over canonical views (see ``lsm._plan``); another backend
(GPU) provides the same functions with the same signatures.

Numba's ``workqueue`` threading layer aborts the process when two Python threads enter parallel
kernels at the same time. lsm does not change the user's Numba configuration; instead the first
parallel launch runs under a lock, which tells us which layer Numba picked (``tbb`` or ``omp``
when available, else ``workqueue``). Under ``workqueue`` every parallel launch keeps taking the
lock; under the thread-safe layers the lock is dropped.
"""

import threading

import numba
import numpy as np

from .._plan import accumulation_dtype
from . import _backward, _kernels, _losses

# Below this many elements a call runs on the calling thread: waking the pool costs more than it
# saves. scripts/measure_overhead.py puts the crossover between 1,024 elements (rows of 32) and
# 4,096 (rows of 1,024) on 2 cores; see benchmarks/RESULTS.md.
PARALLEL_MIN_ELEMENTS = 4096
# Softmax keeps its exponentials in per-worker scratch rows (rather than computing them twice)
# only while the rows together stay this small.
EXPS_BUFFER_BYTES = 32 * 2**20


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


def _chunk_rows(x):
    """Rows per chunk for the short-row kernels on the 2-d row view ``x``."""
    return _kernels.chunk_rows(x.shape[0], x.shape[1], numba.get_num_threads())


def _keeps_exps(x, where, out, log):
    """Whether softmax may keep its exponentials in ``out`` and rescale them there: no mask, an
    output in the accumulation type (so nothing is rounded twice), and not in place (writing
    into the input would force the sum loop onto its scalar, alias-safe version)."""
    return not log and where is None and out.dtype in _ACCUMULATION_TYPES and not np.may_share_memory(x, out)


def _exps_buffers(x):
    """One scratch row per worker for softmax's exponentials when ``out`` cannot hold them (a
    16-bit output, or in place), unless those rows would take more than ``EXPS_BUFFER_BYTES``."""
    workers = _workers(x.size)
    dtype = accumulation_dtype(x.dtype)  # a 16-bit view (uint16/int16) accumulates in float32
    if workers * x.shape[1] * dtype.itemsize > EXPS_BUFFER_BYTES:
        return None
    return np.empty((workers, x.shape[1]), dtype=dtype)


def _workers(size):
    return 1 if size < PARALLEL_MIN_ELEMENTS else numba.get_num_threads()


def _staging_buffers(source, out):
    """One staging row per thread when ``out`` shares memory with ``source`` (see ``_staging``)."""
    if out is None or not np.may_share_memory(source, out):
        return None
    return np.empty((_workers(source.size), out.shape[1]), dtype=out.dtype)


def softmax(x, where, out, log):
    """Fill ``out`` with (log_)softmax of the canonical view ``x`` along axis 1."""
    if x.shape[2] == 1:
        x, where, out = _rows(x), _rows(where), _rows(out)
        if x.shape[1] <= _kernels.SHORT_ROW:
            kernels = _kernels.softmax_short_rows_serial, _kernels.softmax_short_rows_parallel
            _run(*kernels, x.size, x, where, out, log, _chunk_rows(x))
            return
        keep = _keeps_exps(x, where, out, log)
        buffers = None if keep or log or where is not None else _exps_buffers(x)
        kernels = _kernels.softmax_rows_serial, _kernels.softmax_rows_parallel
        _run(*kernels, x.size, x, where, out, keep, buffers, log)
    else:
        kernels = _kernels.softmax_columns_serial, _kernels.softmax_columns_parallel
        _run(*kernels, x.size, x, where, out, log)


def logsumexp(x, where, b, lse, sign):
    """Fill ``lse`` (and ``sign`` unless None) with logsumexp of ``x`` along axis 1."""
    if x.shape[2] == 1:
        x, where, b, lse, sign = _rows(x), _rows(where), _rows(b), _rows(lse), _rows(sign)
        if x.shape[1] <= _kernels.SHORT_ROW:
            kernels = _kernels.logsumexp_short_rows_serial, _kernels.logsumexp_short_rows_parallel
            _run(*kernels, x.size, x, where, b, lse, sign, _chunk_rows(x))
            return
        kernels = _kernels.logsumexp_rows_serial, _kernels.logsumexp_rows_parallel
    else:
        kernels = _kernels.logsumexp_columns_serial, _kernels.logsumexp_columns_parallel
    _run(*kernels, x.size, x, where, b, lse, sign)


def softmax_backward(grad, y, where, out, log):
    """Fill ``out`` with the gradient of (log_)softmax: ``grad`` and ``y`` (the forward output)
    are canonical views like ``out``; ``where`` is the forward call's mask or None."""
    if grad.shape[2] == 1:
        grad, y, where, out = _rows(grad), _rows(y), _rows(where), _rows(out)
        buffers = _staging_buffers(grad, out)
        if buffers is None:
            buffers = _staging_buffers(y, out)
        kernels = _backward.backward_rows_serial, _backward.backward_rows_parallel
        _run(*kernels, grad.size, grad, y, where, out, buffers, log)
    else:
        kernels = _backward.backward_columns_serial, _backward.backward_columns_parallel
        _run(*kernels, grad.size, grad, y, where, out, log)


def check_targets(target, n_classes, ignore_index, class_weight):
    """Validate class-index targets and total their weights, in one sweep.

    Returns ``(position, total)``: the flat index of the first target that is neither
    ``ignore_index`` nor in ``[0, n_classes)`` (-1 when all are valid), and the sum of the class
    weights of the non-ignored targets as a Python float.
    """
    counted = target != ignore_index
    bad = counted & ((target < 0) | (target >= n_classes))
    if bad.any():
        return int(np.argmax(bad.reshape(-1))), 0.0
    picked = class_weight[target[counted]]
    return -1, float(picked.sum(dtype=np.float64))


def cross_entropy(x, target, probs, class_weight, ignore_index, keep, spread, scale, loss, grad):
    """Per-item cross-entropy of the canonical logits ``x`` into ``loss`` (float64, ``(outer, inner)``),
    and its gradient times ``scale`` into ``grad`` unless None (see ``_losses``).

    Exactly one of ``target`` (int64 class indices, ``(outer, inner)``, validated) and ``probs``
    (probability targets, a canonical view like ``x``) is given; ``grad`` may be ``x`` itself.
    """
    options = (np.int64(ignore_index), float(keep), float(spread), float(scale))
    if x.shape[2] == 1:
        x, probs, grad, loss, target = _rows(x), _rows(probs), _rows(grad), _rows(loss), _rows(target)
        buffers = _staging_buffers(x, grad)
        kernels = _losses.cross_entropy_rows_serial, _losses.cross_entropy_rows_parallel
        _run(*kernels, x.size, x, target, probs, class_weight, options, loss, grad, buffers)
    else:
        kernels = _losses.cross_entropy_columns_serial, _losses.cross_entropy_columns_parallel
        _run(*kernels, x.size, x, target, probs, class_weight, options, loss, grad)


def nll_loss(logp, target, class_weight, ignore_index, loss):
    """``loss = -w[t] logp[t]`` per item of the canonical view ``logp`` (targets validated)."""
    _losses.nll_gather(logp, target, class_weight, ignore_index, loss)
