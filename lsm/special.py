r"""``scipy.special``'s ``logsumexp``, ``softmax`` and ``log_softmax`` on lsm's kernels.

``from lsm.special import logsumexp, softmax, log_softmax`` replaces the same import from
``scipy.special``: the signatures, defaults and results are scipy's, on every array kind lsm
takes (NumPy and array-likes, Dask, CuPy, torch). Where scipy's semantics differ from lsm's own
functions, these follow scipy:

- ``axis`` defaults to None (all axes) for ``softmax`` and ``log_softmax`` too, where lsm's
  default is -1 (as in jax and torch);
- ``a`` and ``b`` broadcast together (lsm broadcasts ``b`` to ``x``), and the result dtype is
  their promotion (integers and bools give float64);
- an empty reduction has sign -1 (lsm: 0), and a 0-d ``a`` counts as 1-d (so ``keepdims``
  gives shape ``(1,)``).

Differences that remain: complex input is a ``TypeError`` (scipy computes with it);
``softmax`` and ``log_softmax`` of an empty group give an empty result (scipy raises
``ValueError``) and of a bool array a float64 result (scipy raises ``TypeError``); ``log_softmax``
of a group containing +inf is NaN throughout (scipy: NaN at +inf, -inf elsewhere); float16 is
accumulated in float32, so its results are more accurate than scipy's float16 sums; broadcasting
``a`` against ``b`` needs an array library that broadcasts (Numba device arrays cannot).
scipy's own test file runs against this module in ``tests/test_special_scipy.py``.
"""

from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike

from . import _api, _devices, _validate
from ._typing import Array, ArrayInput, Axis, FloatArray, Floating, HostResult, HostScalar, HostSequence

__all__ = ["log_softmax", "logsumexp", "softmax"]

_PYTHON_SCALARS = (bool, int, float, complex)


def _shape(operand: Any) -> tuple[int, ...]:
    return tuple(np.shape(operand))


def _dtype(operand: Any) -> Any:
    """``operand``'s NumPy dtype; a Python scalar itself (weak in NumPy's promotion, NEP 50)."""
    if isinstance(operand, _PYTHON_SCALARS):
        return operand
    dtype = getattr(operand, "dtype", None)
    if dtype is None:  # a list or another array-like
        return np.asarray(operand).dtype
    if type(operand).__module__.split(".")[0] == "torch":  # torch.float32 -> float32
        name = str(dtype).removeprefix("torch.")
        return _validate.bfloat16_dtype() if name == "bfloat16" else np.dtype(name)
    return np.dtype(dtype)


def _promoted_dtype(a: Any, b: Any) -> np.dtype[Any]:
    """scipy's result dtype for ``a`` with ``b``: their promotion, float64 for integers and bools."""
    dtypes = {"a": _dtype(a), "b": _dtype(b)}
    for name, dtype in dtypes.items():
        _validate.input_dtype("logsumexp", np.result_type(dtype), name)  # complex: TypeError
    promoted = np.result_type(*dtypes.values())
    return np.dtype(np.float64) if promoted.kind in "biu" else promoted


def _broadcast_to(operand: Any, shape: tuple[int, ...]) -> Any:
    """``operand`` viewed with ``shape`` (no copy), as the same kind of array."""
    if hasattr(operand, "reshape") and np.prod(_shape(operand)) == np.prod(shape):
        return operand.reshape(shape)  # only new size-1 axes: every kind of array can
    if type(operand).__module__.split(".")[0] == "torch":
        return operand.broadcast_to(shape)
    if _devices._is_gpu_array(operand) and not hasattr(type(operand), "__array_function__"):
        raise _validate.cannot_broadcast("logsumexp", "a", operand, shape)
    return np.broadcast_to(operand, shape)  # NumPy, array-likes; Dask and CuPy through NEP 18


