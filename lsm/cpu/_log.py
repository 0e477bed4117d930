"""A vectorisable natural logarithm for the CPU kernels, for positive normal numbers.

Like ``math.exp``, Numba's ``math.log`` is a libm call that LLVM cannot vectorise, and a kernel
over short rows takes one logarithm per row. ``fast_log`` uses plain arithmetic instead:

.. math::

    s = 2^k (1 + f), \\quad 1 + f \\in [\\sqrt{1/2}, \\sqrt 2), \\qquad
    \\log s = k \\ln 2 + 2 \\operatorname{atanh} t
            = k \\ln 2 + 2 \\left(t + \\frac{t^3}{3} + \\frac{t^5}{5} + \\dots\\right),
    \\quad t = \\frac{f}{2 + f}

with ``|t| <= 0.1716``, so the series converges fast (terms to ``t^9`` in float32, ``t^21`` in
float64, each truncation far below an ulp). It is summed as
``log(1 + f) = f - f^2/2 + t (f^2/2 + t^2 P(t^2))`` with ``f = 2^-k s - 1`` exact (Sterbenz), so
the leading term carries no rounding and the rest is a small correction; ``k ln 2`` is added in
two parts. Error below one ulp of the result (0.84 ulp is the largest measured, in both
precisions); ``tests/test_log.py`` checks float32 against float64 over every binade and float64
against ``np.log`` in long double.

Only positive, finite, normal inputs are meant: the kernels call it on sums that are at least
one, and keep ``math.log`` for anything else.

``error_model="numpy"`` makes the division IEEE (no zero-division check, whose exception branch
would stop LLVM from vectorising a loop over ``fast_log``); so it is on every function that
divides inside such a loop.
"""

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload

from ._cache import njit
from ._scalar import f32_from_bits, f32_to_bits, f64_from_bits, f64_to_bits

_SQRT_HALF_BITS_32 = np.uint32(0x3F3504F3)  # float32 bits of sqrt(1/2)
_ONE_BITS_32 = np.uint32(0x3F800000)
_MANTISSA_32 = np.uint32(0x007FFFFF)
_SQRT_HALF_BITS_64 = np.int64(0x3FE6A09E667F3BCD)
_ONE_BITS_64 = np.int64(0x3FF0000000000000)
_MANTISSA_64 = np.int64(0x000FFFFFFFFFFFFF)
# ln 2 in two parts whose first times any exponent k is exact
_LN2_HI_32 = np.float32(0.693359375)
_LN2_LO_32 = np.float32(-2.12194440e-4)
_LN2_HI_64 = 6.93147180369123816490e-01
_LN2_LO_64 = 1.90821492927058770002e-10


@njit(cache=True, error_model="numpy")
def log32(s):
    """``log(s)`` for a positive normal float32 ``s``, vectorisable (see the module docstring)."""
    # Offsetting the bits by those of sqrt(1/2) puts the exponent step at sqrt(2) rather than 2.
    shifted = f32_to_bits(s) + (_ONE_BITS_32 - _SQRT_HALF_BITS_32)
    k = np.float32(np.int32(shifted >> np.uint32(23)) - np.int32(127))
    f = f32_from_bits((shifted & _MANTISSA_32) + _SQRT_HALF_BITS_32) - np.float32(1.0)  # exact
    t = f / (np.float32(2.0) + f)
    t2 = t * t
    series = ((np.float32(2 / 9) * t2 + np.float32(2 / 7)) * t2 + np.float32(2 / 5)) * t2 + np.float32(2 / 3)
    half_f2 = np.float32(0.5) * f * f
    # log(1 + f) = 2t + t^3 series = f - f^2/2 + t (f^2/2 + t^2 series): the exact f leads
    return k * _LN2_HI_32 + ((k * _LN2_LO_32 + t * (half_f2 + t2 * series)) - half_f2 + f)


@njit(cache=True, error_model="numpy")
def log64(s):
    """``log(s)`` for a positive normal float64 ``s``, vectorisable (see the module docstring)."""
    shifted = f64_to_bits(s) + (_ONE_BITS_64 - _SQRT_HALF_BITS_64)
    k = np.float64((shifted >> np.int64(52)) - np.int64(1023))
    f = f64_from_bits((shifted & _MANTISSA_64) + _SQRT_HALF_BITS_64) - 1.0
    t = f / (2.0 + f)
    t2 = t * t
    series = 2 / 21
    for power in range(19, 1, -2):  # unrolled by LLVM: 2/19, 2/17, ..., 2/3
        series = series * t2 + 2 / power
    half_f2 = 0.5 * f * f
    return k * _LN2_HI_64 + ((k * _LN2_LO_64 + t * (half_f2 + t2 * series)) - half_f2 + f)


def fast_log(s):
    """``log(s)`` in the precision of ``s`` (float32 or float64) for positive normal ``s``."""


@overload(fast_log, inline="always")
def _fast_log_overload(s):
    if s == types.float32:
        return lambda s: log32(s)
    if s == types.float64:
        return lambda s: log64(s)
    raise TypingError(f"fast_log takes float32 or float64, got {s}")
