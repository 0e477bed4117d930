"""Numba CPU kernels for cross-entropy (loss and gradient fused) and the negative log-likelihood.

Cross-entropy of one item (a group of ``C`` logits ``x`` along the class axis) is written with
per-class coefficients ``q_c``, the weight the loss puts on each log-probability:

.. math::

    \\ell = -\\sum_c q_c \\log p_c = Q \\log S - \\sum_c q_c (x_c - m), \\qquad
    \\frac{\\partial \\ell}{\\partial x_c} = p_c Q - q_c,

with ``m`` the largest logit, ``S = sum_c exp(x_c - m)``, ``p_c = exp(x_c - m) / S`` and
``Q = sum_c q_c``. With class weights ``w``, label smoothing ``eps`` and ``keep = 1 - eps``:

- a class-index target ``t``: ``q_c = w_c eps / C + [c = t] keep w_t``;
- probability targets ``r``: ``q_c = w_c (keep r_c + eps / C)``.

Terms with ``q_c = 0`` contribute nothing, even where ``x_c = -inf`` (``0 log 0 = 0``).

One pass finds ``m``, a second forms ``S`` (and, with smoothing or probability targets, the sums
of ``q_c (x_c - m)`` and ``q_c``), and the last writes the gradient, already multiplied by the
reduction's ``scale`` (``1 / total weight`` for a mean). A row that fits in cache is therefore
read once from memory and its gradient written once. A class axis that is not last is taken in
the forward path's tiles of adjacent columns, their ``(m, A, R)`` found cache block by cache
block (``_forward.tile_column_stats``: one read from memory), then the gradient pass reads them
again.
The gradient may be written over the logits themselves: every pass reads element ``c`` before
the last one writes it, and the last one writes through a staging buffer then (see ``_staging``)
so that it still vectorises.

Ignored items (``target == ignore_index``) get loss 0 and a zero gradient. The caller has
validated the targets: every other index lies in ``[0, C)``.
"""

import numpy as np
from numba import prange, types
from numba.extending import overload

from ._cache import njit
from ._exp import fast_exp
from ._forward import _column_plan, _normaliser, tile_column_stats, tile_task
from ._optional import weight
from ._scalar import load, store, to_acc
from ._staging import stage_copy, worker_share
from ._stats import (
    _SUM_FASTMATH,
    ROW_BLOCK,
    compensated_add,
    compensated_total,
    finish_sums,
    row_max,
    row_sums,
)

# The narrowest tile of the column kernels: a row of it fills a cache line (64 bytes) or more.
NARROWEST_TILE = 64


def target_probability(probs, index, like):
    """``probs[index]`` in the accumulation type of ``like``; 0 when ``probs`` is None."""


@overload(target_probability, inline="always")
def _target_probability_overload(probs, index, like):
    if probs is None or isinstance(probs, types.NoneType):
        return lambda probs, index, like: to_acc(0.0, like)
    return lambda probs, index, like: to_acc(load(probs[index]), like)


@njit(cache=True, inline="always")
def _coefficient(probs, p_index, class_weight, c, like, keep, spread):
    """``w_c (keep r_c + spread)``: ``q_c`` without the class-index term."""
    return weight(class_weight, like, c) * (keep * target_probability(probs, p_index, like) + spread)


@njit(cache=True, fastmath=_SUM_FASTMATH)
def _block_target_sums(block, probs, class_weight, shift, keep, spread):
    """``(sum q_c (x_c - shift), sum q_c)`` over a block of classes (``probs`` and
    ``class_weight`` sliced alike)."""
    zero = to_acc(0.0, block)
    weighted = zero
    total = zero
    for j in range(block.shape[0]):
        q = _coefficient(probs, j, class_weight, j, block, keep, spread)
        weighted += zero if q == 0 else q * (load(block[j]) - shift)
        total += q
    return weighted, total


