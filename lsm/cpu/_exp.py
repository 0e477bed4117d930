"""A vectorisable ``exp`` for the CPU kernels.

Numba's ``math.exp`` is a call into libm, which LLVM cannot vectorise (this Numba has no SVML),
so a loop of exponentials runs one element at a time. ``fast_exp`` uses plain float and integer
arithmetic only, so LLVM turns loops over it into SIMD code:

.. math::

    e^x = 2^k e^r, \\qquad k = \\lfloor x \\log_2 e + 1/2 \\rfloor, \\qquad
    r = x - k \\ln 2 \\in [-\\tfrac{\\ln 2}{2}, \\tfrac{\\ln 2}{2}]

with ``k ln 2`` subtracted in two parts (Cody and Waite) so that ``r`` is exact to working
precision, ``e^r`` from a polynomial (Cephes' minimax polynomial in float32, a Chebyshev fit of
degree 11 in float64) evaluated with fused multiply-adds, and ``2^k`` written straight into
the exponent bits as two factors ``2^(k//2) 2^(k - k//2)``, so results near overflow and in the
subnormal range come out right. The integer ``k`` of float64 is read from the bits of
``k + 1.5 * 2^52`` rather than converted: AVX2 has no vector float64-to-int64 conversion.

Special inputs need no code of their own: ``x`` is first clamped to a range just beyond the
overflow and underflow limits, where that scaling alone rounds to ``+inf`` or 0, and the clamps
are written (``limit if limit > x else x``) so that a NaN passes through them and makes the
result NaN. Every operation of the loop body counts: selects after the polynomial cost about a
sixth of its time.

Accuracy, checked against ``np.exp`` in float64 by ``tests/test_exp.py`` over the whole float32
input range and a float64 sweep: relative error below the type's machine epsilon (``2^-23`` in
float32, ``2^-52`` in float64; the largest measured is 0.69 and 0.73 of it) wherever the result
is a normal number; subnormal results are within one smallest subnormal. ``exp(-inf) = 0``,
``exp(+inf) = +inf``, NaN gives NaN, and inputs beyond the overflow or underflow limits give
+inf or 0.
"""

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload

from ._cache import njit
from ._scalar import f32_from_bits, f64_from_bits, f64_to_bits

# float32: ln 2 split so that k * _LN2_HI_32 is exact for |k| < 2^9
_LOG2E_32 = np.float32(1.4426950408889634)
_LN2_HI_32 = np.float32(0.693359375)
_LN2_LO_32 = np.float32(-2.12194440e-4)
_POLY_32 = tuple(  # Cephes expf: e^r ~ 1 + r + r^2 (c5 + c4 r + ... + c0 r^5)
    np.float32(c)
    for c in (
        1.9875691500e-4,
        1.3981999507e-3,
        8.3334519073e-3,
        4.1665795894e-2,
        1.6666665459e-1,
        5.0000001201e-1,
    )
)
_UNDERFLOW_32 = np.float32(-104.0)  # e^-104 is below half the smallest float32 subnormal
_OVERFLOW_32 = np.float32(89.0)  # e^89 is above the largest float32

# float64: ln 2 split so that k * _LN2_HI_64 is exact for |k| < 2^11 (fdlibm's constants)
_LOG2E_64 = 1.4426950408889634
_LN2_HI_64 = 6.93147180369123816490e-01
_LN2_LO_64 = 1.90821492927058770002e-10
_UNDERFLOW_64 = -746.0  # e^-746 is below half the smallest float64 subnormal
_OVERFLOW_64 = 710.0  # e^710 is above the largest float64
# e^r ~ 1 + r + r^2 (c0 r^9 + c1 r^8 + ... + c9) for |r| <= ln(2) / 2: a Chebyshev fit of
# (e^r - 1 - r) / r^2 of degree 9 (mpmath's chebyfit at 50 digits), its coefficients rounded to
# float64; the polynomial's relative error is below 1.6e-17 (0.07 ulp), two multiply-adds fewer
# than the Taylor series of degree 13 it replaces
_POLY_64 = (
    2.5100375832561234e-08,
    2.7620075879983367e-07,
    2.7557268480310024e-06,
    2.4801521322368692e-05,
    0.00019841269863040545,
    0.0013888888917196719,
    0.008333333333330065,
    0.041666666666624164,
    0.16666666666666669,
    0.5000000000000001,
)
# 1.5 * 2^52: adding it to an integer-valued float64 k (|k| < 2^51) leaves k in the low bits
_SHIFTER_64 = 6755399441055744.0

# Fused multiply-adds (``contract``) for the polynomial and the range reduction: one rounding
# instead of two per step, and half the instructions. Nothing else in the bodies is re-associated.
_EXP_FASTMATH = {"contract"}


@njit(cache=True, fastmath=_EXP_FASTMATH)
def exp32(x):
    """``e^x`` for a float32 ``x``, vectorisable (see the module docstring)."""
    # Written so that a NaN passes through both clamps (see the module docstring).
    clamped = _UNDERFLOW_32 if _UNDERFLOW_32 > x else x
    clamped = _OVERFLOW_32 if _OVERFLOW_32 < clamped else clamped
    k = np.floor(clamped * _LOG2E_32 + np.float32(0.5))
    r = (clamped - k * _LN2_HI_32) - k * _LN2_LO_32
    c0, c1, c2, c3, c4, c5 = _POLY_32
    p = ((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5
    y = p * (r * r) + r + np.float32(1.0)
    k_int = np.int32(k)
    half = k_int >> np.int32(1)
    first = f32_from_bits(np.uint32((half + np.int32(127)) << np.int32(23)))
    second = f32_from_bits(np.uint32((k_int - half + np.int32(127)) << np.int32(23)))
    return y * first * second


@njit(cache=True, fastmath=_EXP_FASTMATH)
def exp64(x):
    """``e^x`` for a float64 ``x``, vectorisable (see the module docstring)."""
    clamped = _UNDERFLOW_64 if _UNDERFLOW_64 > x else x  # a NaN passes through, as in exp32
    clamped = _OVERFLOW_64 if _OVERFLOW_64 < clamped else clamped
    k = np.floor(clamped * _LOG2E_64 + 0.5)
    r = (clamped - k * _LN2_HI_64) - k * _LN2_LO_64
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = _POLY_64
    p = ((((((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5) * r + c6) * r + c7) * r + c8) * r + c9
    y = p * (r * r) + r + 1.0
    # k's integer value read from the bits of k + 1.5 * 2^52, not by a conversion: x86 before
    # AVX-512 has no vector float64 -> int64 conversion, and one per element, in scalar code,
    # took a third of the loop's time (AMD EPYC, AVX2)
    k_int = f64_to_bits(k + _SHIFTER_64) - f64_to_bits(_SHIFTER_64)
    half = k_int >> np.int64(1)
    first = f64_from_bits((half + np.int64(1023)) << np.int64(52))
    second = f64_from_bits((k_int - half + np.int64(1023)) << np.int64(52))
    return y * first * second


def fast_exp(x):
    """``e^x`` in the precision of ``x`` (float32 or float64), vectorisable by LLVM."""


@overload(fast_exp, inline="always")
def _fast_exp_overload(x):
    if x == types.float32:
        return lambda x: exp32(x)
    if x == types.float64:
        return lambda x: exp64(x)
    raise TypingError(f"fast_exp takes float32 or float64, got {x}")
