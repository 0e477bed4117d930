r"""Streaming logsumexp: fold values or chunks into a running state, one at a time.

A loop that sees its terms one by one (or chunk by chunk: a stream, an online softmax, a
parallel reduction) keeps a *state* :math:`(m, \ell)` of its partial sum
:math:`S = \sum_j e^{x_j}`: :math:`m` is the largest :math:`x_j` so far and

.. math::

    \ell = \log \bigl(S e^{-m}\bigr) = \log \sum_j e^{x_j - m} \in [0, \log n]

(when :math:`m` is not finite, :math:`\ell = \log S` itself: :math:`-\infty` for an empty sum,
:math:`+\infty` or NaN). Two states merge as

.. math::

    m = \max(m_a, m_b), \qquad
    \ell = \log\bigl(e^{m_a - m} e^{\ell_a} + e^{m_b - m} e^{\ell_b}\bigr)

with :math:`m_k - m` taken as 0 where :math:`m_k = m`, so that infinite maxima never form
:math:`\infty - \infty`; and a state finalises to
:math:`\log S = m + \ell` (:math:`\ell` alone when :math:`m` is not finite). Keeping :math:`m`
and :math:`\ell` apart keeps :math:`\log S` as accurate as one logsumexp of all the terms:
:math:`\ell` stays small, so nothing overflows; the lower part's term is the product
:math:`e^{m_k - m} e^{\ell_k}`, never the exponential of :math:`\ell_k + (m_k - m)` rounded
(which would leave it up to :math:`|m_k - m|` ulps off, all of a result near 0); and with one part
on top, :math:`\ell = \log\bigl(1 + \operatorname{expm1}(\ell_{top}) + e^{m_k - m} e^{\ell_k}\bigr)`
keeps its :math:`\log1p` accuracy when the top part dominates.

This is the partial result and the merge of lsm's Dask backend (the reductions of
``lsm.log_softmax`` and ``lsm.logsumexp`` over chunked axes; with weights, of the sums of the
positive and of the negative weights apart): for NumPy blocks the same compiled code, so a merge
gives the bits the Dask merge gives. NaN anywhere gives NaN;
+inf (without NaN) gives +inf.

A chunk of terms enters as ``chunk_state(chunk)``; ``state(lsm.logsumexp(chunk))`` would hold
the chunk's log-sum rounded to one float, which costs a result near 0 up to
:math:`|m_k - m|` ulps of the chunk's term.

Every function here is compiled with Numba: it can be called from Python and from a user's
``@njit`` function alike. States are tuples of two float64 numbers (float32 arguments are
widened). See ``docs/numba.md``.

Examples
--------
>>> import numpy as np, lsm
>>> from lsm import streaming
>>> s = streaming.EMPTY
>>> for x in (0.0, -40.0):
...     s = streaming.merge(s, streaming.state(x))
>>> float(streaming.finalise(s))  # log(1 + e^-40), which log(1 + exp(-40)) rounds to 0
4.248354255291589e-18

A chunk of terms enters as its own state, its maximum and shifted sum kept apart:

>>> x = np.array([0.0, -31.669172932330827, -33.169172932330824])
>>> s = streaming.merge(streaming.chunk_state(x[:1]), streaming.chunk_state(x[1:]))
>>> float(streaming.finalise(s))  # log(1 + e^-31.67 + e^-33.17), to the last bit
2.156381633961573e-14
"""

from .cpu._streaming import chunk_state, finalise, merge, state

EMPTY = (float("-inf"), float("-inf"))
"""The state of an empty sum: merging with it changes nothing, and it finalises to -inf."""

state.__doc__ = r"""The state of a one-term sum :math:`e^x`.

Parameters
----------
x : float
    The term's exponent (any float, NaN and infinities included).

Returns
-------
tuple of float
    :math:`(x, 0)` for a finite ``x``, :math:`(x, x)` otherwise. For a chunk of terms, see
    :func:`chunk_state`.
"""

chunk_state.__doc__ = r"""The state of the sum of :math:`e^{x_j}` over a chunk of terms.

Parameters
----------
values : numpy.ndarray
    The terms' exponents: an integer, float32 or float64 array of any shape (read as float64,
    NaN and infinities included; an empty array is the empty sum).

Returns
-------
tuple of float
    :math:`(m, \ell)` with :math:`m = \max_j x_j` and
    :math:`\ell = \log(A + R)`, :math:`A` the count of terms equal to :math:`m` and
    :math:`R = \sum_{x_j < m} e^{x_j - m}` (compensated), as lsm's row kernels compute them;
    :math:`\ell = \log S` itself when :math:`m` is not finite (:data:`EMPTY` for an empty
    chunk). ``finalise(chunk_state(x))`` is ``lsm.logsumexp(x)`` to within an ulp, and merging
    the states of a split keeps each chunk's maximum and sum apart.
"""

merge.__doc__ = r"""The state of the sum of two partial sums.

Parameters
----------
a, b : tuple of float
    States :math:`(m_a, \ell_a)` and :math:`(m_b, \ell_b)` (see the module docstring).

Returns
-------
tuple of float
    :math:`(m, \ell) = (\max(m_a, m_b), \log(e^{m_a - m} e^{\ell_a} + e^{m_b - m} e^{\ell_b}))`,
    with lsm's Dask merge's operations (and so its bits) and NaN propagation.
"""

finalise.__doc__ = r"""The logsumexp :math:`\log S` of a state.

Parameters
----------
s : tuple of float
    A state :math:`(m, \ell)`.

Returns
-------
float
    :math:`m + \ell` for a finite :math:`m`, else :math:`\ell` (-inf for the empty sum).
"""

__all__ = ["EMPTY", "chunk_state", "finalise", "merge", "state"]
