"""The gradients and losses on device arrays: validate, plan, launch; results stay on the device.

The same checks, messages and results as ``lsm._gradients`` and ``lsm._losses`` on the host,
with every array handled as a :class:`~lsm.cuda._layout.Strided` description (see ``_call``).
Results are the caller's kind of device array; a reduced loss is a 0-d device array.

One difference from the forward functions, which never synchronise: a loss call with
class-index targets or class weights validates them on the device and copies the few bytes of
the verdict back to the host (the first out-of-range target's position, the number of bad
weights, the total weight of the counted targets), waiting for the caller's stream. That is how
an out-of-range target raises ``IndexError`` naming its value and position, as on the CPU,
instead of a silent NaN; the total weight is also the mean's denominator, which scales the
gradient. (Naming the offending value costs one more copy of one element, only on that error.)
"""

import numpy as np

from .. import _gradients, _losses, _plan
from . import _launch, _numba
from ._call import _Call, _check_out, _operand, _result_dtype, _work
from ._layout import contiguous_strides, describe


def _output(call, out, func, shape, dtype, inputs, alias, perm, shape3):
    """``(result, view)``: ``out`` (checked) or a new array, and a canonical view to write into
    (a temporary when ``out``'s strides do not fit; ``_finish_output`` copies it in)."""
    if out is None:
        result, rv = call.new(shape, dtype)
    else:
        result, rv = out, describe(out, func, "out")
        _check_out(func, rv, shape, dtype, inputs, alias=alias)
    target = _work(rv).transpose(perm)
    direct = target.view_as(shape3)
    if direct is not None:
        return result, direct, None
    _, temp = call.new(target.shape, dtype)
    return result, temp.view_as(shape3), (temp, target)


def _finish_output(call, pending):
    if pending is not None:
        _launch.copy(*pending, call.stream)


def softmax_backward(func, grad, y, axis, out, where, log):
    """``log_softmax_backward`` (``log=True``) or ``softmax_backward`` of device arrays."""
    call = _Call(func, y)
    gv, yv = describe(grad, func, "grad"), describe(y, func, "y")
    if gv.shape != yv.shape:
        raise ValueError(f"{func}: 'grad' has shape {gv.shape} but 'y' has shape {yv.shape}; they must match")
    dtype = _gradients._backward_dtype(gv, yv, func)
    work = _work(yv)
    axes = _plan.normalize_axes(axis, len(yv.shape))
    perm, shape3 = _plan.canonical_layout(work.shape, axes)
    grad3 = call.canonical(_work(gv), dtype, perm, shape3)
    y3 = call.canonical(work, dtype, perm, shape3)
    where3 = _operand(call, where, yv, "where", np.dtype(np.bool_), perm, shape3)
    inputs = [gv, yv, None if where is None else describe(where, func, "where")]
    alias = None
    if out is not None:
        alias = gv if describe(out, func, "out").overlaps(gv) else yv
    result, target, pending = _output(call, out, func, yv.shape, dtype, inputs, alias, perm, shape3)
    _launch.softmax_backward(grad3, y3, where3, target, log, call.stream)
    _finish_output(call, pending)
    return result


class _Checks:
    """The device-side validation of one loss call (see the module docstring)."""

    def __init__(self, call):
        self.call = call
        self.status = None  # int64 [first bad target position, bad weight count]
        self.total = None  # float64 [total weight of the counted targets]

    def _start(self, items):
        if self.status is None:
            self.status = _numba.to_device(np.array([items, 0], dtype=np.int64), self.call.stream)
            self.total = _numba.to_device(np.zeros(1), self.call.stream)

    def weight(self, class_weight, items):
        self._start(items)
        _launch.check_weight(class_weight, self.status, self.call.stream)

    def targets(self, target2, n_classes, ignore_index, class_weight):
        self._start(target2.size)
        args = target2, n_classes, ignore_index, class_weight, self.status, self.total
        _launch.check_targets(*args, self.call.stream)

    def verdict(self):
        """``(first bad position, bad weights, total weight)``, copied to the host (or None)."""
        if self.status is None:
            return None
        status = _numba.to_host(self.status, self.call.stream)
        total = _numba.to_host(self.total, self.call.stream)
        return int(status[0]), int(status[1]), float(total[0])


def _class_weight(call, func, weight, n_classes, dtype, checks, items):
    """``weight`` as a 1-d device array of the accumulation type, queued for checking; None
    without weights (the kernels count 1 per class)."""
    if weight is None:
        return None
    view = describe(weight, func, "weight")
    if view.shape != (n_classes,):
        raise ValueError(f"{func}: 'weight' must have shape ({n_classes},), one per class, got {view.shape}")
    accumulation = np.dtype(np.float64 if dtype == np.float64 else np.float32)
    class_weight = call.canonical(view, accumulation, None, (n_classes,)).device()
    checks.weight(class_weight, items)
    return class_weight


def _raise_bad_input(func, verdict, target2, kept, n_classes, ignore_index, stream):
    position, bad_weights, _ = verdict
    if bad_weights:
        raise ValueError(f"{func}: 'weight' must be finite and non-negative ({bad_weights} entries are not)")
    if target2 is not None and position < target2.size:
        inner = target2.shape[1]
        o, i = divmod(position, inner)
        element = target2.with_layout((1,), (target2.dtype.itemsize,))
        element = element.shifted(o * target2.strides[0] + i * target2.strides[1])
        value = _numba.to_host(element.device(), stream)[0]
        where = np.unravel_index(position, kept) if kept else ()
        raise _losses.out_of_range(func, value, where, n_classes, ignore_index)


