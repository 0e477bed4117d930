"""cross_entropy and nll_loss of Dask arrays: task graphs over the in-memory pipeline.

Over a chunked batch, each block's fused in-memory call gives its per-item losses (and the
gradient of their sum); a 'sum' adds the per-item losses in float64, a 'mean' divides that by
the total target weight (the count of non-ignored items without weights; the number of items
for probability targets), added up from the blocks in the same way, as torch defines it. The
gradient of a 'mean' is the blockwise gradient of the sum scaled by that total. The class axis
must lie in one chunk (a clear error says how to rechunk otherwise).

Out-of-range class indices raise ``IndexError`` when the graph is computed (a blockwise pass
over the targets checks them, so the message names the position in the whole array), not when
it is built.
"""

import dask.array as da
import numpy as np

from .. import _validate
from ._blocks import as_input, in_memory, thread_share

# Block functions take ``op``: map_blocks keeps ``func``, ``name`` and ``dtype`` for itself.


def _check_class_chunks(func, logits, axis, name):
    """The class axis of Dask ``logits`` must lie in one chunk."""
    if logits.numblocks[axis] != 1:
        raise ValueError(
            f"{func}: the class axis {axis} of {name!r} is split across {logits.numblocks[axis]} chunks; "
            f"keep it in one chunk, e.g. {name}.rechunk({{{axis}: -1}})"
        )


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
        raise _validate.out_of_range(op, target[position].item(), where, n_classes, ignore_index)
    return target


def _index_target(func, target, logits, axis, ignore_index):
    """Dask class-index ``target``, chunked like ``logits`` without the class axis, its blocks
    checked for out-of-range indices when computed."""
    kept_shape = logits.shape[:axis] + logits.shape[axis + 1 :]
    _validate.index_target_shape(func, target.shape, kept_shape, axis)
    target = target.rechunk(logits.chunks[:axis] + logits.chunks[axis + 1 :])
    return target.map_blocks(
        _checked_targets, op=func, n_classes=logits.shape[axis], ignore_index=ignore_index, meta=target._meta
    )


def _weight_of_targets(target, weight, ignore_index):
    """Per item: the weight of its target class, 0 where ignored (``target`` is checked, so every
    other index is in range)."""
    weight = np.asarray(weight, like=target)  # on the block's device (NumPy or CuPy)
    valid = target != ignore_index
    if not weight.size:  # no classes: every target is ignored (the check said so)
        return np.zeros_like(target, dtype=np.float64)
    return np.where(valid, weight[np.where(valid, target, 0)], 0.0)


def _loss_block(logits, target, *, op, weight, ignore_index, label_smoothing):
    pipeline = in_memory(op, logits)
    with thread_share():
        if op == "nll_loss":
            loss = pipeline.nll_loss(logits, target, -1, weight, ignore_index, "none")
        else:
            options = ignore_index, "none", label_smoothing, False, None
            loss = pipeline.cross_entropy(logits, target, -1, weight, *options)
    return np.asarray(loss, dtype=np.float64)


def _loss_and_grad_block(logits, target, denominator, *, weight, ignore_index, label_smoothing, mean):
    """One fused call: the per-item losses and the gradient of the batch's loss, as a tuple
    (apply_gufunc has moved the class axis last)."""
    with np.errstate(divide="ignore"):  # nothing counted: an infinite scale, NaN gradients, as torch
        scale = np.float64(1.0) / np.float64(denominator.flat[0]) if mean else 1.0
    with thread_share():
        loss, grad = in_memory("cross_entropy", logits).cross_entropy(
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


def losses(func, logits, target, axis, weight, ignore_index, reduction, smoothing, return_grad, grad_out):
    """``cross_entropy`` or ``nll_loss`` (``func``) of Dask ``logits``: see the module docstring."""
    _validate.lazy_out(func, "grad_out", grad_out)
    reduction, ignore_index, smoothing = _validate.loss_options(
        func, reduction, ignore_index, smoothing, grad_out, return_grad
    )
    name = "logits" if func == "cross_entropy" else "logp"
    logits = as_input(func, logits, name)
    axis = _validate.class_axis(func, axis, logits.ndim, name)[0]
    _check_class_chunks(func, logits, axis, name)
    result_dtype = _validate.result_dtype(func, logits.dtype)
    n_classes = logits.shape[axis]
    class_weight = in_memory(func, weight).class_weight(func, weight, n_classes, result_dtype)
    target = da.asarray(target)
    if func == "nll_loss":
        _validate.index_target_dtype(func, target.dtype)
    _validate.target_dtype(func, target.dtype)
    probabilities = target.dtype.kind not in "iu"
    if probabilities:
        _validate.probabilities_without_ignore_index(func, ignore_index)
        _validate.same_shape(func, "target", target.shape, logits.shape)
        target = target.rechunk(logits.chunks)
        denominator = np.float64(np.prod(target.shape[:axis] + target.shape[axis + 1 :]))
    else:
        target = _index_target(func, target, logits, axis, ignore_index)
        denominator = da.map_blocks(
            _weight_of_targets, target, class_weight.astype(np.float64), ignore_index, dtype=np.float64
        ).sum()
    common = {"weight": weight, "ignore_index": ignore_index, "label_smoothing": smoothing}
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
        mean=reduction == "mean",
        **common,
    )
    return _reduce(loss, reduction, denominator, result_dtype), grad
