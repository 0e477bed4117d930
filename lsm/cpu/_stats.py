"""Per-group statistics shared by every CPU kernel.

A *group* is the set of elements ``x[o, :, i]`` of the canonical ``(outer, n, inner)`` view that
one reduction combines. With ``m`` the largest included element, every kernel works from

.. math::

    S = \\sum_j b_j e^{x_j} = e^m (A + R), \\qquad
    A = \\sum_{x_j = m} b_j, \\qquad R = \\sum_{x_j < m} b_j e^{x_j - m}

(``b_j = 1`` without weights, so ``A`` counts the maxima). Keeping the maximal terms ``A`` out of
the sum ``R`` preserves the relative accuracy of ``log(A + R) = log(A) + log1p(R / A)`` when
``R`` is tiny: ``logsumexp([0, -40]) = log1p(exp(-40)) = 4.248e-18``, which ``log(1 + R)``
rounds to 0. It also covers the special groups without extra passes: ``m = -inf`` when nothing
above -inf is included, and ``m = +inf`` makes ``R = 0`` and ``A`` the weight at infinity.

``R`` is summed in blocks of ``SUM_BLOCK`` terms whose partial sums are added with Neumaier
compensation, so the rounding error stays at a few ulp for rows of any length (a plain running
sum of 10^6 float32 terms loses about three decimal digits).
"""

import math

import numpy as np
from numba import njit

from ._optional import included, weight
from ._scalar import load, to_acc

SUM_BLOCK = 32  # terms summed plainly before a compensated add


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
def group_max(x, where, b, o, i):
    """``(m, has_nan)``: the largest included element of ``x[o, :, i]`` (-inf if none) and
    whether any included element is NaN."""
    m = to_acc(-np.inf, x)
    has_nan = False
    for j in range(x.shape[1]):
        if included(where, b, o, j, i):
            v = load(x[o, j, i])
            has_nan |= v != v
            m = v if v > m else m
    return m, has_nan


@njit(cache=True)
def group_sums(x, where, b, o, i, m):
    """``(A, R)`` of the group ``x[o, :, i]`` for its maximum ``m`` (see the module docstring)."""
    n = x.shape[1]
    at_max = to_acc(0.0, x)
    total = to_acc(0.0, x)
    compensation = to_acc(0.0, x)
    for start in range(0, n, SUM_BLOCK):
        partial = to_acc(0.0, x)
        for j in range(start, min(start + SUM_BLOCK, n)):
            if included(where, b, o, j, i):
                v = load(x[o, j, i])
                w = weight(b, x, o, j, i)
                if v == m:
                    at_max += w
                else:
                    partial += w * math.exp(v - m)
        total, compensation = compensated_add(total, compensation, partial)
    return at_max, compensated_total(total, compensation)


@njit(cache=True)
def tile_stats(x, where, b, o, i0, i1):
    """``(m, has_nan, A, R)`` for the adjacent groups ``x[o, :, i0:i1]`` at once, as arrays.

    Walks the reduced axis with the contiguous inner index innermost, so a column reduction
    streams through memory instead of striding down each column.
    """
    n = x.shape[1]
    width = i1 - i0
    m = np.full(width, to_acc(-np.inf, x))
    has_nan = np.zeros(width, dtype=np.bool_)
    for j in range(n):
        for t in range(width):
            if included(where, b, o, j, i0 + t):
                v = load(x[o, j, i0 + t])
                has_nan[t] |= v != v
                m[t] = v if v > m[t] else m[t]
    at_max = np.zeros(width, dtype=m.dtype)
    total = np.zeros(width, dtype=m.dtype)
    compensation = np.zeros(width, dtype=m.dtype)
    partial = np.empty(width, dtype=m.dtype)
    for start in range(0, n, SUM_BLOCK):
        partial[:] = 0
        for j in range(start, min(start + SUM_BLOCK, n)):
            for t in range(width):
                if included(where, b, o, j, i0 + t):
                    v = load(x[o, j, i0 + t])
                    w = weight(b, x, o, j, i0 + t)
                    if v == m[t]:
                        at_max[t] += w
                    else:
                        partial[t] += w * math.exp(v - m[t])
        for t in range(width):
            total[t], compensation[t] = compensated_add(total[t], compensation[t], partial[t])
    for t in range(width):
        total[t] = compensated_total(total[t], compensation[t])
    return m, has_nan, at_max, total