@njit(cache=True)
def _row_target_sums(row, probs, class_weight, shift, keep, spread):
    n = row.shape[0]
    zero = to_acc(0.0, row)
    weighted, weighted_c = zero, zero
    total, total_c = zero, zero
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        block_probs = None if probs is None else probs[start:stop]
        block_weight = None if class_weight is None else class_weight[start:stop]
        w, q = _block_target_sums(row[start:stop], block_probs, block_weight, shift, keep, spread)
        weighted, weighted_c = compensated_add(weighted, weighted_c, w)
        total, total_c = compensated_add(total, total_c, q)
    return compensated_total(weighted, weighted_c), compensated_total(total, total_c)


@njit(cache=True, inline="always")
def _gradient_value(x, probs, class_weight, grad, c, p_index, shift, inv_norm, scaled):
    """``p_c Q - q_c`` as one conversion; ``scaled`` holds ``(Q, keep, spread, pick)`` already
    multiplied by the reduction's scale, and the class-index target ``t`` (-1 for none)."""
    big_q, keep, spread, pick, t = scaled
    p = fast_exp(load(x[p_index]) - shift) * inv_norm
    q = _coefficient(probs, p_index, class_weight, c, x, keep, spread)
    q = q + pick if c == t else q
    return store(p * big_q - q, grad)


@njit(cache=True)
def _cross_entropy_row(x, target, probs, class_weight, options, loss, grad, buffer, o):
    ignore_index, keep, spread, scale = options
    row = x[o]
    zero = to_acc(0.0, row)
    ignored = False if target is None else target[o] == ignore_index
    if ignored:
        loss[o] = 0.0
        if grad is not None:
            grad_row = grad[o]
            for c in range(row.shape[0]):
                grad_row[c] = store(zero, grad_row)
        return
    t = np.int64(-1) if target is None else np.int64(target[o])
    probs_row = None if probs is None else probs[o]
    keep_acc, spread_acc = to_acc(keep, row), to_acc(spread, row)
    m = row_max(row, None, None)
    at_max, rest = row_sums(row, None, None, m, None)
    shift, log_norm, inv_norm = _normaliser(row, m, at_max, rest)
    weighted, total = zero, zero
    if probs is not None or spread != 0:
        weighted, total = _row_target_sums(row, probs_row, class_weight, shift, keep_acc, spread_acc)
    pick = zero
    if target is not None:
        pick = keep_acc * weight(class_weight, row, t)
        weighted += zero if pick == 0 else pick * (load(row[t]) - shift)
        total += pick
    loss[o] = total * log_norm - weighted  # log_norm is finite or NaN: Q = 0 gives 0 or NaN
    if grad is not None:
        grad_row = grad[o]
        s = to_acc(scale, row)
        scaled = (total * s, keep_acc * s, spread_acc * s, pick * s, t)
        # written over the logits, the gradient goes through ``buffer`` first (see ``_staging``)
        staged = grad_row if buffer is None else buffer
        for c in range(row.shape[0]):
            staged[c] = _gradient_value(row, probs_row, class_weight, staged, c, c, shift, inv_norm, scaled)
        stage_copy(buffer, grad_row)


