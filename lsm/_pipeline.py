"""The one pipeline every in-memory call runs, on host and device arrays alike.

validate -> plan -> canonical operands -> allocate or check ``out=`` -> kernel -> copy back ->
finish. :class:`Pipeline` is bound to a backend (``lsm._protocol.Backend``: the CPU or the
CUDA one) and never looks at memory itself: the backend makes views, copies and launches, the
plan (``lsm._plan``) is shape arithmetic, and every check is ``lsm._validate``'s.
"""

import functools
import math

import numpy as np

from . import _validate
from ._plan import Plan, accumulation_dtype

_BOOL = np.dtype(np.bool_)  # the dtype of where=


def _reciprocal(value):
    """``1 / value`` as IEEE arithmetic gives it: inf for 0 (a mean over nothing counted: an
    infinite scale, NaN gradients), NaN for NaN."""
    return 1.0 / value if value else math.inf


class _Output:
    """Where a kernel writes a result: the canonical view of ``out`` (or of a new array), or,
    when ``out``'s strides cannot be viewed that way, a temporary copied back by :meth:`done`
    (the one place lsm computes into a temporary and copies back)."""

    def __init__(self, backend, view, perm, shape, dtype):
        self._backend = backend
        permuted = backend.transpose(view, perm)
        self.view = backend.reshape(permuted, shape)
        self._pending = None
        if self.view is None:
            _, temp = backend.empty(permuted.shape, dtype)
            self.view = backend.reshape(temp, shape)
            self._pending = temp, permuted

    def done(self):
        if self._pending is not None:
            self._backend.copy(*self._pending)


def _on_the_backend(step):
    """Run a public step inside ``backend.active()`` (the GPU: the arrays' device current)."""

    @functools.wraps(step)
    def run(self, *args, **kwargs):
        with self.backend.active():
            return step(self, *args, **kwargs)

    return run


