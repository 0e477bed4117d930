"""The streaming logsumexp states of ``lsm.streaming``, compiled (see that module for the math).

A state is the pair ``(m, l)`` of a partial sum :math:`S`: ``m`` its largest term's exponent and
``l = log(S e^-m)`` (``l = log S`` when ``m`` is not finite). It is the partial result the Dask
backend's softmax reductions carry (``lsm.dask._forward._normaliser_chunk``), and :func:`merge`
is their merge, ``_normaliser_merge``, for two partials: the same float64 operations, through
the kernels' own two-term logsumexp (``_forward``'s statistics, ``fast_exp``, ``fast_log``), so a
merge gives the bits the Dask merge gives.
"""

import numpy as np

from ._cache import njit
from ._exp import fast_exp
from ._forward import _log_count_plus_rest, _logsumexp_group, _usual_group
from ._stats import from_order_key, order_key

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
def merge(a, b):
    """The state of the sum of the two partial sums ``a`` and ``b`` (see ``lsm.streaming``)."""
    m_a, l_a = np.float64(a[0]), np.float64(a[1])
    m_b, l_b = np.float64(b[0]), np.float64(b[1])
    top = m_a if m_a > m_b or m_a != m_a else m_b  # the larger; NaN if either is, as np.max
    # a part whose maximum is the top one adds 0, so infinite maxima never form inf - inf
    u = l_a + (0.0 if m_a == top else m_a - top)
    v = l_b + (0.0 if m_b == top else m_b - top)
    return top, _logaddexp(u, v)


@njit(cache=True)
def finalise(s):
    """The logsumexp of a state (see ``lsm.streaming``)."""
    m, log_sum = np.float64(s[0]), np.float64(s[1])
    return (m if abs(m) < np.inf else 0.0) + log_sum
