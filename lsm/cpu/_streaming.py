"""The streaming logsumexp states of ``lsm.streaming``, compiled (see that module for the math).

A state is the pair ``(m, l)`` of a partial sum :math:`S`: ``m`` its largest term's exponent and
``l = log(S e^-m)`` (``l = log S`` when ``m`` is not finite). It is the partial result the Dask
backend's reductions carry (``lsm.dask._forward._normaliser_chunk``), and :func:`merge_rows`,
a fold of :func:`merge`, is their merge for NumPy blocks (``_normaliser_merge``): the same
compiled code, so a merge gives the bits the Dask merge gives.
"""

import math

import numpy as np

from ._cache import njit
from ._exp import fast_exp
from ._forward import _log_count_plus_rest, _logsumexp_group, _usual_group
from ._stats import from_order_key, order_key, row_max, row_sums

# The float64 array _logsumexp_group takes its result type from (a constant in compiled code).
_FLOAT64 = np.empty(0)


@njit(cache=True)
def _logaddexp(u, v):
    """logsumexp of ``[u, v]`` as the short-row kernel computes it: ``m`` the larger (a NaN with
    its sign bit clear wins, one with it set loses, as in ``_stats.row_max``), ``A`` the count of
    terms equal to it, ``R`` the other term's ``exp(x - m)``."""
    key = max(order_key(-np.inf), order_key(u), order_key(v))
    m = from_order_key(key, u)
    at_max = np.float64(u == m) + np.float64(v == m)
    rest = (0.0 if u == m else fast_exp(u - m)) + (0.0 if v == m else fast_exp(v - m))
    if _usual_group(m, at_max, rest):
        return m + _log_count_plus_rest(at_max, rest)
    return _logsumexp_group(_FLOAT64, m, at_max, rest)[0]


@njit(cache=True)
def state(value):
    """The state of the one-term sum :math:`e^x` (see ``lsm.streaming``)."""
    value = np.float64(value)
    return value, value - value if abs(value) < np.inf else value


@njit(cache=True)
def chunk_state(values):
    """The state of the sum of ``e^x`` over the elements of ``values`` (see ``lsm.streaming``):
    the maximum ``m`` and the log of the shifted sum, kept apart as the row kernels keep them
    (``m + log(A + R)``, ``A`` the count of maxima, ``R`` the compensated sum of the rest)."""
    terms = values.ravel().astype(np.float64)
    m = row_max(terms, None, None)
    at_max, rest = row_sums(terms, None, None, m, None)
    if _usual_group(m, at_max, rest):
        return m, _log_count_plus_rest(at_max, rest)
    # m not finite (l is then log S itself: -inf, +inf or NaN), or NaN among the terms
    return m, _logsumexp_group(_FLOAT64, m, at_max, rest)[0]


@njit(cache=True)
def merge(a, b):
    """The state of the sum of the two partial sums ``a`` and ``b`` (see ``lsm.streaming``)."""
    m_a, l_a = np.float64(a[0]), np.float64(a[1])
    m_b, l_b = np.float64(b[0]), np.float64(b[1])
    top = m_a if m_a > m_b or m_a != m_a else m_b  # the larger; NaN if either is, as np.max
    if abs(top) < np.inf and (m_a == top) != (m_b == top):  # one part on a finite top
        if m_a == top:
            return top, _log_sum_below_top(l_a, m_b - top, l_b)
        return top, _log_sum_below_top(l_b, m_a - top, l_a)
    # a tie at a finite top, or a top that is not finite (l is then log S itself): a part whose
    # maximum is the top one adds 0, so infinite maxima never form inf - inf
    u = l_a + (0.0 if m_a == top else m_a - top)
    v = l_b + (0.0 if m_b == top else m_b - top)
    return top, _logaddexp(u, v)


@njit(cache=True)
def _log_sum_below_top(l_top, offset, l_low):
    """``log(e^l_top + e^offset e^l_low)`` for ``offset < 0``: the ``l`` of two parts, the second's
    maximum ``offset`` below the first's.

    The second part's term is ``e^offset e^l_low``, a product: ``offset + l_low`` rounded to one
    float would cost its exponential up to ``|offset|`` ulps of relative accuracy, all of the
    result when the first part is a lone maximum (``l_top = 0``: the result is then about that
    term). And ``e^l_top = 1 + expm1(l_top)``, so a ``l_top`` below an ulp of 1 (a maximum and
    terms under ``e^-37``) keeps its share too: ``log(1 + r)`` for ``r = expm1(l_top) + term``
    keeps a tiny ``r``'s relative accuracy (``_log_count_plus_rest``). A part's sum that
    overflowed (``l = +inf``, possible with weights: a Dask weighted logsumexp merges its parts
    here) makes the result +inf, a NaN one NaN.
    """
    term = fast_exp(offset) * fast_exp(l_low)
    if term == 0:  # an empty part, or one far below: l_top unchanged, bit for bit
        return l_top
    rest = math.expm1(l_top) + term
    if not rest < math.inf:  # +inf or NaN, which log(1 + rest) keeps
        return rest
    return _log_count_plus_rest(1.0, rest)


@njit(cache=True)
def merge_rows(tops, logs):
    """The state of each row of the states ``(tops[i, k], logs[i, k])`` (2-d float64 arrays):
    :func:`merge` folded over ``k`` from the left. The Dask merge of NumPy partials."""
    rows, parts = tops.shape
    top, log_sum = np.empty(rows), np.empty(rows)
    for i in range(rows):
        s = (tops[i, 0], logs[i, 0])
        for k in range(1, parts):
            s = merge(s, (tops[i, k], logs[i, k]))
        top[i], log_sum[i] = s
    return top, log_sum


@njit(cache=True)
def finalise(s):
    """The logsumexp of a state (see ``lsm.streaming``)."""
    m, log_sum = np.float64(s[0]), np.float64(s[1])
    return (m if abs(m) < np.inf else 0.0) + log_sum
