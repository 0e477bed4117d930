"""Per-group statistics shared by every CPU kernel.

A *group* is the set of elements that one reduction combines: a row ``x[o, :]`` of the 2-d row
view, or a column ``x[o, :, i]`` of the canonical 3-d view. With ``m`` the largest included
element, every kernel works from

.. math::

    S = \\sum_j b_j e^{x_j} = e^m (A + R), \\qquad
    A = \\sum_{x_j = m} b_j, \\qquad R = \\sum_{x_j < m} b_j e^{x_j - m}

(``b_j = 1`` without weights, so ``A`` counts the maxima). Keeping the maximal terms ``A`` out of
the sum ``R`` preserves the relative accuracy of ``log(A + R) = log(A) + log1p(R / A)`` when
``R`` is tiny: ``logsumexp([0, -40]) = log1p(exp(-40)) = 4.248e-18``, which ``log(1 + R)``
rounds to 0. The special groups need no extra pass: ``m = -inf`` when nothing above -inf is
included, ``m = +inf`` makes ``R = 0`` and ``A`` the weight at infinity, and a NaN among the
included elements (or weights) makes ``R`` (or ``m``) NaN.

Speed comes from letting LLVM vectorise every loop:

- the row maximum is an integer maximum of order-preserving keys (a float max reduction does not
  vectorise without assuming away NaNs; an integer one always does);
- ``exp`` is ``fast_exp`` (plain arithmetic, see ``_exp``), not a libm call;
- ``A`` and ``R`` are accumulated with ``fastmath`` re-association in blocks of ``ROW_BLOCK``
  elements, which lets LLVM keep many partial sums in vector lanes, and the block sums are added
  with Neumaier compensation outside the fast-math code. The rounding error stays at a few ulp
  for rows of any length (a plain running sum of 10^6 float32 terms loses three decimal digits).

Column tiles vectorise across the contiguous inner axis instead, one partial sum per column,
summed plainly over ``COLUMN_BLOCK`` rows before each compensated add (``block_stats``). A long
column is taken in blocks of rows that stay in cache between the maximum and the sums, and the
blocks' statistics are merged with the column's maximum (``merge_block_stats``): every block is
rescaled once, by ``exp(m_k - m)``, never once per rise of a running maximum.
"""

import numpy as np
from numba import types
from numba.extending import overload

from ._cache import njit
from ._exp import fast_exp
from ._optional import included, put, weight, weight_if
from ._scalar import f32_from_bits, f32_to_bits, f64_from_bits, f64_to_bits, load, to_acc

ROW_BLOCK = 256  # row elements per vectorised block sum
COLUMN_BLOCK = 32  # column elements summed plainly before a compensated add
# Re-association lets LLVM split a sum over vector lanes; everything else stays IEEE (no nnan/ninf:
# NaN and inf must propagate).
_SUM_FASTMATH = {"reassoc", "contract"}


def order_key(v):
    """An integer whose signed order is the order of the float ``v`` (-0 < +0; NaN at the ends)."""


def from_order_key(key, like):
    """The float (of the type of ``like``) whose ``order_key`` is ``key``."""


@overload(order_key, inline="always")
def _order_key_overload(v):
    if v == types.float32:

        def key32(v):
            bits = np.int32(f32_to_bits(v))
            return np.int32(bits ^ ((bits >> np.int32(31)) & np.int32(0x7FFFFFFF)))

        return key32

    def key64(v):
        bits = f64_to_bits(v)
        return bits ^ ((bits >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF))

    return key64


@overload(from_order_key, inline="always")
def _from_order_key_overload(key, like):
    if like == types.float32:

        def value32(key, like):
            bits = np.int32(key ^ ((key >> np.int32(31)) & np.int32(0x7FFFFFFF)))
            return f32_from_bits(np.uint32(bits))

        return value32

    def value64(key, like):
        return f64_from_bits(key ^ ((key >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF)))

    return value64


@njit(cache=True)
def compensated_add(total, compensation, term):
    """Neumaier's step: ``total + term`` with the rounding error carried in ``compensation``."""
    new_total = total + term
    if abs(total) >= abs(term):
        compensation += (total - new_total) + term
    else:
        compensation += (term - new_total) + total
    return new_total, compensation


@njit(cache=True)
def compensated_total(total, compensation):
    """The compensated sum; an infinite total stands alone (its compensation is inf - inf)."""
    return total + compensation if abs(total) < np.inf else total


@njit(cache=True)
def row_max(row, where, b):
    """The largest included element of ``row`` (-inf if none; NaN if a positive NaN is included)."""
    lowest = to_acc(-np.inf, row)
    key = order_key(lowest)
    for j in range(row.shape[0]):
        candidate = order_key(load(row[j])) if included(where, b, j) else order_key(lowest)
        key = candidate if candidate > key else key
    return from_order_key(key, lowest)


