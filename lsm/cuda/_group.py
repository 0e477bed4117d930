"""Per-group math shared by the CUDA kernels: the same contract as ``lsm.cpu._forward``.

A group (one row, or one column of the canonical ``(outer, n, inner)`` view) is summarised by

.. math::

    S = \\sum_j b_j e^{x_j} = e^m (A + R), \\qquad
    A = \\sum_{x_j = m} b_j, \\qquad R = \\sum_{x_j < m} b_j e^{x_j - m}

with ``m`` the largest included element (``b_j = 1`` without weights). Keeping the maximal terms
out of ``R`` keeps ``log(A + R) = log(A) + log1p(R / A)`` accurate when ``R`` is tiny. The
special groups need no extra pass: ``m = -inf`` when nothing above -inf is included, ``m = +inf``
makes ``R = 0`` and ``A`` the weight at infinity, and an included NaN makes ``R`` NaN (a NaN is
never the maximum: ``v > m`` is false for it, so it lands in ``R`` as ``exp(NaN)``).

Partial summaries of pieces of a group (warps, blocks, split-row chunks) are combined by
rescaling each to the common maximum (``merge``). Long sums per thread use Neumaier
compensation, like the CPU kernels' block sums.

A thread that reads its elements from global memory summarises them in one pass
(``online_add``, then ``online_finish``), without knowing ``m`` in advance. Rescaling the running
sum at every rise of the running maximum would multiply it by a rounded ``e^{m_old - m_new}``
once per rise, an error that grows with the number of rises (on a float64 group of 4096 sorted
values 1/1024 apart it exceeds the contract's 4 eps: ``tests/test_cuda_sim.py``). So the sum is
kept relative to a *reference* ``r <= m`` instead, the maximum that last set it, and rescaled
only when the maximum climbs more than ``RESCALE_GAP`` above ``r``: each earlier term then
shrinks by at least ``e^{-RESCALE_GAP}``, so a term carries the rounding of at most one rescale
that matters. Its terms ``w e^{x - r}`` reach ``w e^{RESCALE_GAP}``, so each is scaled by
``2^-24`` (exactly: a power of two) to stay at most its weight, and nothing overflows that two
passes would not (weights of 1e35 in float32 did without the scale). The reference is an
element's own value, so ``x - r`` is as exact as the two passes' ``x - m`` (a reference offset
from it, such as ``m + 16``, rounds the exponent's argument: 16 eps off on groups dominated by
one term). The rescales (and the final one from ``r`` to ``m``) are computed in float64 and
rounded once.

``build(acc)`` returns the device functions for accumulation type ``acc``.
"""

import functools
import math

import numpy as np
from numba import float64

from ._elements import narrow, widen
from ._numba import cuda

#: How far the running maximum may climb above the reference of a thread's running sum before
#: the sum is rescaled (see the module docstring); ``e^16 < 2^24``, the scale of its terms.
RESCALE_GAP = 16.0