@njit(cache=True)
def _cross_entropy_tile(x, target, probs, class_weight, options, loss, grad, o, i0, i1, rows, blocks):
    ignore_index, keep, spread, scale = options
    n, width = x.shape[1], i1 - i0
    zero = to_acc(0.0, x)
    keep_acc, spread_acc, s = to_acc(keep, x), to_acc(spread, x), to_acc(scale, x)
    m, at_max, rest = tile_column_stats(x, None, None, o, i0, i1, rows, blocks)
    shift, log_norm, inv_norm = np.empty_like(m), np.empty_like(m), np.empty_like(m)
    for k in range(width):
        shift[k], log_norm[k], inv_norm[k] = _normaliser(x, m[k], at_max[k], rest[k])
    weighted, weighted_c = np.full(width, zero), np.full(width, zero)
    total, total_c = np.full(width, zero), np.full(width, zero)
    if probs is not None or spread != 0:
        for j in range(n):
            values = x[o, j, i0:i1]
            probs_j = None if probs is None else probs[o, j, i0:i1]
            for k in range(width):
                q = _coefficient(probs_j, k, class_weight, j, x, keep_acc, spread_acc)
                term = zero if q == 0 else q * (load(values[k]) - shift[k])
                weighted[k], weighted_c[k] = compensated_add(weighted[k], weighted_c[k], term)
                total[k], total_c[k] = compensated_add(total[k], total_c[k], q)
        finish_sums(weighted, weighted_c)
        finish_sums(total, total_c)
    targets = np.full(width, np.int64(-1))
    pick = np.full(width, zero)
    ignored = np.zeros(width, dtype=np.bool_)
    if target is not None:
        for k in range(width):
            t = np.int64(target[o, i0 + k])
            ignored[k] = t == ignore_index
            if not ignored[k]:
                targets[k] = t
                pick[k] = keep_acc * weight(class_weight, x, t)
                weighted[k] += zero if pick[k] == 0 else pick[k] * (load(x[o, t, i0 + k]) - shift[k])
                total[k] += pick[k]
    for k in range(width):
        loss[o, i0 + k] = 0.0 if ignored[k] else total[k] * log_norm[k] - weighted[k]
    if grad is not None:
        columns = (shift, inv_norm, total * s, pick * s, targets, ignored)
        _tile_gradient(x, probs, class_weight, grad, o, i0, i1, columns, (keep_acc * s, spread_acc * s))


@njit(cache=True)
def _tile_gradient(x, probs, class_weight, grad, o, i0, i1, columns, scaled):
    """The gradient ``p_c Q - q_c`` of the columns ``x[o, :, i0:i1]``, a row of the tile at a time.

    ``columns`` holds one array each of the columns' shifts, ``1 / S``, ``Q``, target picks
    (``Q`` and the picks already multiplied by the reduction's scale), class-index targets and
    whether each is ignored; ``scaled`` is ``(keep, spread)`` times the scale. No tuple is built
    per element: the loop over the tile's columns vectorises.
    """
    shift, inv_norm, big_q, pick, targets, ignored = columns
    keep, spread = scaled
    zero = to_acc(0.0, x)
    staged = np.empty(i1 - i0, dtype=grad.dtype)  # the gradient may be written over the logits
    for j in range(x.shape[1]):
        values, grad_j = x[o, j, i0:i1], grad[o, j, i0:i1]
        probs_j = None if probs is None else probs[o, j, i0:i1]
        w_j = weight(class_weight, x, j)
        for k in range(i1 - i0):
            p = fast_exp(load(values[k]) - shift[k]) * inv_norm[k]
            q = w_j * (keep * target_probability(probs_j, k, x) + spread)
            q = q + pick[k] if j == targets[k] else q
            staged[k] = store(zero if ignored[k] else p * big_q[k] - q, staged)
        stage_copy(staged, grad_j)


# --- drivers: rows take (outer, C) views and (outer,) losses, columns (outer, C, inner) and
# (outer, inner). ``target`` (int64 class indices) or ``probs`` (the logits' storage type) is
# None, and so is ``grad`` without a gradient; ``class_weight`` has one weight per class.
# ``options`` is ``(ignore_index, keep, spread, scale)``: ``keep = 1 - label_smoothing``,
# ``spread = label_smoothing / C`` and the gradient's factor ``scale``. ``buffers`` is None, or
# ``(workers, C)`` staging rows when ``grad`` is ``x`` itself (see ``_staging``).
# ``threads``, Numba's thread count of the call, sets the number of column tiles.


@njit(cache=True)
def cross_entropy_rows_serial(x, target, probs, class_weight, options, loss, grad, buffers):
    if buffers is None:
        for o in range(x.shape[0]):
            _cross_entropy_row(x, target, probs, class_weight, options, loss, grad, None, o)
    else:
        for o in range(x.shape[0]):
            _cross_entropy_row(x, target, probs, class_weight, options, loss, grad, buffers[0], o)


