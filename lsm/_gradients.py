"""The gradients of log_softmax and softmax: validate, plan, dispatch, return."""

import numpy as np

from . import _plan
from ._api import _finish
from ._dispatch import HOST, backend_for, uses_dask


def _backward_dtype(grad, y, func):
    """The computation dtype: the promotion of the two inputs' float dtypes (ints count as float64)."""
    dtypes = [_plan.result_dtype(array.dtype, None, func) for array in (grad, y)]
    if dtypes[0] == dtypes[1]:
        return dtypes[0]
    try:
        return _plan.result_dtype(np.promote_types(*dtypes), None, func)
    except TypeError as error:  # bfloat16 against float16: no common type
        raise TypeError(
            f"{func}: 'grad' ({dtypes[0]}) and 'y' ({dtypes[1]}) have no common dtype; convert one"
        ) from error


def _backward(func, grad, y, axis, out, where, log):
    if uses_dask(grad, y, out, where):
        from . import _dask_losses

        return _dask_losses.backward(func, grad, y, axis, out, where, log)
    backend = backend_for(grad=grad, y=y, out=out, where=where)
    if backend is not HOST:
        from .cuda import _call_losses

        return _call_losses.softmax_backward(func, grad, y, axis, out, where, log)
    grad = _plan.as_input(grad, func, "grad")
    y = _plan.as_input(y, func, "y")
    if grad.shape != y.shape:
        raise ValueError(
            f"{func}: 'grad' has shape {grad.shape} but 'y' has shape {y.shape}; they must match"
        )
    plan = _plan.make_plan(func, y, axis, _backward_dtype(grad, y, func), where=where)
    grad3 = _plan.canonical_operand(plan, grad, func, "grad")
    if out is None:
        result = np.empty(plan.shape, dtype=plan.dtype)
    else:
        alias = grad if np.may_share_memory(out, grad) else y
        _plan.check_out(func, out, plan.shape, plan.dtype, [grad, y, where], alias=alias)
        result = out
    target = plan.storage_view(_plan.as_storage(result, plan.dtype))
    direct = target is not None
    if not direct:  # an out= whose strides do not fit the view: compute, then copy in
        target = np.empty(plan.x.shape, dtype=_plan.storage_dtype(plan.dtype))
    backend.softmax_backward(grad3, plan.x, plan.where, target, log)
    if not direct:
        permuted = result.reshape(plan.work_shape)
        if plan.perm is not None:
            permuted = permuted.transpose(plan.perm)
        permuted[...] = target.view(plan.dtype).reshape(permuted.shape)
    return _finish(result, out)


def log_softmax_backward(grad, y, axis=-1, *, out=None, where=None):
    r"""Gradient of :func:`lsm.log_softmax`: the vector-Jacobian product for an upstream ``grad``.

    With :math:`y = \operatorname{log\_softmax}(x)` and :math:`g = \partial L / \partial y`,

    .. math::

        \frac{\partial L}{\partial x_j} = g_j - e^{y_j} \sum_k g_k

    along ``axis``. Taking ``y`` (not ``softmax(x)``) as input keeps the gradient exact where the
    probabilities underflow: ``e^{y_j}`` is formed only to multiply the sum.

    Parameters
    ----------
    grad : array_like
        The gradient of the loss with respect to ``y``, of ``y``'s shape. Never modified unless
        passed as ``out``.
    y : array_like
        The output of ``lsm.log_softmax(x, axis, where=where)``. Never modified unless ``out``.
    axis : int, tuple of int or None, optional
        The axis or axes of the forward call (default: the last).
    out : ndarray, optional
        Array of the result's shape and dtype to write into; ``out=grad`` or ``out=y`` (exactly
        that array) works in place.
    where : array_like of bool, optional
        The forward call's mask. Excluded elements get gradient 0 and their ``grad`` takes no
        part in the sum (their outputs were constants); a fully excluded group gives zeros,
        never NaN. Without it, a ``y = -inf`` entry is an ordinary zero probability.

    Returns
    -------
    ndarray or scalar
        :math:`\partial L / \partial x`, in the promoted float dtype of ``grad`` and ``y``
        (float16 and bfloat16 accumulate in float32).

    Raises
    ------
    ValueError
        If ``grad`` and ``y`` differ in shape, or for a bad ``out`` or ``where`` (as in
        :func:`lsm.log_softmax`).
    TypeError, numpy.exceptions.AxisError
        As for :func:`lsm.log_softmax`.

    Examples
    --------
    >>> import numpy as np, lsm
    >>> x = np.array([-999., 1., 2., 5., 6.])
    >>> y = lsm.log_softmax(x)
    >>> g = np.zeros_like(x); g[0] = 1.0  # d y[0] / d x
    >>> lsm.log_softmax_backward(g, y).round(5).tolist()
    [1.0, -0.00484, -0.01315, -0.2641, -0.71791]
    """
    return _backward("log_softmax_backward", grad, y, axis, out, where, log=True)


def softmax_backward(grad, y, axis=-1, *, out=None, where=None):
    r"""Gradient of :func:`lsm.softmax`: the vector-Jacobian product for an upstream ``grad``.

    With :math:`y = \operatorname{softmax}(x)` and :math:`g = \partial L / \partial y`,

    .. math::

        \frac{\partial L}{\partial x_j} = y_j \Bigl(g_j - \sum_k g_k y_k\Bigr)

    along ``axis``.

    Parameters
    ----------
    grad : array_like
        The gradient of the loss with respect to ``y``, of ``y``'s shape.
    y : array_like
        The output of ``lsm.softmax(x, axis, where=where)``.
    axis : int, tuple of int or None, optional
        The axis or axes of the forward call (default: the last).
    out : ndarray, optional
        As for :func:`log_softmax_backward`.
    where : array_like of bool, optional
        The forward call's mask: excluded elements get gradient 0 and take no part in the sum,
        even where ``grad`` is not finite there.

    Returns
    -------
    ndarray or scalar
        :math:`\partial L / \partial x`, in the promoted float dtype of ``grad`` and ``y``.

    Raises
    ------
    ValueError, TypeError, numpy.exceptions.AxisError
        As for :func:`log_softmax_backward`.

    Examples
    --------
    >>> import numpy as np, lsm
    >>> y = lsm.softmax(np.array([0., np.log(3.)]))
    >>> lsm.softmax_backward(np.array([1., 0.]), y).tolist()  # d y[0] / d x
    [0.1875, -0.1875]
    """
    return _backward("softmax_backward", grad, y, axis, out, where, log=False)
