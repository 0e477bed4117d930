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
the 3-d ``(outer, n, inner)`` view in ``_forward``'s wide tiles and cache blocks (a block's sums
from one read of ``grad`` and ``y``, the blocks' sums added in block order, then the outputs from a
second read; blocks spread over threads when tiles are few), each driver in a serial and a
``prange`` version (the columns' in a split one too); ``out`` may be ``grad`` or ``y`` (in place),
written through a staging buffer then (see ``_staging``). Sums are blocked like
``_stats.row_sums``: fast-math (re-associated, hence vectorised) block sums added with Neumaier
compensation.
"""

import numpy as np
from numba import prange

from ._cache import njit
from ._exp import fast_exp
from ._forward import _block_task, _column_plan, _merge_chunks, _merge_task, tile_task
from ._optional import included
from ._scalar import acc_empty, load, store, to_acc
from ._staging import stage_copy, worker_share
from ._stats import _SUM_FASTMATH, COLUMN_BLOCK, ROW_BLOCK, compensated_add, compensated_total, finish_sums


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
def _block_sums(grad, y, where, o, i0, i1, j0, j1, total, log):
    """The sums of the column pieces ``[o, j0:j1, i0:i1]`` into ``total`` (1-d, one per column):
    plain over ``COLUMN_BLOCK`` rows, vectorised across the columns, added with compensation."""
    zero = to_acc(0.0, grad)
    total[:] = zero
    compensation = np.zeros_like(total)
    partial = np.empty_like(total)
    for start in range(j0, j1, COLUMN_BLOCK):
        partial[:] = zero
        for j in range(start, min(start + COLUMN_BLOCK, j1)):
            grad_j, y_j = grad[o, j, i0:i1], y[o, j, i0:i1]
            where_j = None if where is None else where[o, j, i0:i1]
            for t in range(i1 - i0):
                partial[t] += _sum_term(grad_j, y_j, where_j, t, log)
        for t in range(i1 - i0):
            total[t], compensation[t] = compensated_add(total[t], compensation[t], partial[t])
    finish_sums(total, compensation)


@njit(cache=True)
def _merge_sums(block_sums, total):
    """The column sums from their blocks' (``(blocks, columns)``), added in block order with
    compensation: one block's sum is passed through unchanged."""
    compensation = np.zeros_like(total)
    total[:] = 0
    for k in range(block_sums.shape[0]):
        sums = block_sums[k]
        for t in range(total.shape[0]):
            total[t], compensation[t] = compensated_add(total[t], compensation[t], sums[t])
    finish_sums(total, compensation)


@njit(cache=True)
def _gradient_block(grad, y, where, out, o, i0, i1, j0, j1, total, log):
    """The gradients of ``[o, j0:j1, i0:i1]`` from their columns' sums ``total``."""
    staged = np.empty(i1 - i0, dtype=out.dtype)  # out may be grad or y: see ``_staging``
    for j in range(j0, j1):
        grad_j, y_j, out_j = grad[o, j, i0:i1], y[o, j, i0:i1], out[o, j, i0:i1]
        where_j = None if where is None else where[o, j, i0:i1]
        for t in range(i1 - i0):
            staged[t] = _gradient_value(grad_j, y_j, where_j, staged, t, total[t], log)
        stage_copy(staged, out_j)


@njit(cache=True)
def _backward_tile(grad, y, where, out, o, i0, i1, rows, blocks, log):
    """The gradients of the columns ``[o, :, i0:i1]`` by one thread: the sums of each cache
    block (one read of ``grad`` and ``y``), their merge, then the outputs (a second read)."""
    n = grad.shape[1]
    block_sums = acc_empty((blocks, i1 - i0), grad)
    for k in range(blocks):
        _block_sums(grad, y, where, o, i0, i1, k * rows, min(k * rows + rows, n), block_sums[k], log)
    total = acc_empty(i1 - i0, grad)
    _merge_sums(block_sums, total)
    _gradient_block(grad, y, where, out, o, i0, i1, 0, n, total, log)


@njit(cache=True)
def _split_sums(grad, y, where, task, tiles, rows, blocks, block_sums, log):
    o, i0, i1, k, j0, j1 = _block_task(task, tiles, blocks, grad.shape[2], rows, grad.shape[1])
    _block_sums(grad, y, where, o, i0, i1, j0, j1, block_sums[o, k, i0:i1], log)


@njit(cache=True)
def _split_merge_sums(grad, task, block_sums, totals):
    o, c0, c1 = _merge_task(task, _merge_chunks(grad.shape[2]), grad.shape[2])
    _merge_sums(block_sums[o, :, c0:c1], totals[o, c0:c1])


@njit(cache=True)
def _split_gradients(grad, y, where, out, task, tiles, rows, blocks, totals, log):
    o, i0, i1, _, j0, j1 = _block_task(task, tiles, blocks, grad.shape[2], rows, grad.shape[1])
    _gradient_block(grad, y, where, out, o, i0, i1, j0, j1, totals[o, i0:i1], log)


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
            _backward_row(grad, y, where, out, None, np.int64(o), log)
    else:
        for worker in prange(buffers.shape[0]):
            start, stop = worker_share(grad.shape[0], buffers.shape[0], np.int64(worker))
            for o in range(start, stop):
                _backward_row(grad, y, where, out, buffers[worker], o, log)


# Column drivers: as ``_forward``'s, one task per tile, or (``*_split``, for a parallel call with
# too few tiles to go round) three parallel steps: the sums of every cache block, their merge per
# chunk of columns, the outputs of every block.


@njit(cache=True)
def backward_columns_serial(grad, y, where, out, log):
    outer, inner = grad.shape[0], grad.shape[2]
    tiles, rows, blocks = _column_plan(grad)
    for task in range(outer * tiles):
        o, i0, i1 = tile_task(task, tiles, inner)
        _backward_tile(grad, y, where, out, o, i0, i1, rows, blocks, log)


@njit(cache=True, parallel=True)
def backward_columns_parallel(grad, y, where, out, log):
    outer, inner = grad.shape[0], grad.shape[2]
    tiles, rows, blocks = _column_plan(grad)
    for task in prange(outer * tiles):
        o, i0, i1 = tile_task(np.int64(task), tiles, inner)
        _backward_tile(grad, y, where, out, o, i0, i1, rows, blocks, log)


@njit(cache=True, parallel=True)
def backward_columns_split(grad, y, where, out, log):
    outer, inner = grad.shape[0], grad.shape[2]
    tiles, rows, blocks = _column_plan(grad)
    block_sums = acc_empty((outer, blocks, inner), grad)
    for task in prange(outer * tiles * blocks):
        _split_sums(grad, y, where, np.int64(task), tiles, rows, blocks, block_sums, log)
    totals = acc_empty((outer, inner), grad)
    for task in prange(outer * _merge_chunks(inner)):
        _split_merge_sums(grad, np.int64(task), block_sums, totals)
    for task in prange(outer * tiles * blocks):
        _split_gradients(grad, y, where, out, np.int64(task), tiles, rows, blocks, totals, log)
