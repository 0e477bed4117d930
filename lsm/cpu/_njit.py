"""The CPU kernels as a Numba user's ``@njit`` code reaches them (``lsm._njit`` holds the overloads).

Inside a caller's compiled function there is no pipeline: the overloads in ``lsm._njit`` check
the argument types at compile time, make every operand a C-contiguous array of the input's shape,
and call the functions below, which view those arrays canonically exactly as the CPU backend
does (``(outer, n)`` rows, ``(outer, n, inner)`` columns, see ``lsm._plan``) and run the same
kernels of ``_forward`` and ``_backward`` with the same choices (short rows in chunks, softmax
keeping its exponentials in ``out``, staging buffers in place). The arrays are C-contiguous, as
the public call's canonical views of a C-contiguous input are. The kernels get the public call's
argument types too: the operands they only read typed read-only (:func:`read_only`) and the
options typed ``bool`` (:func:`flag`), not as the constants' literal types. So the same compiled
kernels run, compiled once for both callers (mutable and literal types compiled every kernel a
second time), and the results are the same bits.

Always the ``*_serial`` drivers: a caller's ``@njit`` function calls lsm on the calling thread.
Inside a caller's ``prange`` the parallel drivers would nest one thread pool inside another
(which Numba's ``workqueue`` layer refuses by aborting the process), and the calls a compiled
loop makes are mostly small, where waking the pool costs more than it saves.
"""

import numpy as np
from numba.core import types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from . import _backward, _forward
from ._cache import njit
from ._config import EXPS_BUFFER_BYTES


@intrinsic
def _read_only_view(typingctx, array):
    """``array`` itself, typed read-only: a Numba array's write flag is part of its type only."""
    if not isinstance(array, types.Array):
        return None
    view = array.copy(readonly=True)

    def codegen(context, builder, signature, arguments):
        return impl_ret_borrowed(context, builder, view, arguments[0])

    return view(array), codegen


@njit(cache=True)
def read_only(operand):
    """``operand`` (an array, no copy) typed read-only, or None for an absent operand."""
    return None if operand is None else _read_only_view(operand)


@intrinsic
def flag(typingctx, value):
    """The boolean ``value`` typed ``bool``: a constant's type in compiled code is its own
    literal type (``Literal[bool](True)``), which would compile a kernel once per constant."""
    if not isinstance(value, types.Boolean):
        return None

    def codegen(context, builder, signature, arguments):
        return context.cast(builder, arguments[0], value, types.boolean)

    return types.boolean(value), codegen


@njit(cache=True)
def shape3(shape, axis):
    """``(outer, n, inner)`` of reducing axis ``axis`` (in range) of an array of ``shape``."""
    outer = 1
    inner = 1
    for k in range(len(shape)):
        if k < axis:
            outer *= shape[k]
        elif k > axis:
            inner *= shape[k]
    return outer, shape[axis], inner


@njit(cache=True)
def extent(a):
    """``(low, high)``: the byte addresses ``a`` spans (``high`` excluded; equal when empty)."""
    low = a.ctypes.data
    high = low
    for k in range(a.ndim):
        if a.shape[k] == 0:
            return low, low
        span = (a.shape[k] - 1) * a.strides[k]
        if span < 0:
            low += span
        else:
            high += span
    return low, high + a.itemsize


@njit(cache=True)
def may_overlap(a, b):
    """Whether the memory spans of ``a`` and ``b`` intersect (``numpy.may_share_memory``)."""
    a_low, a_high = extent(a)
    b_low, b_high = extent(b)
    return a_low < a_high and b_low < b_high and a_low < b_high and b_low < a_high


@njit(cache=True)
def same_memory(a, b):
    """Whether ``a`` and ``b`` are views of exactly the same elements (the in-place case)."""
    return a.ctypes.data == b.ctypes.data and a.shape == b.shape and a.strides == b.strides


@njit(cache=True)
def _rows(operand, outer, n):
    """``operand`` as the ``(outer, n)`` row view, or None for an absent operand."""
    return None if operand is None else operand.reshape((outer, n))


@njit(cache=True)
def _columns(operand, outer, n, inner):
    """``operand`` as the ``(outer, n, inner)`` column view, or None for an absent operand."""
    return None if operand is None else operand.reshape((outer, n, inner))