@overload
def logsumexp(
    a: Array,
    axis: Axis = None,
    b: ArrayInput | None = None,
    keepdims: bool = False,
    return_sign: Literal[False] = False,
) -> Array: ...
@overload
def logsumexp(
    a: Array,
    axis: Axis = None,
    b: ArrayInput | None = None,
    keepdims: bool = False,
    *,
    return_sign: Literal[True],
) -> tuple[Array, Array]: ...
@overload
def logsumexp(
    a: Array, axis: Axis, b: ArrayInput | None, keepdims: bool, return_sign: Literal[True]
) -> tuple[Array, Array]: ...
@overload
def logsumexp(
    a: Array,
    axis: Axis = None,
    b: ArrayInput | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
) -> Array | tuple[Array, Array]: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: Axis = None,
    b: ArrayInput | None = None,
    keepdims: bool = False,
    return_sign: Literal[False] = False,
) -> HostResult: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: Axis = None,
    b: ArrayInput | None = None,
    keepdims: bool = False,
    *,
    return_sign: Literal[True],
) -> tuple[HostResult, HostResult]: ...
@overload
def logsumexp(
    a: ArrayLike, axis: Axis, b: ArrayInput | None, keepdims: bool, return_sign: Literal[True]
) -> tuple[HostResult, HostResult]: ...
@overload
def logsumexp(
    a: ArrayLike,
    axis: Axis = None,
    b: ArrayInput | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
) -> HostResult | tuple[HostResult, HostResult]: ...
def logsumexp(
    a: ArrayInput,
    axis: Axis = None,
    b: ArrayInput | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
) -> Any:
    r"""Logarithm of the sum of exponentials of ``a``, weighted by ``b``, as
    :func:`scipy.special.logsumexp` defines it.

    .. math::

        \operatorname{logsumexp}(a) = \log \sum_j b_j e^{a_j}
            = m + \log \Bigl| \sum_j b_j e^{a_j - m} \Bigr|,
        \qquad m = \max_j a_j

    computed by :func:`lsm.logsumexp`, which keeps full relative accuracy when one term
    dominates.

    Parameters
    ----------
    a : array_like
        Input values: real floats, integers or bools, on the host, on the GPU or in a Dask array.
    axis : int, tuple of int or None, optional
        Axes to sum over (default: all).
    b : array_like, optional
        Weights :math:`b_j`; ``a`` and ``b`` broadcast together. Elements with ``b == 0`` do not
        count, even where ``a`` is inf or NaN.
    keepdims : bool, optional
        Keep the summed axes as size-1 dimensions.
    return_sign : bool, optional
        Also return the sign of the sum; without it a negative sum gives NaN.

    Returns
    -------
    res : ndarray, scalar or the caller's kind of array
        :math:`\log |\sum_j b_j e^{a_j}|`, of the promoted dtype of ``a`` and ``b`` (float64 for
        integers and bools); -inf for an empty sum.
    sgn : ndarray, scalar or the caller's kind of array
        Only with ``return_sign``: the sign of the sum, +1, -1 or 0 (-1 for an empty sum, as
        in scipy).

    Raises
    ------
    TypeError
        For complex input (scipy computes with it; lsm does not), or as :func:`lsm.logsumexp`.
    ValueError
        If ``a`` and ``b`` do not broadcast together.

    See Also
    --------
    lsm.logsumexp : lsm's own, with ``where``, ``dtype`` and ``out``; ``b`` broadcasts to ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from lsm.special import logsumexp
    >>> float(logsumexp(np.zeros((4, 1, 2, 1)), b=np.ones((3, 1, 5))))  # log(4 * 2 * 3 * 5)
    4.787491742782046
    >>> logsumexp([1, 2], b=[1, -1], return_sign=True)
    (np.float64(1.5413248546129181), np.float64(-1.0))
    """
    shape = _shape(a) if b is None else np.broadcast_shapes(_shape(a), _shape(b))
    shape = shape or (1,)  # scipy treats a 0-d input as 1-d
    dtype = None if b is None else _promoted_dtype(a, b)
    operand: Any = a if _shape(a) == shape else _broadcast_to(a, shape)  # any kind of array
    result = _api.logsumexp(operand, axis=axis, keepdims=keepdims, b=b, return_sign=return_sign, dtype=dtype)
    if return_sign and 0 in [shape[axis] for axis in _validate.axes(axis, len(shape))]:
        value, sign = result  # an empty sum: lsm's sign is 0, scipy's -1
        if isinstance(sign, np.generic):
            return value, sign.dtype.type(-1)
        sign[...] = -1
        return value, sign
    return result


@overload
def softmax(x: HostScalar, axis: Axis = None) -> Floating: ...
@overload
def softmax(x: HostSequence, axis: Axis = None) -> FloatArray: ...
@overload
def softmax(x: Array, axis: Axis = None) -> Array: ...
@overload
def softmax(x: ArrayLike, axis: Axis = None) -> HostResult: ...
def softmax(x: ArrayInput, axis: Axis = None) -> Any:
    r"""The softmax of ``x`` over ``axis``, all axes by default, as :func:`scipy.special.softmax`.

    .. math::

        \operatorname{softmax}(x)_j = \frac{e^{x_j}}{\sum_k e^{x_k}} = e^{x_j - \operatorname{logsumexp}(x)}

    computed by :func:`lsm.softmax`.

    Parameters
    ----------
    x : array_like
        Input values: real floats, integers or bools, on the host, on the GPU or in a Dask array.
    axis : int, tuple of int or None, optional
        The axis or axes that sum to 1 (default: None, all of them together).

    Returns
    -------
    ndarray, scalar or the caller's kind of array
        The probabilities, shaped like ``x``; float64 for integer and bool inputs.

    See Also
    --------
    lsm.softmax : lsm's own, whose ``axis`` defaults to -1.

    Examples
    --------
    >>> import numpy as np
    >>> from lsm.special import softmax
    >>> float(softmax(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])).sum())  # over all axes
    1.0
    """
    return _api.softmax(x, axis=axis)


@overload
def log_softmax(x: HostScalar, axis: Axis = None) -> Floating: ...
@overload
def log_softmax(x: HostSequence, axis: Axis = None) -> FloatArray: ...
@overload
def log_softmax(x: Array, axis: Axis = None) -> Array: ...
@overload
def log_softmax(x: ArrayLike, axis: Axis = None) -> HostResult: ...
def log_softmax(x: ArrayInput, axis: Axis = None) -> Any:
    r"""The logarithm of the softmax of ``x`` over ``axis``, all axes by default, as
    :func:`scipy.special.log_softmax`.

    .. math::

        \operatorname{log\_softmax}(x)_j = x_j - \log \sum_k e^{x_k}

    computed by :func:`lsm.log_softmax`, without underflow.

    Parameters
    ----------
    x : array_like
        Input values: real floats, integers or bools, on the host, on the GPU or in a Dask array.
    axis : int, tuple of int or None, optional
        The axis or axes to normalise over (default: None, all of them together).

    Returns
    -------
    ndarray, scalar or the caller's kind of array
        The log-probabilities, shaped like ``x``; float64 for integer and bool inputs.

    See Also
    --------
    lsm.log_softmax : lsm's own, whose ``axis`` defaults to -1.

    Examples
    --------
    >>> from lsm.special import log_softmax
    >>> log_softmax([1000.0, 1.0])
    array([   0., -999.])
    """
    return _api.log_softmax(x, axis=axis)
