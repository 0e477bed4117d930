"""Losses over the class axis: cross_entropy (with its fused gradient) and nll_loss."""

import numbers
import operator

import numpy as np

from . import _plan
from ._dispatch import HOST, backend_for, uses_dask

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(func, reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{func}: reduction must be one of 'mean', 'sum' or 'none', got {reduction!r}")


def _check_ignore_index(func, ignore_index):
    if isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError(f"{func}: ignore_index must be an integer, got {ignore_index!r}")
    try:
        return operator.index(ignore_index)
    except TypeError as error:
        raise TypeError(f"{func}: ignore_index must be an integer, got {ignore_index!r}") from error


def _check_smoothing(func, label_smoothing):
    if not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, (bool, np.bool_)):
        raise TypeError(f"{func}: label_smoothing must be a real number, got {label_smoothing!r}")
    if not 0.0 <= float(label_smoothing) <= 1.0:  # also rejects NaN
        raise ValueError(f"{func}: label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def check_class_axis(func, axis, ndim, name):
    """``axis`` as an int, for an input ``name`` of ``ndim`` dimensions (at least one)."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{func}: axis must be an integer (the class axis), got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{func}: {name!r} must have at least one dimension (the classes), got a 0-d array")
    return int(axis)


def _plan_classes(func, logits, axis, name):
    """The plan of ``logits`` with the single class axis ``axis`` (an int)."""
    array = _plan.as_input(logits, func, name)
    return _plan.make_plan(func, array, check_class_axis(func, axis, array.ndim, name), None)


def _class_weight(func, weight, n_classes, dtype):
    """``weight`` as a contiguous 1-d array of the accumulation type; ones when None (the kernels
    are compiled for one case only, and the cost of reading a cached weight row is negligible)."""
    accumulation = _plan.accumulation_dtype(dtype)
    if weight is None:
        return np.ones(n_classes, dtype=accumulation)
    array = _plan.as_input(weight, func, "weight")
    if array.shape != (n_classes,):
        raise ValueError(f"{func}: 'weight' must have shape ({n_classes},), one per class, got {array.shape}")
    array = np.ascontiguousarray(array, dtype=accumulation)
    if not np.all(np.isfinite(array) & (array >= 0)):
        raise ValueError(f"{func}: 'weight' must be finite and non-negative, got {weight!r}")
    return array


def _index_target(func, target, plan, ignore_index, class_weight, backend):
    """Class-index targets as int64 ``(outer, inner)``, checked, and the total weight they carry."""
    outer, n_classes, inner = plan.x.shape
    if target.shape != plan.kept_shape:
        raise index_target_shape_error(func, target.shape, plan.kept_shape, plan.axes[0])
    index = np.ascontiguousarray(target, dtype=np.int64).reshape(outer, inner)
    position, total = backend.check_targets(index, n_classes, ignore_index, class_weight)
    if position >= 0:
        where = np.unravel_index(position, plan.kept_shape) if plan.kept_shape else ()
        raise out_of_range(func, target.reshape(-1)[position], where, n_classes, ignore_index)
    return index, total


def check_target_dtype(func, dtype):
    """Class indices (integers) or probabilities (floats): anything else is a TypeError."""
    if dtype.kind not in "iuf" and dtype.name != "bfloat16":
        raise TypeError(
            f"{func}: 'target' must hold integer class indices or floating probabilities, "
            f"got dtype {dtype.name}"
        )


def out_of_range(func, value, where, n_classes, ignore_index):
    """The IndexError for the class-index target ``value`` at index tuple ``where``."""
    return IndexError(
        f"{func}: target {value} at position {tuple(int(i) for i in where)} is out of range for "
        f"{n_classes} classes (valid: 0 to {n_classes - 1}, or ignore_index={ignore_index})"
    )


def index_target_shape_error(func, shape, kept_shape, axis):
    """The ValueError for class-index targets of ``shape`` where ``kept_shape`` is expected."""
    return ValueError(
        f"{func}: class-index 'target' must have shape {kept_shape} (the input's shape without "
        f"axis {axis}), got {shape}"
    )


def _as_target_array(func, target):
    array = np.asarray(target)
    check_target_dtype(func, array.dtype)
    return array


def _reduce(loss, reduction, denominator, plan):
    """The per-item float64 losses reduced as asked, in the input's dtype (a scalar unless 'none')."""
    if reduction == "none":
        return loss.reshape(plan.kept_shape).astype(plan.dtype)[()]
    total = loss.sum()  # pairwise, in float64
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):  # nothing counted: NaN, as torch
            total = np.float64(total) / np.float64(denominator)
    return np.asarray(total, dtype=np.float64).astype(plan.dtype)[()]