def _setup(call, func, x, axis, name):
    """``(view, dtype, perm, shape3, canonical x, kept shape, class axis)`` of a loss input."""
    xv = describe(x, func, name)
    axis = _losses.check_class_axis(func, axis, len(xv.shape), name)
    dtype = _result_dtype(xv, None, func)
    axes = _plan.normalize_axes(axis, len(xv.shape))
    perm, shape3 = _plan.canonical_layout(xv.shape, axes)
    kept = tuple(size for a, size in enumerate(xv.shape) if a not in axes)
    return xv, dtype, perm, shape3, call.canonical(xv, dtype, perm, shape3), kept, axes[0]


def _index_target(call, func, tv, kept, class_axis, shape3):
    """Class-index targets as an ``(outer, inner)`` view (their own integer dtype)."""
    if tv.shape != kept:
        raise _losses.index_target_shape_error(func, tv.shape, kept, class_axis)
    outer, _, inner = shape3
    return call.canonical(tv, tv.dtype, None, (outer, inner))


def _reduced(call, loss, reduction, denominator, kept, dtype):
    """The float64 per-item losses (a new ``(outer, inner)`` array) reduced as asked, in ``dtype``."""
    items = loss.with_layout(kept, contiguous_strides(kept, loss.dtype.itemsize))
    if reduction == "none":
        result, rv = call.new(kept, dtype)
        _launch.copy(items, rv, call.stream)
        return result
    result, rv = call.new((), dtype)
    flat = loss.with_layout((loss.size,), (loss.dtype.itemsize,)).device()
    denominator = denominator if reduction == "mean" else 1.0
    _launch.reduce_loss(flat, denominator, _work(rv).device(), call.stream)
    return result


def cross_entropy(
    logits, target, axis, weight, ignore_index, reduction, smoothing, return_grad, grad_out, grad_scale
):
    """``lsm.cross_entropy`` of device arrays (options validated by the caller)."""
    func = "cross_entropy"
    call = _Call(func, logits)
    xv, dtype, perm, shape3, x3, kept, class_axis = _setup(call, func, logits, axis, "logits")
    outer, n_classes, inner = shape3
    checks = _Checks(call)
    class_weight = _class_weight(call, func, weight, n_classes, dtype, checks, outer * inner)
    tv = describe(target, func, "target")
    _losses.check_target_dtype(func, tv.dtype)
    target2 = probs3 = None
    if tv.dtype.kind in "iu":
        target2 = _index_target(call, func, tv, kept, class_axis, shape3)
        checks.targets(target2, n_classes, ignore_index, class_weight)
    else:
        if ignore_index != -100:
            raise ValueError(
                f"{func}: ignore_index applies to class-index targets only, got ignore_index={ignore_index} "
                "with probability targets"
            )
        if tv.shape != xv.shape:
            raise ValueError(
                f"{func}: 'target' has shape {tv.shape}, expected {xv.shape} (the shape of the input)"
            )
        probs3 = call.canonical(tv, dtype, perm, shape3)
    grad = target3 = pending = None
    if return_grad:
        inputs = [xv, tv, None if weight is None else describe(weight, func, "weight")]
        grad, target3, pending = _output(call, grad_out, func, xv.shape, dtype, inputs, xv, perm, shape3)
    verdict = checks.verdict()
    if verdict is not None:
        _raise_bad_input(func, verdict, target2, kept, n_classes, ignore_index, call.stream)
    denominator = verdict[2] if target2 is not None else outer * inner
    with np.errstate(divide="ignore"):  # nothing counted: an infinite scale, NaN gradients
        scale = float(np.float64(1.0) / np.float64(denominator)) if reduction == "mean" else 1.0
    if grad_scale is not None:
        scale = float(grad_scale)
    spread = smoothing / n_classes if n_classes else 0.0
    _, loss = call.new((outer, inner), np.dtype(np.float64))
    options = ignore_index, 1.0 - smoothing, spread, scale
    _launch.cross_entropy(x3, target2, probs3, class_weight, options, loss, target3, call.stream)
    _finish_output(call, pending)
    value = _reduced(call, loss, reduction, denominator, kept, dtype)
    return (value, grad) if return_grad else value


def nll_loss(logp, target, axis, weight, ignore_index, reduction):
    """``lsm.nll_loss`` of device arrays (options validated by the caller)."""
    func = "nll_loss"
    call = _Call(func, logp)
    _, dtype, _, shape3, x3, kept, class_axis = _setup(call, func, logp, axis, "logp")
    outer, n_classes, inner = shape3
    checks = _Checks(call)
    class_weight = _class_weight(call, func, weight, n_classes, dtype, checks, outer * inner)
    tv = describe(target, func, "target")
    if tv.dtype.kind not in "iu":
        raise TypeError(f"{func}: 'target' must hold integer class indices, got dtype {tv.dtype.name}")
    target2 = _index_target(call, func, tv, kept, class_axis, shape3)
    checks.targets(target2, n_classes, ignore_index, class_weight)
    verdict = checks.verdict()
    _raise_bad_input(func, verdict, target2, kept, n_classes, ignore_index, call.stream)
    _, loss = call.new((outer, inner), np.dtype(np.float64))
    _launch.nll_loss(x3, target2, class_weight, ignore_index, loss, call.stream)
    return _reduced(call, loss, reduction, verdict[2], kept, dtype)
