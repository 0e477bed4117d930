"""Numba CPU kernels for the gradients of log_softmax and softmax (vector-Jacobian products).

For a group with upstream gradient ``g`` and forward output ``y``:

.. math::

    \\text{log\\_softmax:}\\quad dx_j = g_j - e^{y_j} \\sum_k g_k, \\qquad
    \\text{softmax:}\\quad dx_j = y_j \\Bigl(g_j - \\sum_k g_k y_k\\Bigr)

Each group is read twice (a sum pass, then the output pass) and written once; a row of up to a
few hundred kilobytes stays in cache between the passes, so memory sees one read of each input
and one write. Elements outside a ``where`` mask take no part in the sum and get gradient 0 (a
fully masked group is all zeros), which is the gradient of the masked forward call, whose
excluded outputs are constants.

The layout follows ``_forward``: rows as 2-d ``(outer, n)`` views spread over threads, columns as
the 3-d ``(outer, n, inner)`` view in tiles of ``COLUMN_TILE`` adjacent columns, each driver in a
serial and a ``prange`` version; ``out`` may be ``grad`` or ``y`` (in place), written through
a staging buffer then (see ``_staging``). Sums are blocked like ``_stats.row_sums``: fast-math
(re-associated, hence vectorised) block sums added with Neumaier compensation.
"""

import numpy as np
from numba import njit, prange

from ._exp import fast_exp
from ._forward import _tile_bounds, _tile_count
from ._optional import included
from ._scalar import load, store, to_acc
from ._staging import stage_copy, worker_share
from ._stats import _SUM_FASTMATH, COLUMN_BLOCK, ROW_BLOCK, compensated_add, compensated_total


@njit(cache=True, inline="always")
def _sum_term(grad, y, where, j, log):
    """The term of element ``j`` in the group's sum: ``g_j`` (log_softmax) or ``g_j y_j`` (softmax),
    zero when excluded (a select, so NaN or inf at excluded places never leaks in)."""
    g = load(grad[j])
    term = g if log else g * load(y[j])
    return term if included(where, None, j) else to_acc(0.0, grad)


@njit(cache=True, inline="always")
def _gradient_value(grad, y, where, out, j, total, log):
    """One output element (0 where excluded), written as a single conversion so the loop vectorises."""
    g = load(grad[j])
    v = load(y[j])
    value = g - fast_exp(v) * total if log else v * (g - total)
    return store(value if included(where, None, j) else to_acc(0.0, grad), out)


@njit(cache=True, fastmath=_SUM_FASTMATH)
def _block_sum(grad, y, where, log):
    total = to_acc(0.0, grad)
    for j in range(grad.shape[0]):
        total += _sum_term(grad, y, where, j, log)
    return total


@njit(cache=True)
def _row_sum(grad, y, where, log):
    n = grad.shape[0]
    if n <= ROW_BLOCK:
        return _block_sum(grad, y, where, log)
    total = to_acc(0.0, grad)
    compensation = to_acc(0.0, grad)
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        block_where = None if where is None else where[start:stop]
        block = _block_sum(grad[start:stop], y[start:stop], block_where, log)
        total, compensation = compensated_add(total, compensation, block)
    return compensated_total(total, compensation)


@njit(cache=True)
def _backward_row(grad, y, where, out, buffer, o, log):
    grad_row, y_row, out_row = grad[o], y[o], out[o]
    where_row = None if where is None else where[o]
    total = _row_sum(grad_row, y_row, where_row, log)
    staged = out_row if buffer is None else buffer  # in place: through the buffer (``_staging``)
    for j in range(grad_row.shape[0]):
        staged[j] = _gradient_value(grad_row, y_row, where_row, staged, j, total, log)
    stage_copy(buffer, out_row)


@njit(cache=True)
def _backward_tile(grad, y, where, out, o, i0, i1, log):
    n = grad.shape[1]
    zero = to_acc(0.0, grad)
    total = np.full(i1 - i0, zero)
    compensation = np.full(i1 - i0, zero)
    partial = np.full(i1 - i0, zero)
    for start in range(0, n, COLUMN_BLOCK):
        partial[:] = zero
        for j in range(start, min(start + COLUMN_BLOCK, n)):
            grad_j, y_j = grad[o, j, i0:i1], y[o, j, i0:i1]
            where_j = None if where is None else where[o, j, i0:i1]
            for t in range(i1 - i0):
                partial[t] += _sum_term(grad_j, y_j, where_j, t, log)
        for t in range(i1 - i0):
            total[t], compensation[t] = compensated_add(total[t], compensation[t], partial[t])
    for t in range(i1 - i0):
        total[t] = compensated_total(total[t], compensation[t])
    staged = np.empty(i1 - i0, dtype=out.dtype)  # out may be grad or y: see ``_staging``
    for j in range(n):
        grad_j, y_j, out_j = grad[o, j, i0:i1], y[o, j, i0:i1], out[o, j, i0:i1]
        where_j = None if where is None else where[o, j, i0:i1]
        for t in range(i1 - i0):
            staged[t] = _gradient_value(grad_j, y_j, where_j, staged, t, total[t], log)
        stage_copy(staged, out_j)


# --- drivers: rows take (outer, n) views, columns (outer, n, inner) ---------------------------


# Row drivers take ``buffers``: None, or one staging row per worker when ``out`` is an input.


@njit(cache=True)
def backward_rows_serial(grad, y, where, out, buffers, log):
    if buffers is None:
        for o in range(grad.shape[0]):
            _backward_row(grad, y, where, out, None, o, log)
    else:
        for o in range(grad.shape[0]):
            _backward_row(grad, y, where, out, buffers[0], o, log)


@njit(cache=True, parallel=True)
def backward_rows_parallel(grad, y, where, out, buffers, log):
    if buffers is None:
        for o in prange(grad.shape[0]):
            _backward_row(grad, y, where, out, None, o, log)
    else:
        for worker in prange(buffers.shape[0]):
            start, stop = worker_share(grad.shape[0], buffers.shape[0], worker)
            for o in range(start, stop):
                _backward_row(grad, y, where, out, buffers[worker], o, log)


@njit(cache=True)
def backward_columns_serial(grad, y, where, out, log):
    for task in range(_tile_count(grad.shape[0], grad.shape[2])):
        o, i0, i1 = _tile_bounds(task, grad.shape[2])
        _backward_tile(grad, y, where, out, o, i0, i1, log)


@njit(cache=True, parallel=True)
def backward_columns_parallel(grad, y, where, out, log):
    for task in prange(_tile_count(grad.shape[0], grad.shape[2])):
        o, i0, i1 = _tile_bounds(task, grad.shape[2])
        _backward_tile(grad, y, where, out, o, i0, i1, log)