@njit(cache=True, parallel=True)
def cross_entropy_rows_parallel(x, target, probs, class_weight, options, loss, grad, buffers):
    if buffers is None:
        for o in prange(x.shape[0]):
            _cross_entropy_row(x, target, probs, class_weight, options, loss, grad, None, np.int64(o))
    else:  # one staging buffer per worker, each worker a contiguous share of the rows
        for worker in prange(buffers.shape[0]):
            start, stop = worker_share(x.shape[0], buffers.shape[0], np.int64(worker))
            for o in range(start, stop):
                _cross_entropy_row(x, target, probs, class_weight, options, loss, grad, buffers[worker], o)


@njit(cache=True)
def _loss_plan(x, threads):
    """``(tiles, rows, blocks)`` of the column kernels: the forward path's plan
    (``_forward._column_plan``), its tiles narrowed down to ``NARROWEST_TILE`` columns where
    ``x.shape[0]`` groups of them would leave threads idle. The tiles only decide who computes
    which columns, never a column's result."""
    tiles, rows, blocks = _column_plan(x)
    outer, inner = x.shape[0], x.shape[2]
    wanted = (threads + outer - 1) // outer
    return max(tiles, min(wanted, (inner + NARROWEST_TILE - 1) // NARROWEST_TILE)), rows, blocks


@njit(cache=True)
def cross_entropy_columns_serial(x, target, probs, class_weight, options, loss, grad, threads):
    tiles, rows, blocks = _loss_plan(x, threads)
    for task in range(x.shape[0] * tiles):
        o, i0, i1 = tile_task(task, tiles, x.shape[2])
        _cross_entropy_tile(x, target, probs, class_weight, options, loss, grad, o, i0, i1, rows, blocks)


@njit(cache=True, parallel=True)
def cross_entropy_columns_parallel(x, target, probs, class_weight, options, loss, grad, threads):
    tiles, rows, blocks = _loss_plan(x, threads)
    for task in prange(x.shape[0] * tiles):
        o, i0, i1 = tile_task(np.int64(task), tiles, x.shape[2])
        _cross_entropy_tile(x, target, probs, class_weight, options, loss, grad, o, i0, i1, rows, blocks)


@njit(cache=True)
def nll_gather(logp, target, class_weight, ignore_index, loss):
    """``loss[o, i] = -w_t logp[o, t, i]`` with ``t = target[o, i]`` (0 for ignored items and zero
    weights). Reads one element per item: no parallel version is worth its start-up."""
    for o in range(logp.shape[0]):
        for i in range(logp.shape[2]):
            t = np.int64(target[o, i])
            if t == ignore_index:
                loss[o, i] = 0.0
                continue
            w = weight(class_weight, logp, t)
            loss[o, i] = 0.0 if w == 0 else -(w * load(logp[o, t, i]))


@njit(cache=True)
def check_classes(target, n_classes, ignore_index, class_weight):
    """``(position, bad_weights, total)`` of the class weights and the class-index targets
    ``target`` (``(outer, inner)``, or None for probability targets: weights only).

    ``bad_weights`` counts the weights that are negative, NaN or infinite; when there are any, or
    no targets, ``position`` is -1 and ``total`` 0. Otherwise ``position`` is the flat position of
    the first target that is neither ``ignore_index`` nor in ``[0, n_classes)`` (-1 if none), and
    ``total`` the float64 sum of the counted targets' weights, compensated (Neumaier: within
    about an ulp of the exact sum for any number of items; 0.0 after a bad target). One
    compiled call, where NumPy expressions took a dozen (about 12 us of a small call).
    """
    bad_weights = 0
    for c in range(class_weight.shape[0]):
        w = class_weight[c]
        if not (abs(w) < np.inf and w >= 0):  # also NaN
            bad_weights += 1
    if target is None or bad_weights:
        return -1, bad_weights, 0.0
    inner = target.shape[1]
    total = compensation = 0.0
    for o in range(target.shape[0]):
        for i in range(inner):
            t = target[o, i]
            if t == ignore_index:
                continue
            if not 0 <= t < n_classes:
                return o * inner + i, 0, 0.0
            total, compensation = compensated_add(total, compensation, np.float64(class_weight[t]))
    return -1, 0, compensated_total(total, compensation)