@njit(cache=True)
def _softmax_rows(x, where, out, log, in_place):
    """``CpuBackend.softmax`` for the row view, on the serial drivers."""
    rows, n = x.shape
    if n <= _forward.SHORT_ROW:
        _forward.softmax_short_rows_serial(x, where, out, log, _forward.chunk_rows(rows, n, 1))
    elif not log and where is None and not in_place:  # softmax keeps its exponentials in out
        _forward.softmax_rows_serial(x, where, out, flag(True), None, log)
    elif log or where is not None or n * x.itemsize > EXPS_BUFFER_BYTES:
        _forward.softmax_rows_serial(x, where, out, flag(False), None, log)
    else:  # softmax in place: its exponentials go to a scratch row
        _forward.softmax_rows_serial(x, where, out, flag(False), np.empty((1, n), x.dtype), log)


@njit(cache=True)
def softmax(x, where, out, axis, log):
    """log_softmax (``log``) or softmax of ``x`` along ``axis`` into ``out``.

    ``x``, ``out`` and ``where`` (or None) are C-contiguous arrays of one shape, ``axis`` is in
    range; ``out`` is either ``x`` itself or does not overlap it.
    """
    outer, n, inner = shape3(x.shape, axis)
    in_place = same_memory(x, out)
    x, where, log = read_only(x), read_only(where), flag(log)
    if inner == 1:
        rows = (outer, n)
        _softmax_rows(x.reshape(rows), _rows(where, outer, n), out.reshape(rows), log, in_place)
    else:
        columns = (outer, n, inner)
        where3 = _columns(where, outer, n, inner)
        _forward.softmax_columns_serial(x.reshape(columns), where3, out.reshape(columns), log)


@njit(cache=True)
def logsumexp(x, where, b, lse, sign, axis):
    """logsumexp of ``x`` along ``axis`` into the C-contiguous ``lse`` (and ``sign``, or None),
    each of ``outer * inner`` elements; ``x``, ``where`` and ``b`` (or None) are C-contiguous
    arrays of one shape, ``b`` in the accumulation type."""
    outer, n, inner = shape3(x.shape, axis)
    x, where, b = read_only(x), read_only(where), read_only(b)
    if inner == 1:
        x2, where2, b2 = x.reshape((outer, n)), _rows(where, outer, n), _rows(b, outer, n)
        if n <= _forward.SHORT_ROW:
            per_chunk = _forward.chunk_rows(outer, n, 1)
            _forward.logsumexp_short_rows_serial(x2, where2, b2, lse, sign, per_chunk)
        else:
            _forward.logsumexp_rows_serial(x2, where2, b2, lse, sign)
    else:
        columns = (outer, n, inner)
        sign2 = None if sign is None else sign.reshape((outer, inner))
        _forward.logsumexp_columns_serial(
            x.reshape(columns),
            _columns(where, outer, n, inner),
            _columns(b, outer, n, inner),
            lse.reshape((outer, inner)),
            sign2,
        )


@njit(cache=True)
def softmax_backward(grad, y, where, out, axis, log):
    """The gradient of log_softmax (``log``) or softmax into ``out``: C-contiguous arrays of one
    shape and dtype (``where`` bool, or None); ``out`` may be exactly ``grad`` or ``y``."""
    outer, n, inner = shape3(grad.shape, axis)
    in_place = same_memory(grad, out) or same_memory(y, out)
    grad, y, where, log = read_only(grad), read_only(y), read_only(where), flag(log)
    if inner == 1:
        rows = (outer, n)
        grad2, y2, out2 = grad.reshape(rows), y.reshape(rows), out.reshape(rows)
        where2 = _rows(where, outer, n)
        if in_place:  # a staging row (``_staging``)
            _backward.backward_rows_serial(grad2, y2, where2, out2, np.empty((1, n), out.dtype), log)
        else:
            _backward.backward_rows_serial(grad2, y2, where2, out2, None, log)
    else:
        columns = (outer, n, inner)
        where3 = _columns(where, outer, n, inner)
        _backward.backward_columns_serial(
            grad.reshape(columns), y.reshape(columns), where3, out.reshape(columns), log
        )
