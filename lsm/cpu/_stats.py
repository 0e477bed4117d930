"""Per-group statistics shared by every CPU kernel.

A *group* is the set of elements ``x[o, :, i]`` of the canonical ``(outer, n, inner)`` view that
one reduction combines. For a group the kernels need

- ``m``: the largest included element, and ``k``: the first index where it occurs (-1 when no
  included element exceeds -inf: the group is empty, fully masked or all -inf);
- ``has_nan``: whether an included element is NaN;
- ``rest = sum_{j != k} b_j exp(x_j - m)``: the sum over every included element *except the
  maximum*. Leaving the maximal term out keeps the relative accuracy of
  ``log(b_k + rest) = log(b_k) + log1p(rest / b_k)`` when ``rest`` is tiny (for example
  ``logsumexp([0, -40]) = log1p(exp(-40)) = 4.248e-18``, which ``log(1 + rest)`` rounds to 0).

Sums are taken in blocks of ``SUM_BLOCK`` terms whose partial sums are added with Neumaier
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
def group_max(x, where, b, o, i):
    """``(m, k, has_nan)`` of the group ``x[o, :, i]`` (see the module docstring)."""
    m = to_acc(-np.inf, x)
    k = -1
    has_nan = False
    for j in range(x.shape[1]):
        if included(where, b, o, j, i):
            v = load(x[o, j, i])
            if v > m:
                m = v
                k = j
            elif v != v:
                has_nan = True
    return m, k, has_nan


@njit(cache=True)
def group_rest(x, where, b, o, i, m, k):
    """``sum_{j != k} b_j exp(x_j - m)`` over the included elements of the group ``x[o, :, i]``."""
    n = x.shape[1]
    total = to_acc(0.0, x)
    compensation = to_acc(0.0, x)
    for start in range(0, n, SUM_BLOCK):
        partial = to_acc(0.0, x)
        for j in range(start, min(start + SUM_BLOCK, n)):
            if j != k and included(where, b, o, j, i):
                partial += weight(b, x, o, j, i) * math.exp(load(x[o, j, i]) - m)
        total, compensation = compensated_add(total, compensation, partial)
    return total + compensation


@njit(cache=True)
def tile_stats(x, where, b, o, i0, i1):
    """Group statistics for the adjacent groups ``x[o, :, i0:i1]`` at once.

    Walks the reduced axis once per pass with the contiguous inner index innermost, so a column
    reduction streams through memory instead of striding down each column. Returns arrays
    ``(m, k, has_nan, rest)`` of length ``i1 - i0``.
    """
    n = x.shape[1]
    width = i1 - i0
    m = np.full(width, to_acc(-np.inf, x))
    k = np.full(width, -1, dtype=np.int64)
    has_nan = np.zeros(width, dtype=np.bool_)
    for j in range(n):
        for t in range(width):
            if included(where, b, o, j, i0 + t):
                v = load(x[o, j, i0 + t])
                if v > m[t]:
                    m[t] = v
                    k[t] = j
                elif v != v:
                    has_nan[t] = True
    total = np.zeros(width, dtype=m.dtype)
    compensation = np.zeros(width, dtype=m.dtype)
    partial = np.empty(width, dtype=m.dtype)
    for start in range(0, n, SUM_BLOCK):
        partial[:] = 0
        for j in range(start, min(start + SUM_BLOCK, n)):
            for t in range(width):
                if j != k[t] and included(where, b, o, j, i0 + t):
                    partial[t] += weight(b, x, o, j, i0 + t) * math.exp(load(x[o, j, i0 + t]) - m[t])
        for t in range(width):
            total[t], compensation[t] = compensated_add(total[t], compensation[t], partial[t])
    return m, k, has_nan, total + compensation