def _gradient_buffer(func, plan, logits, target, weight, grad_out):
    """``(result, storage_view, direct)`` for the gradient: ``grad_out`` or a new array."""
    if grad_out is None:
        result = np.empty(plan.shape, dtype=plan.dtype)
    else:
        _plan.check_out(func, grad_out, plan.shape, plan.dtype, [logits, target, weight], alias=logits)
        result = grad_out
    view = plan.storage_view(_plan.as_storage(result, plan.dtype))
    if view is None:  # strides that do not fit the canonical view: compute, then copy in
        return result, np.empty(plan.x.shape, dtype=_plan.storage_dtype(plan.dtype)), False
    return result, view, True


def cross_entropy(
    logits,
    target,
    axis=-1,
    *,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    return_grad=False,
    grad_out=None,
):
    r"""Cross-entropy between the softmax of ``logits`` along ``axis`` and ``target``.

    The semantics of ``torch.nn.functional.cross_entropy``, with ``axis`` as the class axis. For
    one item with logits :math:`x` (``C`` classes), class weights :math:`w` and label smoothing
    :math:`\varepsilon`:

    .. math::

        \ell = -\sum_c q_c \log \operatorname{softmax}(x)_c, \qquad
        q_c = \begin{cases}
            (1 - \varepsilon)\, w_t [c = t] + \varepsilon w_c / C & \text{class index } t \\
            w_c \bigl((1 - \varepsilon) r_c + \varepsilon / C\bigr) & \text{probabilities } r
        \end{cases}

    and the gradient :math:`\partial \ell / \partial x_c = \operatorname{softmax}(x)_c \sum_k q_k - q_c`.

    Parameters
    ----------
    logits : array_like
        Unnormalised scores (real floats; integers become float64), at least 1-d. Never modified
        unless passed as ``grad_out``.
    target : array_like
        Either integer class indices of the logits' shape without ``axis``, each in ``[0, C)`` or
        equal to ``ignore_index``; or floating class probabilities of the logits' shape
        (converted to the logits' dtype; ``ignore_index`` must keep its default).
    axis : int, optional
        The class axis (default: the last; torch's ``(N, C, d1, ...)`` layout is ``axis=1``).
    weight : array_like, optional
        Class weights, shape ``(C,)``, finite and non-negative.
    ignore_index : int, optional
        Class-index targets equal to it contribute no loss and no gradient (default -100).
    reduction : {'mean', 'sum', 'none'}, optional
        'none': the loss per item (the target's shape for class indices). 'sum': their sum.
        'mean' (default): for class indices the sum divided by the total weight of the
        non-ignored targets (their count without weights); for probabilities the sum divided by
        the number of items.
    label_smoothing : float, optional
        :math:`\varepsilon \in [0, 1]`: mixes the target with the uniform distribution.
    return_grad : bool, optional
        Also return the gradient of the returned loss with respect to ``logits`` (for
        ``reduction='none'``, of the sum of the per-item losses), computed in the same pass.
    grad_out : ndarray, optional
        With ``return_grad``: where to write the gradient, of the logits' shape and dtype.
        ``grad_out=logits`` **overwrites the logits** with their gradient, so no second array of
        their size is allocated (unless their strides cannot be viewed in canonical form).

    Returns
    -------
    loss : scalar or ndarray
        In the logits' dtype: a NumPy scalar for 'mean' and 'sum', an array for 'none'.
    dlogits : ndarray
        Only with ``return_grad``: the gradient, of the logits' shape and dtype (``grad_out``
        when given).

    Raises
    ------
    IndexError
        For a class-index target outside ``[0, C)`` that is not ``ignore_index``, naming its
        value and position.
    TypeError
        For a target of another dtype (bool, complex, ...), a non-integer ``axis`` or
        ``ignore_index``, or the dtype errors of :func:`lsm.log_softmax`.
    ValueError
        For a target or weight of the wrong shape, negative or non-finite weights, an unknown
        reduction, ``label_smoothing`` outside [0, 1], ``ignore_index`` with probability targets,
        ``grad_out`` without ``return_grad``, a bad
        ``grad_out`` (shape, dtype, read-only, overlapping the target or weight), 0-d logits.
    numpy.exceptions.AxisError
        For an axis out of range.

    Notes
    -----
    When every target is ignored (or all non-ignored targets have weight 0), the 'mean' is
    0 / 0 = NaN, as in torch; the gradient is then zero for ignored items and NaN for
    zero-weight ones (torch gives the same). Terms with :math:`q_c = 0` count as 0 even where
    :math:`x_c = -\infty` (torch gives NaN for a zero probability target at a -inf logit). A
    group containing NaN or +inf gives NaN loss and gradient.

    float16 and bfloat16 logits accumulate in float32; the per-item losses are summed in float64.

    Examples
    --------
    >>> import numpy as np, lsm
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    >>> round(float(lsm.cross_entropy(logits, np.array([0, 2]))), 6)
    0.669962
    >>> loss, grad = lsm.cross_entropy(logits, np.array([0, 2]), reduction="sum", return_grad=True)
    >>> grad.round(4).tolist()
    [[-0.2144, 0.1753, 0.0391], [0.3333, 0.3333, -0.6667]]
    """
    func = "cross_entropy"
    if uses_dask(logits, target, weight, grad_out):
        from . import _dask_losses

        return _dask_losses.losses(
            func,
            logits,
            target,
            axis,
            weight,
            ignore_index,
            reduction,
            label_smoothing,
            return_grad,
            grad_out,
        )
    return fused_cross_entropy(
        logits, target, axis, weight, ignore_index, reduction, label_smoothing, return_grad, grad_out
    )


