"""lsm's public functions inside a Numba user's ``@njit`` code: ``numba.extending.overload``\\ s.

``import lsm`` registers them (about 2 ms, a few template classes and dispatchers: nothing is
compiled until a user's function that calls lsm is). When Numba types a call such as
``lsm.logsumexp(v)`` in a compiled function, the overload below checks the argument types,
refusing what does not map onto lsm's CPU kernels with a ``TypingError`` that names the argument,
and returns an implementation that makes every operand a C-contiguous array of the input's shape
and runs ``lsm.cpu._njit``, the kernels of the public call. See ``docs/numba.md``.

The checks mirror ``lsm._validate`` for what can be known at compile time (types, dimensions,
constant options); shapes, axes in range and overlaps are checked at run time, with the public
call's exception types.
"""

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload, register_jitable
from numpy.exceptions import AxisError

from ._api import log_softmax, logsumexp, softmax
from ._gradients import log_softmax_backward, softmax_backward
from .cpu import _njit as kernels

# --- compile-time checks: the argument types ---------------------------------------------------


def _absent(ty):
    """Whether an optional argument was left out or passed as None."""
    if isinstance(ty, types.Omitted):
        return ty.value is None
    return ty is None or isinstance(ty, types.NoneType)


def _refuse(func, name, why):
    return TypingError(f"lsm.{func} inside @njit: {name!r} {why}")


def _float_of(func, name, ty):
    """The result dtype (a NumPy dtype) of an input array type: its float type, float64 for
    integers and bools (as lsm._validate.result_dtype)."""
    if not isinstance(ty, types.Array):
        raise _refuse(func, name, f"must be an array, got {ty}")
    if not 1 <= ty.ndim <= 3:
        raise _refuse(func, name, f"must have 1 to 3 dimensions, got {ty.ndim}")
    if ty.dtype in (types.float32, types.float64):
        return np.dtype(str(ty.dtype))
    if isinstance(ty.dtype, (types.Integer, types.Boolean)):
        return np.dtype(np.float64)
    if ty.dtype == types.float16:
        raise _refuse(
            func,
            name,
            "is float16, which Numba's CPU target cannot compute with; call lsm outside the "
            "compiled function, or convert to float32",
        )
    raise _refuse(func, name, f"has unsupported dtype {ty.dtype} (real floats, integers or bools only)")


def _whole(func, axis):
    """Whether ``axis`` names every axis (None); an integer names one. Anything else is refused."""
    if _absent(axis):
        return True
    if isinstance(axis, types.Omitted):
        axis = axis.value
    if isinstance(axis, (int, types.Integer)):  # a default is the Python value
        return False
    if isinstance(axis, types.BaseTuple):
        raise _refuse(
            func, "axis", "is a tuple: inside @njit lsm reduces one axis (an integer) or all (None)"
        )
    raise _refuse(func, "axis", f"must be an integer or None, got {axis}")


def _constant_bool(func, name, ty):
    """The value of an option that changes the result's type: a constant True or False."""
    if isinstance(ty, bool):  # the default, as the Python value
        return ty
    if isinstance(ty, types.Omitted):
        return bool(ty.value)
    if isinstance(ty, types.BooleanLiteral):
        return ty.literal_value
    raise _refuse(func, name, f"must be a constant True or False inside @njit, got {ty}")


def _no_dtype(func, dtype):
    if not _absent(dtype):
        raise _refuse(
            func, "dtype", "is not supported inside @njit: the result has the input's float dtype (convert x)"
        )


def _check_out(func, out, dtype, ndim):
    """Whether ``out`` is given; refuses one of the wrong kind, dtype, dimensions, or read-only."""
    if _absent(out):
        return False
    if not isinstance(out, types.Array):
        raise _refuse(func, "out", f"must be an array, got {out}")
    if np.dtype(str(out.dtype)) != dtype or out.ndim != ndim:
        raise _refuse(func, "out", f"must be a {ndim}-d {dtype} array, got {out}")
    if not out.mutable:
        raise _refuse(func, "out", "is read-only")
    return True


def _check_operand(func, name, ty, ndim, kinds, what):
    """Whether operand ``name`` (``where``, ``b``) is given; refuses a wrong type or dimensions."""
    if _absent(ty):
        return False
    if not isinstance(ty, types.Array) or not isinstance(ty.dtype, kinds):
        raise _refuse(func, name, f"must be an array of {what}, got {ty}")
    if ty.ndim > ndim:
        raise _refuse(func, name, f"has more dimensions ({ty.ndim}) than the input ({ndim})")
    return True


# --- operands as the kernels take them ----------------------------------------------------------


def as_operand(a, shape, dtype):
    """``a`` broadcast to ``shape`` as a C-contiguous array of ``dtype`` (no copy when it is one
    already); None stays None."""


