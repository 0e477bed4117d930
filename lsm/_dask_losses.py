"""Dask arrays: the gradients (log_softmax_backward, softmax_backward) and the losses
(cross_entropy, nll_loss) as lazy task graphs over lsm's in-memory calls.

Imported only when a call receives a Dask array. Like ``lsm._dask`` for the forward functions:

* **gradients**, reduced axis in one chunk: one in-memory call per block. Reduced axis split
  across chunks: the one sum each gradient needs (of ``grad``, or of ``grad * y``) is a Dask
  reduction in float64, and a blockwise pass finalises ``grad - e^y s`` or ``y (grad - s)``.
* **losses** over a chunked batch: each block's fused in-memory call gives its per-item losses
  (and gradient of their sum); a 'sum' adds the per-item losses in float64, a 'mean' divides that
  by the total target weight (the count of non-ignored items without weights; the number of items
  for probability targets), added up from the blocks in the same way, as torch defines it. The
  gradient of a 'mean' is the blockwise gradient of the sum scaled by that total. The class axis
  must lie in one chunk (a clear error says how to rechunk otherwise).

Out-of-range class indices raise ``IndexError`` when the graph is computed (a blockwise pass
over the targets checks them, so the message names the position in the whole array), not when
it is built.
"""

import dask.array as da
import numpy as np

from . import _gradients, _losses, _plan
from ._dask import _meta, _operand, _thread_share, reject

# Block functions take ``op`` and ``result_dtype``: map_blocks keeps ``func``, ``name`` and
# ``dtype`` for itself.


# --- gradients --------------------------------------------------------------------------------


def _backward_block(grad, y, where, *, op, axes):
    with _thread_share():
        return getattr(_gradients, op)(grad, y, axis=axes, where=where)


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


def backward(func, grad, y, axis, out, where, log):
    """``log_softmax_backward`` (``log``) or ``softmax_backward`` of Dask arrays."""
    reject(func, "out", out)
    grad, y = da.asarray(grad), da.asarray(y)
    if grad.shape != y.shape:
        raise ValueError(
            f"{func}: 'grad' has shape {grad.shape} but 'y' has shape {y.shape}; they must match"
        )
    result_dtype = _gradients._backward_dtype(grad, y, func)
    axes = _plan.normalize_axes(axis, y.ndim)
    grad = grad.rechunk(y.chunks)
    where = _operand(func, where, y, "where")
    meta = _meta(y, result_dtype, y.ndim)
    if all(y.numblocks[axis] == 1 for axis in axes if axis < y.ndim):
        return da.map_blocks(
            _backward_block, grad, y, where, op=func, axes=axes, dtype=result_dtype, meta=meta
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
        meta=meta,
    )


# --- losses -----------------------------------------------------------------------------------


def _class_axis(func, logits, axis, name):
    """The class axis of Dask ``logits`` as a non-negative int, which must lie in one chunk."""
    (axis,) = _plan.normalize_axes(_losses.check_class_axis(func, axis, logits.ndim, name), logits.ndim)
    if logits.numblocks[axis] != 1:
        raise ValueError(
            f"{func}: the class axis {axis} of {name!r} is split across {logits.numblocks[axis]} chunks; "
            f"keep it in one chunk, e.g. {name}.rechunk({{{axis}: -1}})"
        )
    return axis


def _checked_targets(target, *, op, n_classes, ignore_index, block_info=None):
    """The class-index ``target`` block, unchanged, once no index in it is out of range.

    The in-memory loss call on a block would also raise, but would name the position within the
    block; ``block_info`` gives the block's place, so the ``IndexError`` names the position in
    the whole target.
    """
    bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
    if bad.any():
        position = np.unravel_index(int(np.argmax(bad)), bad.shape)  # the block's first, in C order
        location = block_info[0]["array-location"]  # (start, stop) of the block along each axis
        where = tuple(start + index for (start, _), index in zip(location, position, strict=True))
        raise _losses.out_of_range(op, target[position].item(), where, n_classes, ignore_index)
    return target


def _index_target(func, target, logits, axis, ignore_index):
    """Dask class-index ``target``, chunked like ``logits`` without the class axis, its blocks
    checked for out-of-range indices when computed."""
    kept_shape = logits.shape[:axis] + logits.shape[axis + 1 :]
    if target.shape != kept_shape:
        raise _losses.index_target_shape_error(func, target.shape, kept_shape, axis)
    target = target.rechunk(logits.chunks[:axis] + logits.chunks[axis + 1 :])
    return target.map_blocks(
        _checked_targets, op=func, n_classes=logits.shape[axis], ignore_index=ignore_index, meta=target._meta
    )