@functools.cache
def build(acc):
    """Device functions for accumulation type ``acc`` (float32 or float64), by name."""
    nan, inf, zero, one = acc(np.nan), acc(np.inf), acc(0), acc(1)
    gap = acc(RESCALE_GAP)
    tiny, big = acc(2.0**-24), acc(2.0**24)  # exact scales of a one-pass sum's terms

    @cuda.jit(device=True)
    def element(value):
        """An element read from an array, as ``acc`` (bfloat16 widened by ``_elements``)."""
        return acc(widen(value))

    @cuda.jit(device=True)
    def included(where, b, index):
        """Whether element ``index`` takes part: ``where`` is True there and ``b`` is nonzero.
        A None operand compiles away."""
        keep = True
        if where is not None:
            keep = where[index]
        if b is not None:
            keep = keep and b[index] != 0
        return keep

    @cuda.jit(device=True)
    def weight(b, index):
        """``b[index]`` in the accumulation type, one without weights."""
        return one if b is None else element(b[index])

    @cuda.jit(device=True)
    def sign_of(value):
        return one if value > 0 else (-one if value < 0 else zero)

    @cuda.jit(device=True)
    def compensated_add(total, compensation, term):
        """Neumaier's step: ``total + term``, the rounding error carried in ``compensation``."""
        new_total = total + term
        if abs(total) >= abs(term):
            compensation += (total - new_total) + term
        else:
            compensation += (term - new_total) + total
        return new_total, compensation

    @cuda.jit(device=True)
    def compensated_total(total, compensation):
        """The compensated sum; an infinite total stands alone (its compensation is inf - inf)."""
        return total + compensation if abs(total) < inf else total

    @cuda.jit(device=True)
    def add_term(value, w, m, at_max, total, compensation):
        """Account one included element of value ``value`` and weight ``w`` against maximum ``m``.

        At the maximum the weight goes to ``A`` (a conditional, not a product: an infinite weight
        times zero would be NaN); below it ``w e^{x - m}`` goes to the compensated ``R``.
        """
        if value == m:
            at_max += w
        else:
            total, compensation = compensated_add(total, compensation, w * math.exp(value - m))
        return at_max, total, compensation

    @cuda.jit(device=True)
    def rescaled(value, old, new):
        """``value e^{old - new}``: a sum of terms ``e^{x - old}`` made relative to ``new``, in
        float64 and rounded once."""
        return acc(float64(value) * math.exp(float64(old) - float64(new)))

    @cuda.jit(device=True)
    def online_add(value, w, m, at_max, ref, total, compensation):
        """Account one included element in a thread's one-pass summary ``(m, A, r, T)``.

        ``T`` (compensated) is ``R`` relative to the reference ``r <= m`` and scaled by
        ``2^-24``: ``R = 2^24 T e^{r - m}``. A new maximum moves the old maximal terms into ``T``
        as ``2^-24 A e^{m - r}`` and, only when it lies more than ``RESCALE_GAP`` above ``r``
        (always the first time, when ``r = -inf``; and for ``+inf``), becomes the reference. The
        special groups come out as in two passes: a NaN is never a maximum and lands in ``T`` as
        ``exp(NaN)``; ``-inf`` elements count in ``A`` until a larger one gives them
        ``e^{-inf} = 0``; after ``+inf`` every finite term is 0.
        """
        if value > m:
            if value - ref > gap:
                total, compensation = rescaled(total, ref, value), rescaled(compensation, ref, value)
                ref = value
            total, compensation = compensated_add(total, compensation, at_max * (math.exp(m - ref) * tiny))
            m, at_max = value, w
        elif value == m:
            at_max += w
        else:
            total, compensation = compensated_add(total, compensation, w * (math.exp(value - ref) * tiny))
        return m, at_max, ref, total, compensation

    @cuda.jit(device=True)
    def online_finish(m, at_max, ref, total, compensation):
        """``(m, A, R)`` of a one-pass summary: ``R = 2^24 T e^{r - m}`` (``r = m`` for the
        special groups, whose maximum is infinite)."""
        rest = compensated_total(total, compensation)
        if ref != m:
            rest = rescaled(rest, ref, m)
        return m, at_max, rest * big

    @cuda.jit(device=True)
    def merge(m, at_max, rest, m2, at_max2, rest2):
        """Combine two summaries ``(m, A, R)`` of disjoint pieces of one group."""
        if m2 > m:
            m, at_max, rest, m2, at_max2, rest2 = m2, at_max2, rest2, m, at_max, rest
        if m2 == m:
            return m, at_max + at_max2, rest + rest2
        # m2 < m (or NaN): the smaller piece joins R, scaled by e^{m2 - m} (0 when m2 = -inf;
        # a NaN in it stays NaN)
        return m, at_max, rest + rescaled(at_max2 + rest2, m2, m)

    @cuda.jit(device=True)
    def log_a_plus_r(a, r):
        """``log(a + r) = log(a) + log1p(r / a)`` for ``a > 0``; one call when ``a == 1``."""
        return math.log1p(r) if a == one else math.log(a) + math.log1p(r / a)

    @cuda.jit(device=True)
    def normaliser(m, at_max, rest):
        """``(shift, log_norm, inv_norm)`` of a softmax group, as ``lsm.cpu._forward._normaliser``:
        outputs are ``x - shift - log_norm`` and ``exp(x - shift) * inv_norm``; a group with NaN
        or +inf, or with only -inf included, gets NaN everywhere."""
        if not abs(m) < inf or rest != rest:
            return nan, nan, nan
        return m, log_a_plus_r(at_max, rest), one / (at_max + rest)

    @cuda.jit(device=True)
    def softmax_value(value, shift, log_norm, inv_norm, log):
        d = value - shift
        return d - log_norm if log else math.exp(d) * inv_norm

    @cuda.jit(device=True)
    def logsumexp_value(m, at_max, rest):
        """``(log|S|, sign(S))`` of ``S = e^m (A + R)``, as ``lsm.cpu._forward._logsumexp_group``."""
        if m != m or at_max != at_max or rest != rest:
            return nan, nan
        if m == -inf:
            return m, zero
        if m == inf:
            if at_max == 0:
                return nan, nan
            return m, sign_of(at_max)
        big, small = (at_max, rest) if abs(at_max) >= abs(rest) else (rest, at_max)
        if abs(big) == inf:
            total = at_max + rest
            if total != total:
                return nan, nan
            return abs(total), sign_of(total)
        if big == 0 or small / big == -one:
            return -inf, zero
        return m + log_a_plus_r(abs(big), small * sign_of(big)), sign_of(big)

    @cuda.jit(device=True)
    def store_logsumexp(lse, sign, index, m, at_max, rest):
        """Write ``lse[index]`` (NaN for a negative sum without ``sign``) and ``sign[index]``."""
        value, value_sign = logsumexp_value(m, at_max, rest)
        if sign is None:
            lse[index] = narrow(nan if value_sign < 0 else value, lse)
        else:
            lse[index] = narrow(value, lse)
            sign[index] = narrow(value_sign, sign)

    return {
        "element": element,
        "included": included,
        "weight": weight,
        "add_term": add_term,
        "merge": merge,
        "rescaled": rescaled,
        "online_add": online_add,
        "online_finish": online_finish,
        "compensated_add": compensated_add,
        "compensated_total": compensated_total,
        "normaliser": normaliser,
        "softmax_value": softmax_value,
        "logsumexp_value": logsumexp_value,
        "store_logsumexp": store_logsumexp,
    }