@overload(as_operand)
def _as_operand(a, shape, dtype):
    if _absent(a):
        return lambda a, shape, dtype: None
    wanted = dtype.dtype
    if a.layout == "C" and a.ndim == len(shape) and a.dtype == wanted:

        def same_or_copy(a, shape, dtype):
            if a.shape == shape:
                return a
            return np.ascontiguousarray(np.broadcast_to(a, shape))

        return same_or_copy
    if a.dtype == wanted:
        return lambda a, shape, dtype: np.ascontiguousarray(np.broadcast_to(a, shape))
    return lambda a, shape, dtype: np.ascontiguousarray(np.broadcast_to(a, shape)).astype(dtype)


def target(out, shape, dtype):
    """The C-contiguous array the kernel writes: ``out`` itself when it is C-contiguous, else a
    new array (copied into ``out`` by :func:`finish`)."""


@overload(target)
def _target(out, shape, dtype):
    if not _absent(out) and out.layout == "C":
        return lambda out, shape, dtype: out
    return lambda out, shape, dtype: np.empty(shape, dtype)


def finish(out, result):
    """The value returned: ``result`` without ``out``, else ``out`` (written from ``result``
    unless the kernel wrote it directly)."""


@overload(finish)
def _finish(out, result):
    if _absent(out):
        return lambda out, result: result
    if out.layout == "C":
        return lambda out, result: out

    def copy_back(out, result):
        out[...] = result
        return out

    return copy_back


@register_jitable
def axis_index(axis, ndim):
    """``axis`` as an index in ``range(ndim)`` (negative counts from the end)."""
    if axis < -ndim or axis >= ndim:
        raise AxisError(axis, ndim)
    return axis + ndim if axis < 0 else axis


def clash(out, operand, alias_allowed):
    """Whether ``out`` overlaps ``operand`` (None: never), other than by being exactly it when
    ``alias_allowed`` (in place)."""


@overload(clash)
def _clash(out, operand, alias_allowed):
    if _absent(operand):
        return lambda out, operand, alias_allowed: False

    def overlaps(out, operand, alias_allowed):
        if alias_allowed and kernels.same_memory(out, operand):
            return False
        return kernels.may_overlap(out, operand)

    return overlaps


def _messages(func):
    """The run-time errors about ``out`` (constant strings in compiled code: the shape one cannot
    name the shapes as ``lsm._validate.out_layout`` does; the overlap one is ``out_overlaps``')."""
    return (
        f"lsm.{func}: 'out' does not have the result's shape",
        f"lsm.{func}: 'out' overlaps an input; pass a separate array (or exactly the input, in place)",
    )


_BOOL = np.dtype(np.bool_)


def flattened(a):
    """``a`` (C-contiguous) as a 1-d view; None stays None."""


@overload(flattened)
def _flattened(a):
    if _absent(a):
        return lambda a: None
    return lambda a: a.reshape(a.size)


@register_jitable
def _as_is(a):
    return a


@register_jitable
def _every_axis(axis, ndim):
    return 0


def _axis_of(whole):
    """The compiled axis normaliser: ``axis=None`` reduces the array flattened, along its axis 0."""
    return _every_axis if whole else axis_index


# --- log_softmax and softmax --------------------------------------------------------------------


def _softmax_typer(func, log):
    shape_message, overlap_message = _messages(func)

    def typer(x, axis=-1, dtype=None, out=None, where=None):
        result = _float_of(func, "x", x)
        whole = _whole(func, axis)
        _no_dtype(func, dtype)
        _check_out(func, out, result, x.ndim)
        _check_operand(func, "where", where, x.ndim, types.Boolean, "bools")
        ndim = x.ndim
        axis_of = _axis_of(whole)
        flat = flattened if whole else _as_is

        def impl(x, axis=-1, dtype=None, out=None, where=None):
            index = axis_of(axis, ndim)
            if out is not None:
                if out.shape != x.shape:
                    raise ValueError(shape_message)
                if clash(out, x, True) or clash(out, where, False):
                    raise ValueError(overlap_message)
            xc = as_operand(x, x.shape, result)
            wc = as_operand(where, x.shape, _BOOL)
            written = target(out, x.shape, result)
            wc1 = flat(wc)
            kernels.softmax(flat(xc), wc1, flat(written), index, log)
            return finish(out, written)

        return impl

    return typer


overload(log_softmax, prefer_literal=True)(_softmax_typer("log_softmax", True))
overload(softmax, prefer_literal=True)(_softmax_typer("softmax", False))


# --- logsumexp --------------------------------------------------------------------------------


@register_jitable
def _reduced(shape, axis):
    """The shape of a 2-d or 3-d ``shape`` without axis ``axis``."""
    if len(shape) == 2:
        return (shape[1] if axis == 0 else shape[0],)
    if axis == 0:
        return (shape[1], shape[2])
    return (shape[0], shape[2]) if axis == 1 else (shape[0], shape[1])


@register_jitable
def _kept(shape, axis):
    """``shape`` with axis ``axis`` of size 1 (keepdims)."""
    if len(shape) == 2:
        return (1, shape[1]) if axis == 0 else (shape[0], 1)
    return (1 if axis == 0 else shape[0], 1 if axis == 1 else shape[1], 1 if axis == 2 else shape[2])


