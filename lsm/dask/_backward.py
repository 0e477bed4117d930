"""log_softmax_backward and softmax_backward of Dask arrays: task graphs over the in-memory
pipeline.

Reduced axis in one chunk: one in-memory call per block. Reduced axis split across chunks: the
one sum each gradient needs (of ``grad``, or of ``grad * y``) is a Dask reduction in float64,
and a blockwise pass finalises ``grad - e^y s`` or ``y (grad - s)``.
"""

import dask.array as da
import numpy as np

from .. import _validate
from ._blocks import as_input, axes_in_one_chunk, in_memory, meta, operand, thread_share

# --- gradients --------------------------------------------------------------------------------


def _backward_block(grad, y, where, *, op, axes):
    with thread_share():
        return in_memory(op, y).softmax_backward(op, grad, y, axes, None, where, op == "log_softmax_backward")


def _summed_terms(grad, y, where, *, log):
    """What each gradient sums over a group: ``grad`` (log) or ``grad * y``; 0 where masked."""
    grad = grad.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf * 0 at masked places, replaced just below
        terms = grad if log else grad * y.astype(np.float64)
    return terms if where is None else np.where(where, terms, 0.0)


def _finalise_backward(grad, y, total, where, *, log, result_dtype):
    """``grad - e^y s`` (log) or ``y (grad - s)`` from the group sums ``s``; 0 where masked."""
    grad, y = grad.astype(np.float64), y.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf * 0 at masked places, replaced just below
        value = grad - np.exp(y) * total if log else y * (grad - total)
    if where is not None:
        value = np.where(where, value, 0.0)
    return value.astype(result_dtype, copy=False)


def softmax_backward(func, grad, y, axis, out, where, log):
    """``log_softmax_backward`` (``log``) or ``softmax_backward`` of Dask arrays."""
    _validate.lazy_out(func, "out", out)
    grad, y = as_input(func, grad, "grad"), as_input(func, y, "y")
    _validate.grad_and_y(func, grad.shape, y.shape)
    result_dtype = _validate.backward_dtype(func, grad.dtype, y.dtype)
    axes = _validate.axes(axis, y.ndim)
    grad = grad.rechunk(y.chunks)
    where = operand(func, where, y, "where")
    result_meta = meta(y, result_dtype, y.ndim)
    if axes_in_one_chunk(y, axes):
        return da.map_blocks(
            _backward_block, grad, y, where, op=func, axes=axes, dtype=result_dtype, meta=result_meta
        )
    terms = da.map_blocks(_summed_terms, grad, y, where, log=log, dtype=np.float64)
    total = terms.sum(axis=axes, keepdims=True)
    return da.map_blocks(
        _finalise_backward,
        grad,
        y,
        total,
        where,
        log=log,
        result_dtype=result_dtype,
        dtype=result_dtype,
        meta=result_meta,
    )