class Pipeline:
    """The public functions' steps over one backend's arrays (see the module docstring)."""

    def __init__(self, backend):
        self.backend = backend

    # --- steps --------------------------------------------------------------------------------

    def _input(self, func, array, name="x"):
        view = self.backend.describe(array, func, name)
        _validate.input_dtype(func, view.dtype, name)
        return view

    def _result_dtype(self, func, dtype, requested=None):
        dtype = _validate.result_dtype(func, dtype, requested)
        self.backend.check_dtype(func, dtype)
        return dtype

    def _work(self, view):
        """A 0-d view as one element (the kernels see a 0-d input as a 1-element group)."""
        return view if view.shape else self.backend.reshape(view, (1,))

    def _canonical(self, view, dtype, plan):
        return self.backend.canonical(self._work(view), dtype, plan.perm, plan.shape3)

    def _beside(self, func, view, name, dtype, plan, x_shape):
        """The view of an operand broadcast to the input (``where``, ``b``), canonical, or None."""
        if view is None:
            return None
        if name == "where":
            _validate.where_dtype(func, view.dtype)
        else:
            _validate.input_dtype(func, view.dtype, name)
        broadcast = self.backend.broadcast(view, x_shape)
        if broadcast is None:
            raise _validate.broadcast_error(func, name, view.shape, x_shape)
        return self._canonical(broadcast, dtype, plan)

    def _output(self, func, out, shape, dtype, inputs, alias=None, name="out", like=None):
        """``(result, view)``: a new array (in the memory order of the view ``like``, when given
        and the backend can), or ``out`` once checked against the result and the input views
        ``inputs`` (which it may not overlap, unless it is exactly ``alias``)."""
        if out is None:
            return self.backend.empty(shape, dtype, like)
        view = self.backend.describe_out(out, func, name)
        _validate.out_layout(func, view.shape, view.dtype, self.backend.readonly(view), shape, dtype, name)
        for operand in inputs:
            if operand is None or (operand is alias and self.backend.same_memory(view, alias)):
                continue
            if self.backend.overlaps(view, operand):
                raise _validate.out_overlaps(func, name)
        return out, view

    def _finish(self, result, out):
        return out if out is not None else self.backend.finish(result)

    # --- the forward functions ----------------------------------------------------------------

    @_on_the_backend
    def softmax(self, func, x, axis, dtype, out, where, log):
        """``log_softmax`` (``log``) or ``softmax``, named ``func``."""
        xv = self._input(func, x)
        dtype = self._result_dtype(func, xv.dtype, dtype)
        plan = Plan.of(xv.shape, _validate.axes(axis, len(xv.shape)))
        x3 = self._canonical(xv, dtype, plan)
        wv = None if where is None else self.backend.describe(where, func, "where")
        where3 = self._beside(func, wv, "where", _BOOL, plan, xv.shape)
        result, rv = self._output(func, out, xv.shape, dtype, [xv, wv], alias=xv, like=xv)
        target = _Output(self.backend, self._work(rv), plan.perm, plan.shape3, dtype)
        self.backend.softmax(x3, where3, target.view, log)
        target.done()
        return self._finish(result, out)

    @_on_the_backend
    def logsumexp(self, x, axis, keepdims, b, return_sign, dtype, out, where):
        func = "logsumexp"
        xv = self._input(func, x)
        dtype = self._result_dtype(func, xv.dtype, dtype)
        plan = Plan.of(xv.shape, _validate.axes(axis, len(xv.shape)))
        x3 = self._canonical(xv, dtype, plan)
        wv = None if where is None else self.backend.describe(where, func, "where")
        bv = None if b is None else self.backend.describe(b, func, "b")
        where3 = self._beside(func, wv, "where", _BOOL, plan, xv.shape)
        b3 = self._beside(func, bv, "b", accumulation_dtype(dtype), plan, xv.shape)
        shape = plan.reduced_shape(keepdims)
        result, rv = self._output(func, out, shape, dtype, [xv, wv, bv])
        lse = _Output(self.backend, rv, None, plan.shape2, dtype)
        sign = sign_view = None
        if return_sign:
            sign, sign_view = self.backend.empty(shape, dtype)
            sign_view = self.backend.reshape(sign_view, plan.shape2)
        self.backend.logsumexp(x3, where3, b3, lse.view, sign_view)
        lse.done()
        result = self._finish(result, out)
        return (result, self.backend.finish(sign)) if return_sign else result

    # --- the gradients ------------------------------------------------------------------------

    @_on_the_backend
    def softmax_backward(self, func, grad, y, axis, out, where, log):
        """``log_softmax_backward`` (``log``) or ``softmax_backward``, named ``func``."""
        gv, yv = self._input(func, grad, "grad"), self._input(func, y, "y")
        _validate.grad_and_y(func, gv.shape, yv.shape)
        dtype = _validate.backward_dtype(func, gv.dtype, yv.dtype)
        self.backend.check_dtype(func, dtype)
        plan = Plan.of(yv.shape, _validate.axes(axis, len(yv.shape)))
        grad3, y3 = self._canonical(gv, dtype, plan), self._canonical(yv, dtype, plan)
        wv = None if where is None else self.backend.describe(where, func, "where")
        where3 = self._beside(func, wv, "where", _BOOL, plan, yv.shape)
        alias = yv
        if out is not None and self.backend.overlaps(self.backend.describe_out(out, func, "out"), gv):
            alias = gv
        result, rv = self._output(func, out, yv.shape, dtype, [gv, yv, wv], alias=alias, like=gv)
        target = _Output(self.backend, self._work(rv), plan.perm, plan.shape3, dtype)
        self.backend.softmax_backward(grad3, y3, where3, target.view, log)
        target.done()
        return self._finish(result, out)

    # --- the losses ---------------------------------------------------------------------------

    def _classes(self, func, logits, axis, name):
        """``(view, dtype, plan, canonical logits)`` of a loss input with class axis ``axis``."""
        xv = self._input(func, logits, name)
        axes = _validate.class_axis(func, axis, len(xv.shape), name)
        dtype = self._result_dtype(func, xv.dtype)
        plan = Plan.of(xv.shape, axes)
        return xv, dtype, plan, self._canonical(xv, dtype, plan)

    def _class_weight(self, func, weight, n_classes, dtype):
        """``(view, kernel operand)`` of the class weights (None, and the backend's stand-in,
        without weights)."""
        if weight is None:
            return None, self.backend.class_weight(None, n_classes, accumulation_dtype(dtype))
        view = self._input(func, weight, "weight")
        _validate.weight_shape(func, view.shape, n_classes)
        return view, self.backend.class_weight(view, n_classes, accumulation_dtype(dtype))

    def class_weight(self, func, weight, n_classes, dtype):
        """The class weights as the kernels take them, checked (the targets are not needed)."""
        _, class_weight = self._class_weight(func, weight, n_classes, dtype)
        _, bad_weights, _ = self.backend.check_classes(None, n_classes, None, class_weight)
        if bad_weights:
            raise _validate.bad_weights(func, bad_weights)
        return class_weight

    def _checked_targets(self, func, tv, plan, ignore_index, class_weight):
        """Class-index targets as the kernels take them, checked; and their total weight."""
        _validate.index_target_shape(func, tv.shape, plan.kept_shape, plan.axes[0])
        target2 = self.backend.index_targets(tv, plan.shape2)
        n_classes = plan.shape3[1]
        position, bad_weights, total = self.backend.check_classes(
            target2, n_classes, ignore_index, class_weight
        )
        if bad_weights:
            raise _validate.bad_weights(func, bad_weights)
        if position >= 0:
            where = np.unravel_index(position, plan.kept_shape) if plan.kept_shape else ()
            value = self.backend.item(tv, tuple(int(i) for i in where))
            raise _validate.out_of_range(func, value, where, n_classes, ignore_index)
        return target2, total

    def _losses(self, plan):
        """``(per-item view, kernel view)`` of a new float64 array for the per-item losses: the
        input's shape without the class axis, and the ``(outer, inner)`` view of it."""
        _, items = self.backend.empty(plan.kept_shape, np.dtype(np.float64))
        return items, self.backend.reshape(items, plan.shape2)

    def _reduce(self, items, loss, reduction, denominator, dtype):
        """The float64 per-item losses reduced as asked, in ``dtype`` (a scalar unless 'none')."""
        if reduction == "none":
            result, view = self.backend.empty(items.shape, dtype)
            self.backend.copy(items, view)
        else:
            result, view = self.backend.empty((), dtype)
            self.backend.reduce_loss(loss, denominator if reduction == "mean" else None, view)
        return self.backend.finish(result)

    @_on_the_backend
    def cross_entropy(
        self, logits, target, axis, weight, ignore_index, reduction, smoothing, return_grad, grad_out,
        grad_scale=None,
    ):  # fmt: skip
        """:func:`lsm.cross_entropy`. ``grad_scale``, when given, replaces the gradient's own
        factor (``1 / total weight`` for a mean, else 1): a Dask block of a batch scales its
        gradient by the whole batch's total, in the kernel, so it is rounded once."""
        func = "cross_entropy"
        reduction, ignore_index, smoothing = _validate.loss_options(
            func, reduction, ignore_index, smoothing, grad_out, return_grad
        )
        xv, dtype, plan, x3 = self._classes(func, logits, axis, "logits")
        outer, n_classes, inner = plan.shape3
        wv, class_weight = self._class_weight(func, weight, n_classes, dtype)
        tv = self.backend.describe(target, func, "target")
        _validate.target_dtype(func, tv.dtype)
        target2 = probs3 = None
        if tv.dtype.kind in "iu":
            target2, denominator = self._checked_targets(func, tv, plan, ignore_index, class_weight)
        else:
            _validate.probabilities_without_ignore_index(func, ignore_index)
            _validate.same_shape(func, "target", tv.shape, xv.shape)
            class_weight = self.class_weight(func, weight, n_classes, dtype)
            probs3 = self._canonical(tv, dtype, plan)
            denominator = outer * inner
        scale = _reciprocal(denominator) if reduction == "mean" else 1.0
        if grad_scale is not None:
            scale = float(grad_scale)
        spread = smoothing / n_classes if n_classes else 0.0
        items, loss = self._losses(plan)
        grad = target = None
        if return_grad:
            grad, gv = self._output(
                func, grad_out, xv.shape, dtype, [xv, tv, wv], alias=xv, name="grad_out", like=xv
            )
            target = _Output(self.backend, gv, plan.perm, plan.shape3, dtype)
        options = ignore_index, 1.0 - smoothing, spread, scale
        self.backend.cross_entropy(
            x3, target2, probs3, class_weight, options, loss, None if target is None else target.view
        )
        value = self._reduce(items, loss, reduction, denominator, dtype)
        if not return_grad:
            return value
        target.done()
        return value, grad

    @_on_the_backend
    def nll_loss(self, logp, target, axis, weight, ignore_index, reduction):
        """:func:`lsm.nll_loss`."""
        func = "nll_loss"
        reduction, ignore_index, _ = _validate.loss_options(func, reduction, ignore_index)
        _, dtype, plan, x3 = self._classes(func, logp, axis, "logp")
        _, class_weight = self._class_weight(func, weight, plan.shape3[1], dtype)
        tv = self.backend.describe(target, func, "target")
        _validate.index_target_dtype(func, tv.dtype)
        target2, denominator = self._checked_targets(func, tv, plan, ignore_index, class_weight)
        items, loss = self._losses(plan)
        self.backend.nll_loss(x3, target2, class_weight, ignore_index, loss)
        return self._reduce(items, loss, reduction, denominator, dtype)
