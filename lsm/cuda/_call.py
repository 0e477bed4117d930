"""The public functions on device arrays: validate, plan, launch; results stay on the device.

The same steps as ``lsm._api`` on the host, with the same axis, dtype and ``out=`` rules (shared
from ``lsm._plan``), but every array is handled as a :class:`~lsm.cuda._layout.Strided`
description: the canonical ``(outer, n, inner)`` view is a change of strides, and where a dtype
conversion or an unviewable layout needs a copy, it is made on the device by a kernel. Nothing is
ever copied to the host, and no call synchronises: all work is queued on the caller's stream.

A 0-d result is a 0-d device array (as CuPy's reductions return), not a host scalar.
"""

import numpy as np

from .. import _plan
from . import _launch, _numba
from ._kinds import kind_of
from ._layout import broadcast, contiguous_strides, describe


class _Call:
    """One public call: the caller's kind of array, its stream, and a scratch allocator."""

    def __init__(self, func, x):
        if not _numba.is_available():
            raise RuntimeError(
                f"{func}: got a GPU array ({type(x).__module__}.{type(x).__qualname__}) but no CUDA GPU is "
                "available to this process (numba.cuda.is_available() is False)"
            )
        self.func = func
        self.kind = kind_of(x)
        self.stream = self.kind.stream

    def new(self, shape, dtype):
        """A fresh C-contiguous array like the caller's, and its description."""
        array = self.kind.empty(tuple(shape), dtype)
        return array, describe(array, self.func, "scratch")

    def scratch(self, shape, dtype):
        return self.new(shape, dtype)[1].device()

    def canonical(self, view, dtype, perm, shape3):
        """``view`` (work shape) as ``shape3`` in ``dtype``: a view, or a converted device copy."""
        permuted = view.transpose(perm)
        if view.dtype == dtype:
            direct = permuted.view_as(shape3)
            if direct is not None:
                return direct
        _, copy = self.new(permuted.shape, dtype)
        _launch.copy(permuted, copy, self.stream)
        return copy.view_as(shape3)


def _work(view):
    """A 0-d view as one element (the kernels see 0-d inputs as 1-element groups)."""
    return view if view.shape else view.with_layout((1,), (view.dtype.itemsize,))


def _result_dtype(x, dtype, func):
    result = _plan.result_dtype(x.dtype, dtype, func)
    if result.name == "bfloat16":
        raise TypeError(f"{func}: bfloat16 is not supported on the GPU; use float16, float32 or float64")
    return result


def _operand(call, operand, x, name, dtype, perm, shape3):
    """``where`` or ``b`` broadcast to ``x`` and in canonical form, or None."""
    if operand is None:
        return None
    view = describe(operand, call.func, name)
    if name == "where" and view.dtype != np.bool_:
        raise TypeError(f"{call.func}: 'where' must be a boolean array, got dtype {view.dtype.name}")
    view = _work(broadcast(view, x.shape, call.func, name))
    return call.canonical(view, dtype, perm, shape3)


def _check_out(func, out, shape, dtype, inputs, alias=None):
    """``lsm._plan.check_out`` for device arrays; overlap is judged by byte ranges (conservative)."""
    if out.shape != tuple(shape):
        raise ValueError(f"{func}: 'out' has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{func}: 'out' has dtype {out.dtype}, expected {dtype} (native byte order)")
    if out.readonly:
        raise ValueError(f"{func}: 'out' is read-only")
    for operand in inputs:
        if operand is None or (alias is not None and operand is alias and out.same_memory(alias)):
            continue
        if out.overlaps(operand):
            raise ValueError(
                f"{func}: 'out' overlaps an input; pass a separate array (or exactly the input, in place)"
            )


def softmax_family(func, x, axis, dtype, out, where, log):
    """``log_softmax`` (``log=True``) or ``softmax`` of the device array ``x``."""
    call = _Call(func, x)
    xv = describe(x, func, "x")
    result_dtype = _result_dtype(xv, dtype, func)
    work = _work(xv)
    axes = _plan.normalize_axes(axis, len(xv.shape))
    perm, shape3 = _plan.canonical_layout(work.shape, axes)
    x3 = call.canonical(work, result_dtype, perm, shape3)
    where3 = _operand(call, where, xv, "where", np.dtype(np.bool_), perm, shape3)

    if out is None:
        result, rv = call.new(xv.shape, result_dtype)
    else:
        result, rv = out, describe(out, func, "out")
        where_view = None if where is None else describe(where, func, "where")
        _check_out(func, rv, xv.shape, result_dtype, [xv, where_view], alias=xv)
    target = _work(rv).transpose(perm)
    direct = target.view_as(shape3)
    temp = None
    if direct is None:  # an out= whose strides do not fit the view: compute, then scatter into it
        _, temp = call.new(target.shape, result_dtype)
        direct = temp.view_as(shape3)
    _launch.softmax(x3, where3, direct, log, call.stream, call.scratch)
    if temp is not None:
        _launch.copy(temp, target, call.stream)
    return result


def logsumexp(x, axis, keepdims, b, return_sign, dtype, out, where):
    """``logsumexp`` of the device array ``x`` (arguments as the public function)."""
    func = "logsumexp"
    call = _Call(func, x)
    xv = describe(x, func, "x")
    result_dtype = _result_dtype(xv, dtype, func)
    work = _work(xv)
    axes = _plan.normalize_axes(axis, len(xv.shape))
    perm, shape3 = _plan.canonical_layout(work.shape, axes)
    x3 = call.canonical(work, result_dtype, perm, shape3)
    where3 = _operand(call, where, xv, "where", np.dtype(np.bool_), perm, shape3)
    weights = np.dtype(np.float64 if result_dtype == np.float64 else np.float32)
    b3 = _operand(call, b, xv, "b", weights, perm, shape3)

    kept = tuple(size for axis, size in enumerate(work.shape) if axis not in axes)
    shape = tuple(1 if a in axes else size for a, size in enumerate(work.shape)) if keepdims else kept
    if not xv.shape:
        shape = ()
    outer, _, inner = shape3
    if out is None:
        result, rv = call.new(shape, result_dtype)
    else:
        result, rv = out, describe(out, func, "out")
        operands = [
            describe(operand, func, name)
            for operand, name in ((where, "where"), (b, "b"))
            if operand is not None
        ]
        _check_out(func, rv, shape, result_dtype, [xv, *operands])
    lse = rv.view_as((outer, inner))
    temp = None
    if lse is None:
        _, temp = call.new((outer, inner), result_dtype)
        lse = temp
    sign = sign_view = None
    if return_sign:
        sign, sign_view = call.new(shape, result_dtype)
    _launch.logsumexp(
        x3,
        where3,
        b3,
        lse,
        None if sign_view is None else sign_view.view_as((outer, inner)),
        call.stream,
        call.scratch,
    )
    if temp is not None:
        _launch.copy(temp.with_layout(shape, contiguous_strides(shape, temp.dtype.itemsize)), rv, call.stream)
    return (result, sign) if return_sign else result