def fused_cross_entropy(
    logits,
    target,
    axis,
    weight,
    ignore_index,
    reduction,
    label_smoothing,
    return_grad,
    grad_out,
    grad_scale=None,
):
    """:func:`cross_entropy` of in-memory arrays. ``grad_scale``, when given, replaces the
    gradient's own factor (``1 / total weight`` for a mean, else 1): a Dask block of a batch
    scales its gradient by the whole batch's total, in the kernel, so it is rounded once."""
    func = "cross_entropy"
    backend = backend_for(logits=logits, target=target, weight=weight, grad_out=grad_out)
    _check_reduction(func, reduction)
    smoothing = _check_smoothing(func, label_smoothing)
    ignore_index = _check_ignore_index(func, ignore_index)
    if grad_out is not None and not return_grad:
        raise ValueError(f"{func}: grad_out is only written with return_grad=True")
    if backend is not HOST:
        from .cuda import _call_losses

        options = ignore_index, reduction, smoothing, return_grad, grad_out, grad_scale
        return _call_losses.cross_entropy(logits, target, axis, weight, *options)
    plan = _plan_classes(func, logits, axis, "logits")
    outer, n_classes, inner = plan.x.shape
    class_weight = _class_weight(func, weight, n_classes, plan.dtype)
    target = _as_target_array(func, target)
    if target.dtype.kind in "iu":
        index, denominator = _index_target(func, target, plan, ignore_index, class_weight, backend)
        probs = None
    else:
        if ignore_index != -100:
            raise ValueError(
                f"{func}: ignore_index applies to class-index targets only, got ignore_index={ignore_index} "
                "with probability targets"
            )
        probs = _plan.canonical_operand(plan, target, func, "target")
        index, denominator = None, outer * inner
    with np.errstate(divide="ignore"):  # nothing counted: an infinite scale, NaN gradients
        scale = float(np.float64(1.0) / np.float64(denominator)) if reduction == "mean" else 1.0
    if grad_scale is not None:
        scale = float(grad_scale)
    spread = smoothing / n_classes if n_classes else 0.0

    loss = np.empty((outer, inner), dtype=np.float64)
    grad = view = None
    if return_grad:
        grad, view, direct = _gradient_buffer(func, plan, logits, target, weight, grad_out)
    keep = 1.0 - smoothing
    backend.cross_entropy(plan.x, index, probs, class_weight, ignore_index, keep, spread, scale, loss, view)
    if return_grad and not direct:
        grad[...] = view.view(plan.dtype).reshape(plan.shape)
    value = _reduce(loss, reduction, denominator, plan)
    return (value, grad) if return_grad else value