@njit(cache=True, fastmath=_SUM_FASTMATH)
def _block_sums(block, where, b, m, exps):
    # Takes a slice rather than (start, stop) bounds: indices from range(len) are known to be
    # non-negative, which spares the negative-index fix-up that stops LLVM from vectorising.
    at_max = to_acc(0.0, block)
    rest = to_acc(0.0, block)
    for j in range(block.shape[0]):
        if included(where, b, j):
            v = load(block[j])
            w = weight(b, block, j)
            term = fast_exp(v - m)
            put(exps, j, term)
            at_max += weight_if(b, block, j, v == m)
            rest += to_acc(0.0, block) if v == m else w * term
    return at_max, rest


@njit(cache=True)
def row_sums(row, where, b, m, exps):
    """``(A, R)`` of ``row`` for its maximum ``m`` (see the module docstring).

    ``exps``, unless None, receives ``exp(x_j - m)`` for every element on the way, for softmax
    to rescale instead of exponentiating again. It has no default: Numba types an omitted
    argument apart from an explicit None, so a default would compile this function twice for
    the same arguments.
    """
    n = row.shape[0]
    if n <= ROW_BLOCK:  # one block: nothing to compensate, and short rows skip the loop's cost
        return _block_sums(row, where, b, m, exps)
    at_max = to_acc(0.0, row)
    total = to_acc(0.0, row)
    compensation = to_acc(0.0, row)
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        block_where = None if where is None else where[start:stop]
        block_b = None if b is None else b[start:stop]
        block_exps = None if exps is None else exps[start:stop]
        block_at_max, block_rest = _block_sums(row[start:stop], block_where, block_b, m, block_exps)
        at_max += block_at_max
        total, compensation = compensated_add(total, compensation, block_rest)
    return at_max, compensated_total(total, compensation)


@njit(cache=True, fastmath=_SUM_FASTMATH)
def _sums_of_exps(row, where, b, m, exps):
    """``(A, R)`` of ``row`` from its exponentials ``exps[j] = exp(x_j - m)``, already computed."""
    at_max = to_acc(0.0, row)
    rest = to_acc(0.0, row)
    for j in range(row.shape[0]):
        if included(where, b, j):
            v = load(row[j])
            at_max += weight_if(b, row, j, v == m)
            rest += to_acc(0.0, row) if v == m else weight(b, row, j) * exps[j]
    return at_max, rest


@njit(cache=True)
def _exp_in_place(values):
    for k in range(values.shape[0]):
        values[k] = fast_exp(values[k])


@njit(cache=True)
def short_row_stats(x, where, b, r0, r1, exps):
    """``(m, A, R)`` of the short rows ``x[r0:r1]`` as arrays, and ``exps[r] = exp(x[r0 + r] - m_r)``.

    A row of a few dozen elements is too short for a vector loop over it to pay: the loop's setup,
    its scalar remainder and the horizontal sum at its end cost more than its exponentials. So the
    rows of a chunk go through each step together: every maximum, then every shifted row into
    ``exps`` (a ``(rows, n)`` scratch), then *one* loop of exponentials over the whole chunk, which
    vectorises at full width whatever the row length, then the per-row sums of those.
    """
    rows = r1 - r0
    m = np.empty(rows, dtype=exps.dtype)
    for r in range(rows):
        m[r] = row_max(x[r0 + r], _row(where, r0 + r), _row(b, r0 + r))
    for r in range(rows):
        row, shifted = x[r0 + r], exps[r]
        for j in range(row.shape[0]):
            shifted[j] = load(row[j]) - m[r]
    _exp_in_place(exps.reshape(-1))
    at_max = np.empty_like(m)
    rest = np.empty_like(m)
    for r in range(rows):
        at_max[r], rest[r] = _sums_of_exps(x[r0 + r], _row(where, r0 + r), _row(b, r0 + r), m[r], exps[r])
    return m, at_max, rest


@njit(cache=True)
def _row(operand, o):
    """``operand[o]``, or None for an absent operand."""
    return None if operand is None else operand[o]


@njit(cache=True)
def _tile_max(new, old, values, where, b):
    # Into another array than it reads: written in place, ``m[t] = v if v > m[t] else m[t]``
    # stores only where the maximum rises, which LLVM vectorises as masked stores (vmaskmovps),
    # seven times slower per element than a blend and a plain store on an AMD Zen 3
    for t in range(old.shape[0]):
        v = load(values[t]) if included(where, b, t) else to_acc(-np.inf, values)
        new[t] = v if v > old[t] else old[t]


@njit(cache=True)
def _tile_add(at_max, partial, values, where, b, m):
    zero = to_acc(0.0, values)
    for t in range(m.shape[0]):
        if included(where, b, t):
            v = load(values[t])
            w = weight(b, values, t)
            term = fast_exp(v - m[t])
            at_max[t] += weight_if(b, values, t, v == m[t])
            partial[t] += zero if v == m[t] else w * term


@njit(cache=True)
def finish_sums(total, compensation):
    """Fold each column's Neumaier compensation into its total (one place for every column sum)."""
    for t in range(total.shape[0]):
        total[t] = compensated_total(total[t], compensation[t])