def _result_shape(whole, ndim, keep):
    """The compiled function giving the result shape from the input shape and the axis."""
    if (whole or ndim == 1) and not keep:
        return register_jitable(lambda shape, axis: ())
    if whole or ndim == 1:
        ones = (1,) * ndim  # a constant of the compiled function
        return register_jitable(lambda shape, axis: ones)
    return _kept if keep else _reduced


@register_jitable
def _groups(shape, axis):
    """The number of groups (``outer * inner``): the size of every axis but ``axis``."""
    count = 1
    for k in range(len(shape)):
        if k != axis:
            count *= shape[k]
    return count


@overload(logsumexp, prefer_literal=True)
def _logsumexp(x, axis=None, keepdims=False, b=None, return_sign=False, dtype=None, out=None, where=None):
    func = "logsumexp"
    shape_message, overlap_message = _messages(func)
    result = _float_of(func, "x", x)
    whole = _whole(func, axis)
    keep = _constant_bool(func, "keepdims", keepdims)
    signed = _constant_bool(func, "return_sign", return_sign)
    _no_dtype(func, dtype)
    ndim = x.ndim
    scalar = (whole or ndim == 1) and not keep  # a 0-d result: a scalar, as NumPy gives
    _check_out(func, out, result, 0 if scalar else (ndim if keep else ndim - 1))
    _check_operand(func, "where", where, ndim, types.Boolean, "bools")
    _check_operand(func, "b", b, ndim, (types.Float, types.Integer, types.Boolean), "real numbers")
    axis_of = _axis_of(whole)
    result_shape = _result_shape(whole, ndim, keep)
    flat = flattened if whole else _as_is
    shaped = _shaped(scalar, not _absent(out))
    shaped_sign = _shaped(scalar, False)  # the sign is never written into out

    def impl(x, axis=None, keepdims=False, b=None, return_sign=False, dtype=None, out=None, where=None):
        index = axis_of(axis, ndim)
        shape = result_shape(x.shape, index)
        if out is not None:
            if out.shape != shape:
                raise ValueError(shape_message)
            if clash(out, x, False) or clash(out, where, False) or clash(out, b, False):
                raise ValueError(overlap_message)
        xc = as_operand(x, x.shape, result)
        wc = as_operand(where, x.shape, _BOOL)
        bc = as_operand(b, x.shape, result)
        xc1 = flat(xc)
        groups = _groups(xc1.shape, index)
        lse = np.empty(groups, result)
        wc1 = flat(wc)
        bc1 = flat(bc)
        if signed:
            sign = np.empty(groups, result)
            kernels.logsumexp(xc1, wc1, bc1, lse, sign, index)
            return shaped(out, lse, shape), shaped_sign(None, sign, shape)
        kernels.logsumexp(xc1, wc1, bc1, lse, None, index)
        return shaped(out, lse, shape)

    return impl


def _shaped(scalar, given):
    """The compiled function returning a reduction's values ``lse`` (one per group) shaped
    ``shape``: a scalar for a 0-d result, else an array; written into ``out`` when ``given``."""
    if given and scalar:

        def into_scalar(out, lse, shape):
            out[()] = lse[0]
            return out

        return register_jitable(into_scalar)
    if given:

        def into(out, lse, shape):
            out[...] = lse.reshape(shape)
            return out

        return register_jitable(into)

    def value(out, lse, shape):
        return lse[0] if scalar else lse.reshape(shape)

    return register_jitable(value)


# --- the gradients ------------------------------------------------------------------------------


def _backward_typer(func, log):
    shape_message, overlap_message = _messages(func)
    mismatch_message = f"lsm.{func}: 'grad' and 'y' must have the same shape"

    def typer(grad, y, axis=-1, out=None, where=None):
        grad_float = _float_of(func, "grad", grad)
        y_float = _float_of(func, "y", y)
        if grad.ndim != y.ndim:
            raise _refuse(func, "y", f"has {y.ndim} dimensions and 'grad' {grad.ndim}: they must match")
        result = np.promote_types(grad_float, y_float)
        whole = _whole(func, axis)
        _check_out(func, out, result, y.ndim)
        _check_operand(func, "where", where, y.ndim, types.Boolean, "bools")
        ndim = y.ndim
        axis_of = _axis_of(whole)
        flat = flattened if whole else _as_is

        def impl(grad, y, axis=-1, out=None, where=None):
            index = axis_of(axis, ndim)
            if grad.shape != y.shape:
                raise ValueError(mismatch_message)
            if out is not None:
                if out.shape != y.shape:
                    raise ValueError(shape_message)
                if clash(out, grad, True) or clash(out, y, True) or clash(out, where, False):
                    raise ValueError(overlap_message)
            gc = as_operand(grad, y.shape, result)
            yc = as_operand(y, y.shape, result)
            wc = as_operand(where, y.shape, _BOOL)
            written = target(out, y.shape, result)
            wc1 = flat(wc)
            kernels.softmax_backward(flat(gc), flat(yc), wc1, flat(written), index, log)
            return finish(out, written)

        return impl

    return typer


overload(log_softmax_backward, prefer_literal=True)(_backward_typer("log_softmax_backward", True))
overload(softmax_backward, prefer_literal=True)(_backward_typer("softmax_backward", False))
