"""The gradients of log_softmax and softmax: their documentation, and one pipeline call each."""

from typing import Any, overload

from numpy.typing import ArrayLike, NDArray

from ._dispatch import pipeline_for
from ._typing import Array, ArrayInput, Axis, FloatArray, Floating, HostResult, HostScalar, HostSequence

# The overloads say which kind of array each call returns (see ``lsm._typing``): that of ``grad``.


@overload
def log_softmax_backward(
    grad: HostScalar, y: ArrayInput, axis: Axis = -1, *, out: None = None, where: ArrayInput | None = None
) -> Floating: ...
@overload
def log_softmax_backward(
    grad: HostSequence,
    y: ArrayInput,
    axis: Axis = -1,
    *,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> FloatArray: ...
@overload
def log_softmax_backward(
    grad: Array, y: ArrayInput, axis: Axis = -1, *, out: Array | None = None, where: ArrayInput | None = None
) -> Array: ...
@overload
def log_softmax_backward(
    grad: ArrayLike,
    y: ArrayInput,
    axis: Axis = -1,
    *,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> HostResult: ...
def log_softmax_backward(
    grad: ArrayInput,
    y: ArrayInput,
    axis: Axis = -1,
    *,
    out: ArrayInput | None = None,
    where: ArrayInput | None = None,
) -> Any:
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
    pipeline = pipeline_for("log_softmax_backward", grad=grad, y=y, out=out, where=where)
    return pipeline.softmax_backward("log_softmax_backward", grad, y, axis, out, where, log=True)


@overload
def softmax_backward(
    grad: HostScalar, y: ArrayInput, axis: Axis = -1, *, out: None = None, where: ArrayInput | None = None
) -> Floating: ...
@overload
def softmax_backward(
    grad: HostSequence,
    y: ArrayInput,
    axis: Axis = -1,
    *,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> FloatArray: ...
@overload
def softmax_backward(
    grad: Array, y: ArrayInput, axis: Axis = -1, *, out: Array | None = None, where: ArrayInput | None = None
) -> Array: ...
@overload
def softmax_backward(
    grad: ArrayLike,
    y: ArrayInput,
    axis: Axis = -1,
    *,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> HostResult: ...
def softmax_backward(
    grad: ArrayInput,
    y: ArrayInput,
    axis: Axis = -1,
    *,
    out: ArrayInput | None = None,
    where: ArrayInput | None = None,
) -> Any:
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
    pipeline = pipeline_for("softmax_backward", grad=grad, y=y, out=out, where=where)
    return pipeline.softmax_backward("softmax_backward", grad, y, axis, out, where, log=False)