def nll_loss(logp, target, axis=-1, *, weight=None, ignore_index=-100, reduction="mean"):
    r"""Negative log-likelihood of class-index targets under log-probabilities ``logp``.

    The semantics of ``torch.nn.functional.nll_loss`` with ``axis`` as the class axis: item
    :math:`i` with target :math:`t_i` has loss :math:`-w_{t_i} \, \mathrm{logp}_{i, t_i}`.
    ``nll_loss(log_softmax(x, axis), t, axis)`` equals ``cross_entropy(x, t, axis)``.

    Parameters
    ----------
    logp : array_like
        Log-probabilities (typically :func:`lsm.log_softmax` output), at least 1-d. Never modified.
    target : array_like of int
        Class indices, the shape of ``logp`` without ``axis``, each in ``[0, C)`` or equal to
        ``ignore_index``.
    axis : int, optional
        The class axis (default: the last).
    weight : array_like, optional
        Class weights, shape ``(C,)``, finite and non-negative.
    ignore_index : int, optional
        Targets equal to it contribute nothing (default -100).
    reduction : {'mean', 'sum', 'none'}, optional
        As in :func:`cross_entropy` for class-index targets.

    Returns
    -------
    scalar or ndarray
        The loss in ``logp``'s dtype.

    Raises
    ------
    IndexError, TypeError, ValueError, numpy.exceptions.AxisError
        As for :func:`cross_entropy`; a floating ``target`` is a ``TypeError`` here.

    Notes
    -----
    With every target ignored, the 'mean' is NaN (0 / 0), as in torch. A zero weight gives a
    zero loss even at a -inf log-probability.

    Examples
    --------
    >>> import numpy as np, lsm
    >>> logp = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    >>> round(float(lsm.nll_loss(logp, np.array([0, 2]))), 6)
    0.458145
    """
    func = "nll_loss"
    if uses_dask(logp, target, weight):
        from . import _dask_losses

        return _dask_losses.losses(
            func, logp, target, axis, weight, ignore_index, reduction, 0.0, False, None
        )
    backend = backend_for(logp=logp, target=target, weight=weight)
    _check_reduction(func, reduction)
    ignore_index = _check_ignore_index(func, ignore_index)
    if backend is not HOST:
        from .cuda import _call_losses

        return _call_losses.nll_loss(logp, target, axis, weight, ignore_index, reduction)
    plan = _plan_classes(func, logp, axis, "logp")
    outer, n_classes, inner = plan.x.shape
    class_weight = _class_weight(func, weight, n_classes, plan.dtype)
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{func}: 'target' must hold integer class indices, got dtype {target.dtype.name}")
    index, denominator = _index_target(func, target, plan, ignore_index, class_weight, backend)
    loss = np.empty((outer, inner), dtype=np.float64)
    backend.nll_loss(plan.x, index, class_weight, ignore_index, loss)
    return _reduce(loss, reduction, denominator, plan)