def _weight_of_targets(target, weight, ignore_index):
    """Per item: the weight of its target class, 0 where ignored (``target`` is checked, so every
    other index is in range)."""
    weight = np.asarray(weight, like=target)  # on the block's device (NumPy or CuPy)
    valid = target != ignore_index
    return np.where(valid, weight[np.where(valid, target, 0)], 0.0)


def _loss_block(logits, target, *, op, weight, ignore_index, **options):
    with _thread_share():
        loss = getattr(_losses, op)(
            logits, target, axis=-1, weight=weight, ignore_index=ignore_index, reduction="none", **options
        )
    return np.asarray(loss, dtype=np.float64)


def _loss_and_grad_block(logits, target, denominator, *, weight, ignore_index, label_smoothing, mean):
    """One fused call: the per-item losses and the gradient of the batch's loss, as a tuple
    (apply_gufunc has moved the class axis last)."""
    with np.errstate(divide="ignore"):  # nothing counted: an infinite scale, NaN gradients, as torch
        scale = np.float64(1.0) / np.float64(denominator.flat[0]) if mean else 1.0
    with _thread_share():
        loss, grad = _losses.fused_cross_entropy(
            logits, target, -1, weight, ignore_index, "none", label_smoothing, True, None, grad_scale=scale
        )
    return np.asarray(loss, dtype=np.float64), grad


def _mean(total, denominator):
    with np.errstate(divide="ignore", invalid="ignore"):  # nothing counted: 0 / 0 = NaN, as torch
        return np.float64(total) / np.float64(denominator)


def _reduce(loss, reduction, denominator, result_dtype):
    """The per-item float64 losses reduced as asked, in the result dtype (0-d unless 'none')."""
    if reduction == "none":
        return loss.astype(result_dtype)
    total = loss.sum()
    if reduction == "mean":
        total = da.map_blocks(_mean, total, denominator, dtype=np.float64)
    return total.astype(result_dtype)


def losses(
    func, logits, target, axis, weight, ignore_index, reduction, label_smoothing, return_grad, grad_out
):
    """``cross_entropy`` or ``nll_loss`` (``func``) of Dask ``logits``: see the module docstring."""
    reject(func, "grad_out", grad_out)
    _losses._check_reduction(func, reduction)
    ignore_index = _losses._check_ignore_index(func, ignore_index)
    smoothing = _losses._check_smoothing(func, label_smoothing)
    name = "logits" if func == "cross_entropy" else "logp"
    logits = da.asarray(logits)
    result_dtype = _plan.result_dtype(logits.dtype, None, func)
    axis = _class_axis(func, logits, axis, name)
    n_classes = logits.shape[axis]
    class_weight = _losses._class_weight(func, weight, n_classes, result_dtype)
    target = da.asarray(target)
    probabilities = target.dtype.kind == "f" or target.dtype.name == "bfloat16"
    if func == "nll_loss" and probabilities:
        raise TypeError(f"{func}: 'target' must hold integer class indices, got dtype {target.dtype.name}")
    _losses.check_target_dtype(func, target.dtype)
    if probabilities:
        if ignore_index != -100:
            raise ValueError(
                f"{func}: ignore_index applies to class-index targets only, got ignore_index={ignore_index} "
                "with probability targets"
            )
        if target.shape != logits.shape:
            raise ValueError(
                f"{func}: probability 'target' must have the logits' shape {logits.shape}, got {target.shape}"
            )
        target = target.rechunk(logits.chunks)
        denominator = np.float64(np.prod(target.shape[:axis] + target.shape[axis + 1 :]))
    else:
        target = _index_target(func, target, logits, axis, ignore_index)
        denominator = da.map_blocks(
            _weight_of_targets, target, class_weight.astype(np.float64), ignore_index, dtype=np.float64
        ).sum()
    options = {"label_smoothing": smoothing} if func == "cross_entropy" else {}
    common = {"weight": weight, "ignore_index": ignore_index}
    # Both paths go through apply_gufunc, which hands each block over with the class axis last:
    # the loss computed alone is then bitwise the loss computed with its gradient.
    core_target = "(c)" if probabilities else "()"
    if not return_grad:
        loss = da.apply_gufunc(
            _loss_block,
            f"(c),{core_target}->()",
            logits,
            target,
            axes=[(axis,), (axis,) if probabilities else (), ()],
            output_dtypes=np.float64,
            op=func,
            **common,
            **options,
        )
        return _reduce(loss, reduction, denominator, result_dtype)
    loss, grad = da.apply_gufunc(
        _loss_and_grad_block,
        f"(c),{core_target},()->(),(c)",
        logits,
        target,
        da.asarray(denominator),  # a 0-d array, broadcast to every block
        axes=[(axis,), (axis,) if probabilities else (), (), (), (axis,)],
        output_dtypes=(np.float64, result_dtype),
        label_smoothing=smoothing,
        mean=reduction == "mean",
        **common,
    )
    return _reduce(loss, reduction, denominator, result_dtype), grad
