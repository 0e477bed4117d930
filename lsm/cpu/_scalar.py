"""Element loads and stores for the CPU kernels.

Numba's CPU target has no 16-bit float type, so float16 and bfloat16 arrays reach the kernels
as raw 16-bit integers: float16 as ``uint16`` and bfloat16 as ``int16``. The two integer types
are distinct Numba types, so the overloads below pick the right conversion at compile time and
the kernels convert element by element, in registers: no float32 copy of a half-precision input
is ever made, however large it is.

``load(v)`` widens a stored element to the accumulation type (float64 for float64, float32 for
everything else); ``store(v, like)`` rounds an accumulator value to the element type of the
array ``like`` (round to nearest, ties to even, as NumPy's ``astype`` does).
"""

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

from ._cache import njit

_F32_TO_F16_SUBNORMAL_SCALE = np.float32(2.0**24)  # half subnormals are multiples of 2^-24
_F16_SUBNORMAL_UNIT = np.float32(2.0**-24)
_F16_SMALLEST_NORMAL = np.float32(2.0**-14)
_RINT_MAGIC = np.float32(2.0**23)  # adding and subtracting 2^23 rounds a small float32 to even


@intrinsic
def f32_from_bits(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (no conversion).

    Numba widens unsigned 32-bit arithmetic to 64 bits, so wider integers are accepted and
    truncated to their low 32 bits.
    """
    if not isinstance(bits, types.Integer):
        raise TypingError("f32_from_bits expects an integer")

    def codegen(context, builder, signature, args):
        low = args[0]
        if bits.bitwidth > 32:
            low = builder.trunc(low, ir.IntType(32))
        elif bits.bitwidth < 32:
            low = builder.zext(low, ir.IntType(32))
        return builder.bitcast(low, context.get_value_type(types.float32))

    return types.float32(bits), codegen


@intrinsic
def f64_from_bits(typingctx, bits):
    """Reinterpret the bits of a 64-bit integer as a float64 (no conversion)."""
    if not isinstance(bits, types.Integer) or bits.bitwidth != 64:
        raise TypingError("f64_from_bits expects a 64-bit integer")

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(bits), codegen


@intrinsic
def f64_to_bits(typingctx, value):
    """Reinterpret the bits of a float64 as an int64 (no conversion)."""
    if value != types.float64:
        raise TypingError("f64_to_bits expects a float64")

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


@intrinsic
def f32_to_bits(typingctx, value):
    """Reinterpret the bits of a float32 as a uint32 (no conversion)."""
    if value != types.float32:
        raise TypingError("f32_to_bits expects a float32")

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint32))

    return types.uint32(types.float32), codegen


# The conversions below compute every case and pick the answer with conditional expressions
# (no early returns), which LLVM turns into vector selects: a loop over them vectorises.


@njit(cache=True)
def half_bits_to_f32(h):
    """IEEE binary16 bits (uint16) -> float32, exact for every input including NaN and inf."""
    h32 = np.uint32(h)
    sign = (h32 & np.uint32(0x8000)) << np.uint32(16)
    magnitude = h32 & np.uint32(0x7FFF)
    # normal: shift into place and rebias the exponent from 15 to 127 (add 112 << 23)
    bits = (magnitude << np.uint32(13)) + np.uint32(112 << 23)
    # inf or NaN (exponent 31): the float32 exponent must be 255, another 112 << 23 up
    bits = bits + np.uint32(112 << 23) if magnitude >= np.uint32(0x7C00) else bits
    # zero or subnormal: magnitude * 2^-24 is exact in float32
    small = f32_to_bits(np.float32(magnitude) * _F16_SUBNORMAL_UNIT)
    bits = small if magnitude < np.uint32(0x400) else bits
    return f32_from_bits(sign | bits)


@njit(cache=True)
def f32_to_half_bits(f):
    """float32 -> IEEE binary16 bits (uint16), rounding to nearest with ties to even."""
    bits = f32_to_bits(f)
    sign = (bits >> np.uint32(16)) & np.uint32(0x8000)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    # normal half (>= 2^-14): rebias and round 23 -> 10 mantissa bits, ties to even
    odd = (magnitude >> np.uint32(13)) & np.uint32(1)
    out = (magnitude + np.uint32(0xFFF) + odd - np.uint32(0x38000000)) >> np.uint32(13)
    # subnormal or zero: round |f| / 2^-24 to an even integer (1024 becomes the smallest normal);
    # clamped first so that the float -> int conversion stays in range for every input
    scaled = min(f32_from_bits(magnitude), _F16_SMALLEST_NORMAL) * _F32_TO_F16_SUBNORMAL_SCALE
    small = np.uint32((scaled + _RINT_MAGIC) - _RINT_MAGIC)
    out = small if magnitude < np.uint32(0x38800000) else out
    # >= 65520 rounds to inf (65504 is the largest half); NaN becomes a quiet NaN
    out = np.uint32(0x7C00) if magnitude >= np.uint32(0x477FF000) else out
    out = np.uint32(0x7E00) if magnitude > np.uint32(0x7F800000) else out
    return np.uint16(sign | out)


@njit(cache=True)
def bfloat16_bits_to_f32(b):
    """bfloat16 bits (int16) -> float32: bfloat16 is the top half of a float32."""
    return f32_from_bits(np.uint32(np.uint16(b)) << np.uint32(16))


@njit(cache=True)
def f32_to_bfloat16_bits(f):
    """float32 -> bfloat16 bits (int16), rounding to nearest with ties to even."""
    bits = f32_to_bits(f)
    odd = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = (bits + np.uint32(0x7FFF) + odd) >> np.uint32(16)
    quiet_nan = (bits >> np.uint32(16)) | np.uint32(0x40)  # NaN keeps its sign, becomes quiet
    out = quiet_nan if (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000) else rounded
    return np.int16(np.uint16(out & np.uint32(0xFFFF)))


def _target_has_f16c():
    """Whether the CPU Numba compiles for converts float16 in hardware (x86's F16C extension).

    Honours ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` (a portable build for a generic CPU gets
    the bit-level conversions above), else asks LLVM about the host.
    """
    if numba.config.CPU_FEATURES is not None:
        return "+f16c" in numba.config.CPU_FEATURES.split(",")
    if numba.config.CPU_NAME not in (None, "host"):
        return False
    return bool(llvmlite.binding.get_host_cpu_features().get("f16c", False))


@intrinsic
def _fpext_half(typingctx, bits):
    """float16 bits (uint16) -> float32 through LLVM's ``fpext half``: one ``vcvtph2ps`` with F16C."""
    if bits != types.uint16:
        raise TypingError("_fpext_half expects uint16 bits")

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.uint16), codegen


@intrinsic
def _fptrunc_half(typingctx, value):
    """float32 -> float16 bits (uint16) through LLVM's ``fptrunc`` (round to nearest, ties to even):
    one ``vcvtps2ph`` with F16C."""
    if value != types.float32:
        raise TypingError("_fptrunc_half expects a float32")

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(types.float32), codegen


@njit(cache=True)
def half_bits_to_f32_f16c(h):
    """``half_bits_to_f32`` in hardware; only for CPUs with F16C (see ``HAS_F16C``)."""
    return _fpext_half(h)


@njit(cache=True)
def f32_to_half_bits_f16c(f):
    """``f32_to_half_bits`` in hardware; only for CPUs with F16C (see ``HAS_F16C``)."""
    return _fptrunc_half(f)


# Without F16C, LLVM would turn fpext/fptrunc of half into calls to runtime functions that
# Numba's JIT does not provide: the kernels use the hardware conversions only where they exist.
HAS_F16C = _target_has_f16c()
_half_to_f32 = half_bits_to_f32_f16c if HAS_F16C else half_bits_to_f32
_f32_to_half = f32_to_half_bits_f16c if HAS_F16C else f32_to_half_bits


def load(v):
    """Widen one stored element to the accumulation type."""


def to_acc(value, like):
    """Convert ``value`` to the accumulation type of the array ``like`` (keeps literals typed)."""


def store(v, like):
    """Round an accumulator value to the element type of the array ``like``."""


def acc_empty(shape, like):
    """An uninitialised array of ``shape`` in the accumulation type of the array ``like``."""


@overload(load, inline="always")
def _load_overload(v):
    if v == types.float64:
        return lambda v: v
    if v == types.float32:
        return lambda v: v
    if v == types.uint16:
        return lambda v: _half_to_f32(v)
    if v == types.int16:
        return lambda v: bfloat16_bits_to_f32(v)
    raise TypingError(f"lsm kernels cannot load elements of type {v}")


@overload(store, inline="always")
def _store_overload(v, like):
    element = like.dtype
    if element == types.float64:
        return lambda v, like: np.float64(v)
    if element == types.float32:
        return lambda v, like: np.float32(v)
    if element == types.uint16:
        return lambda v, like: _f32_to_half(np.float32(v))
    if element == types.int16:
        return lambda v, like: f32_to_bfloat16_bits(np.float32(v))
    raise TypingError(f"lsm kernels cannot store elements of type {element}")


@overload(to_acc, inline="always")
def _to_acc_overload(value, like):
    if like.dtype == types.float64:
        return lambda value, like: np.float64(value)
    return lambda value, like: np.float32(value)


@overload(acc_empty, inline="always")
def _acc_empty_overload(shape, like):
    if like.dtype == types.float64:
        return lambda shape, like: np.empty(shape, dtype=np.float64)
    return lambda shape, like: np.empty(shape, dtype=np.float32)
