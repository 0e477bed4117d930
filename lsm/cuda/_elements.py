"""How the kernels read and write array elements: bfloat16 converted in registers.

A bfloat16 array reaches the kernels as what it is, an array of numba-cuda's ``bfloat16`` type
(``ml_dtypes.bfloat16`` on the host). numba-cuda converts that type through functions of
CUDA's C++ headers, linked in when a kernel is loaded; lsm does not use them. A bfloat16 number
is the upper half of a float32, so the kernels read and write its 16 bits and convert with a
shift (exact) and an integer rounding:

.. math::

    \\mathrm{widen}(h) = \\mathrm{float32}(h \\ll 16), \\qquad
    \\mathrm{narrow}(f) = (f + \\mathtt{0x7FFF} + (f \\gg 16 \\;\\&\\; 1)) \\gg 16

on the bits ``f`` of a float32: round to nearest, ties to even, as NumPy's ``astype`` to
``ml_dtypes.bfloat16`` and the CPU backend (an overflow rounds to infinity; a NaN stays a quiet
NaN of its sign, keeping its payload's top bits as the CPU backend does, where ml_dtypes clears
them).

- ``widen(v)``: an element read from an array, as a float the caller converts to its
  accumulation type; bfloat16 widened to float32, every other type unchanged.
- ``narrow(value, array)``: ``value`` ready to be stored in ``array``; for a bfloat16 array, the
  float32 value rounded to bfloat16, for any other array unchanged (the store converts).
- ``row_cache(array)``: the dynamic shared memory that keeps rows of ``array`` on chip, in its
  own dtype, but bfloat16 rows widened to float32 (numba-cuda makes no shared arrays of its
  bfloat16 type); ``kept_itemsize(dtype)`` is the bytes per element the launch gives it.

Every load of a floating-point operand and every store of a result in lsm's kernels goes through
these two. Under the CUDA simulator they are plain Python over ml_dtypes' scalars (the same bit
arithmetic, with NumPy's views for the two reinterpretations); on the GPU they are numba-cuda
overloads chosen by type at compile time, so a float16, float32 or float64 kernel compiles
exactly as without them.
"""

import numpy as np
from numba import float32, int16, int32, int64

from .._validate import dtype_name
from ._numba import SIMULATOR, cuda

_QUIET = 0x40  # the top mantissa bit of a bfloat16: set, a NaN is quiet
_HALF_ULP = 0x7FFF  # below half of a bfloat16's last place, in float32 bits


@cuda.jit(device=True)
def _bits_to_float32(bits):
    """float32 from a bfloat16's bits (an int16): they are the float32's upper half."""
    return _float32_of(int32(int32(bits) << 16))


@cuda.jit(device=True)
def _float32_to_bits(value):
    """A bfloat16's bits (an int16) from a float32, rounded to nearest, ties to even."""
    bits = int64(_bits_of(value)) & 0xFFFFFFFF
    if value != value:
        rounded = (bits >> 16) | _QUIET
    else:
        rounded = (bits + _HALF_ULP + ((bits >> 16) & 1)) >> 16
    return int16(rounded - 0x10000 if rounded >= 0x8000 else rounded)


def kept_itemsize(dtype):
    """Bytes per element of ``row_cache`` for arrays of ``dtype`` (a NumPy dtype)."""
    return 4 if dtype_name(dtype) == "bfloat16" else dtype.itemsize


if SIMULATOR:
    import ml_dtypes

    _BFLOAT16, _FLOAT32 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32)

    def _float32_of(bits):
        return np.array(bits, dtype=np.int32).view(np.float32)[()]

    def _bits_of(value):
        return np.array(value, dtype=np.float32).view(np.int32)[()]

    def widen(v):
        """An element ``v`` as a float: bfloat16 widened to float32, anything else unchanged."""
        if isinstance(v, np.generic) and v.dtype == _BFLOAT16:
            return _bits_to_float32(np.array(v).view(np.int16)[()])
        return v

    def narrow(value, array):
        """``value`` ready to be stored in ``array`` (a bfloat16 array: rounded to bfloat16)."""
        if array.dtype == _BFLOAT16:
            return np.array(_float32_to_bits(float32(value)), dtype=np.int16).view(_BFLOAT16)[()]
        return value

    @cuda.jit(device=True)  # so that the simulator gives it the kernel's ``cuda.shared``
    def row_cache(array):
        """Dynamic shared memory for rows of ``array`` (bfloat16 kept as float32)."""
        return cuda.shared.array(0, _FLOAT32 if array.dtype == _BFLOAT16 else array.dtype)

else:
    from ._numba import cuda_types as types
    from ._numba import intrinsic, libdevice, overload

    @cuda.jit(device=True)
    def _float32_of(bits):
        return libdevice.int_as_float(bits)

    @cuda.jit(device=True)
    def _bits_of(value):
        return libdevice.float_as_int(value)

    @intrinsic
    def _bfloat16_bits(typingctx, value):
        """The bits of a bfloat16 as an int16 (both are 16-bit integers to LLVM: no code)."""

        def codegen(context, builder, signature, args):
            return args[0]

        return types.int16(value), codegen

    @intrinsic
    def _bfloat16_from_bits(typingctx, bits):
        """The bfloat16 whose bits are the int16 ``bits`` (no code)."""

        def codegen(context, builder, signature, args):
            return args[0]

        return types.bfloat16(bits), codegen

    def widen(v):
        """An element ``v`` as a float: bfloat16 widened to float32, anything else unchanged."""

    def narrow(value, array):
        """``value`` ready to be stored in ``array`` (a bfloat16 array: rounded to bfloat16)."""

    @overload(widen, target="cuda", inline="always")
    def _widen(v):
        if v == types.bfloat16:
            return lambda v: _bits_to_float32(_bfloat16_bits(v))
        return lambda v: v

    @overload(narrow, target="cuda", inline="always")
    def _narrow(value, array):
        if array.dtype == types.bfloat16:
            return lambda value, array: _bfloat16_from_bits(_float32_to_bits(float32(value)))
        return lambda value, array: value

    def row_cache(array):
        """Dynamic shared memory for rows of ``array`` (bfloat16 kept as float32)."""

    @overload(row_cache, target="cuda", inline="always")
    def _row_cache(array):
        if array.dtype == types.bfloat16:
            return lambda array: cuda.shared.array(0, float32)
        return lambda array: cuda.shared.array(0, array.dtype)