@njit(cache=True)
def block_stats(x, where, b, o, i0, i1, j0, j1, m, at_max, rest):
    """``(m, A, R)`` of the column pieces ``x[o, j0:j1, i0:i1]``, written into ``m``, ``at_max``
    and ``rest`` (1-d, ``i1 - i0`` long).

    Two passes over the rows ``j0:j1``: their maxima, then ``A`` and ``R`` for those maxima, the
    latter in plain per-column sums over ``COLUMN_BLOCK`` rows added with Neumaier compensation.
    Each row is a run of ``i1 - i0`` adjacent elements and each step is a vector operation across
    it (on 1-d slices, whose non-negative indices LLVM can vectorise). The column kernels call it
    on *cache blocks* (``_forward``): rows few enough that the second pass finds them in the
    cache the first pass brought them into, so memory sees one read.
    """
    current, spare = m, np.empty_like(m)  # the running maxima move between two arrays
    current[:] = to_acc(-np.inf, x)
    for j in range(j0, j1):
        _tile_max(spare, current, x[o, j, i0:i1], _tile_row(where, o, j, i0, i1), _tile_row(b, o, j, i0, i1))
        current, spare = spare, current
    # The maxima into m (onto themselves when they ended there), element by element:
    # ``m[:] = current`` would compile Numba's shape check, with its error message's string
    # formatting, into every column kernel
    for t in range(m.shape[0]):
        m[t] = current[t]
    at_max[:] = 0
    total = rest
    total[:] = 0
    compensation = np.zeros_like(m)
    partial = np.empty_like(m)
    for start in range(j0, j1, COLUMN_BLOCK):
        partial[:] = 0
        for j in range(start, min(start + COLUMN_BLOCK, j1)):
            where_j, b_j = _tile_row(where, o, j, i0, i1), _tile_row(b, o, j, i0, i1)
            _tile_add(at_max, partial, x[o, j, i0:i1], where_j, b_j, m)
        for t in range(m.shape[0]):
            total[t], compensation[t] = compensated_add(total[t], compensation[t], partial[t])
    finish_sums(total, compensation)


@njit(cache=True)
def _merge_block(at_max, total, compensation, block_m, block_a, block_r, m):
    zero = to_acc(0.0, m)
    for t in range(m.shape[0]):
        same = block_m[t] == m[t]
        at_max[t] += block_a[t] if same else zero
        # a conditional, not a product: a block's sums may hold inf or NaN that a zero factor
        # must not hide, and a block at the maximum must not be multiplied by exp(0) at all
        term = block_r[t] if same else (block_a[t] + block_r[t]) * fast_exp(block_m[t] - m[t])
        total[t], compensation[t] = compensated_add(total[t], compensation[t], term)


@njit(cache=True)
def merge_block_stats(block_m, block_a, block_r, m, at_max, rest):
    """The ``(m, A, R)`` of whole columns from those of their blocks, written into ``m``,
    ``at_max`` and ``rest`` (1-d, one entry per column).

    ``block_m``, ``block_a``, ``block_r`` are ``(blocks, columns)`` views of ``block_stats``'
    results for consecutive row blocks. With ``m = max_k m_k``,

    .. math::

        A = \\sum_{m_k = m} A_k, \\qquad
        R = \\sum_{m_k = m} R_k + \\sum_{m_k < m} (A_k + R_k)\\, e^{m_k - m},

    added in block order with Neumaier compensation. Every block is rescaled once, by the
    column's true maximum: unlike a running (online) rescale, whose rounding errors pile up each
    time the maximum rises, this costs a block at most one exponential and one product (about an
    eps of its own, already shrunk, share), whatever the column's length and however often its
    maximum rises. ``A`` stays an exact count (an exact weight sum) of the maxima. A block with
    nothing included has ``m_k = -inf``, ``A_k = R_k = 0`` and adds nothing (or, in an all
    ``-inf`` column, its count of maxima); inf and NaN in a block's sums propagate, as in one pass.
    One difference from a single pass remains, with weights near the largest float only: a
    block's weighted sum, taken against its own maximum, may overflow to inf where its terms
    against the column's maximum would not.
    """
    m[:] = to_acc(-np.inf, m)
    for k in range(block_m.shape[0]):
        values = block_m[k]
        for t in range(m.shape[0]):
            m[t] = values[t] if values[t] > m[t] else m[t]
    at_max[:] = 0
    total = rest
    total[:] = 0
    compensation = np.zeros_like(m)
    for k in range(block_m.shape[0]):
        _merge_block(at_max, total, compensation, block_m[k], block_a[k], block_r[k], m)
    finish_sums(total, compensation)


@njit(cache=True)
def _tile_row(operand, o, j, i0, i1):
    """``operand[o, j, i0:i1]``, or None for an absent operand."""
    return None if operand is None else operand[o, j, i0:i1]
