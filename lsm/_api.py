"""The forward functions: their documentation, and one pipeline call each (see ``lsm._pipeline``)."""

from typing import Any, Literal, overload

from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._dispatch import pipeline_for
from ._typing import Array, ArrayInput, Axis, FloatArray, Floating, HostResult, HostScalar, HostSequence

# The overloads say which kind of array each call returns (see ``lsm._typing``); the
# implementations below them hold the documentation.


@overload
def log_softmax(
    x: HostScalar,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: None = None,
    where: ArrayInput | None = None,
) -> Floating: ...
@overload
def log_softmax(
    x: HostSequence,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> FloatArray: ...
@overload
def log_softmax(
    x: Array,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: Array | None = None,
    where: ArrayInput | None = None,
) -> Array: ...
@overload
def log_softmax(
    x: ArrayLike,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> HostResult: ...
def log_softmax(
    x: ArrayInput,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: ArrayInput | None = None,
    where: ArrayInput | None = None,
) -> Any:
    r"""Logarithm of the softmax along ``axis``, computed without underflow.

    .. math::

        \operatorname{log\_softmax}(x)_j = x_j - \log \sum_k e^{x_k}
                                         = (x_j - m) - \log1p \Bigl(\sum_{k \ne k^*} e^{x_k - m}\Bigr)

    where :math:`m = x_{k^*}` is the largest element. Evaluating it this way, instead of
    ``log(softmax(x))``, keeps every entry finite: a log-probability of -1005 is representable
    even though its probability underflows to 0.

    Parameters
    ----------
    x : array_like or device array
        Input values (real floats, integers or bools). Never modified, unless passed as ``out``.
        A GPU array (CuPy, Numba device array, torch CUDA tensor, anything with
        ``__cuda_array_interface__``) runs on the GPU and gives the same kind of array; every
        other array argument must then be a device array too.
    axis : int, tuple of int or None, optional
        The axis or axes the softmax normalises over (default: the last). None means all axes.
    dtype : dtype, optional
        Computation and result dtype: float16, bfloat16 (not on the GPU), float32 or float64. The
        default is the input's floating dtype, or float64 for integer and bool inputs. float16
        and bfloat16 are accumulated in float32.
    out : ndarray, optional
        Array of the input's shape and the result dtype to write into. ``out=x`` (exactly the
        same array) computes in place; any other overlap with the inputs is an error.
    where : array_like of bool, optional
        Elements to include, broadcast to ``x``. Excluded elements get -inf; a fully excluded
        group gives -inf everywhere, never NaN.

    Returns
    -------
    ndarray, scalar or device array
        The log-probabilities, shaped like ``x`` (a NumPy scalar for a 0-d host input, a 0-d
        device array for a 0-d device input).

    Raises
    ------
    TypeError
        For complex, object, string or datetime input, a non-float ``dtype``, a non-bool
        ``where``, an ``out`` of the wrong type or dtype, or host and device arrays mixed.
    ValueError
        For an ``out`` of the wrong shape, read-only or overlapping the input, or a ``where``
        that does not broadcast.
    numpy.exceptions.AxisError
        For an axis out of range or named twice.
    RuntimeError, ImportError
        For a device array when no GPU is available or numba-cuda is not installed.

    Notes
    -----
    A group containing NaN or +inf, or whose included elements are all -inf, gives NaN at every
    included position; -inf entries of an otherwise finite group give -inf. A tuple of axes that
    are not adjacent, or strides that cannot be merged, may cost one copy of the input.

    Examples
    --------
    >>> import numpy as np, lsm
    >>> x = np.array([-999., 1., 2., 5., 6.])
    >>> lsm.log_softmax(x).round(4).tolist()
    [-1005.3314, -5.3314, -4.3314, -1.3314, -0.3314]
    >>> with np.errstate(divide="ignore"):  # softmax underflows to 0 there
    ...     bool(np.isinf(np.log(lsm.softmax(x))[0]))
    True
    """
    pipeline = pipeline_for("log_softmax", x=x, out=out, where=where)
    return pipeline.softmax("log_softmax", x, axis, dtype, out, where, log=True)


@overload
def softmax(
    x: HostScalar,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: None = None,
    where: ArrayInput | None = None,
) -> Floating: ...
@overload
def softmax(
    x: HostSequence,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> FloatArray: ...
@overload
def softmax(
    x: Array,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: Array | None = None,
    where: ArrayInput | None = None,
) -> Array: ...
@overload
def softmax(
    x: ArrayLike,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> HostResult: ...
def softmax(
    x: ArrayInput,
    axis: Axis = -1,
    *,
    dtype: DTypeLike | None = None,
    out: ArrayInput | None = None,
    where: ArrayInput | None = None,
) -> Any:
    r"""Softmax along ``axis``: probabilities that sum to one.

    .. math::

        \operatorname{softmax}(x)_j = \frac{e^{x_j - m}}{\sum_k e^{x_k - m}},
        \qquad m = \max_k x_k

    Shifting by the maximum keeps every exponential at most 1, so nothing overflows.

    Parameters
    ----------
    x : array_like
        Input values (real floats, integers or bools). Never modified, unless passed as ``out``.
    axis : int, tuple of int or None, optional
        The axis or axes the softmax normalises over (default: the last). None means all axes.
    dtype : dtype, optional
        Computation and result dtype: float16, bfloat16, float32 or float64 (float16 and
        bfloat16 accumulate in float32). Default: the input's float dtype, float64 for integers.
    out : ndarray, optional
        Array of the input's shape and the result dtype to write into; ``out=x`` works in place.
    where : array_like of bool, optional
        Elements to include, broadcast to ``x``. Excluded elements get probability 0; a fully
        excluded group is all zeros, never NaN.

    Returns
    -------
    ndarray or scalar
        The probabilities, shaped like ``x`` (a NumPy scalar for a 0-d input).

    Raises
    ------
    TypeError, ValueError, numpy.exceptions.AxisError, RuntimeError, ImportError
        As for :func:`log_softmax`.

    Notes
    -----
    A group containing NaN or +inf, or whose included elements are all -inf, is NaN at every
    included position. Tiny probabilities underflow to 0: use :func:`log_softmax` when their
    logarithms matter.

    Examples
    --------
    >>> import numpy as np, lsm
    >>> lsm.softmax(np.array([0., np.log(3.)]))
    array([0.25, 0.75])
    """
    pipeline = pipeline_for("softmax", x=x, out=out, where=where)
    return pipeline.softmax("softmax", x, axis, dtype, out, where, log=False)


@overload
def logsumexp(
    x: HostScalar,
    axis: Axis = None,
    *,
    keepdims: bool = False,
    b: ArrayInput | None = None,
    return_sign: Literal[False] = False,
    dtype: DTypeLike | None = None,
    out: None = None,
    where: ArrayInput | None = None,
) -> Floating: ...
@overload
def logsumexp(
    x: HostScalar,
    axis: Axis = None,
    *,
    keepdims: bool = False,
    b: ArrayInput | None = None,
    return_sign: Literal[True],
    dtype: DTypeLike | None = None,
    out: None = None,
    where: ArrayInput | None = None,
) -> tuple[Floating, Floating]: ...
@overload
def logsumexp(
    x: Array,
    axis: Axis = None,
    *,
    keepdims: bool = False,
    b: ArrayInput | None = None,
    return_sign: Literal[False] = False,
    dtype: DTypeLike | None = None,
    out: Array | None = None,
    where: ArrayInput | None = None,
) -> Array: ...
@overload
def logsumexp(
    x: Array,
    axis: Axis = None,
    *,
    keepdims: bool = False,
    b: ArrayInput | None = None,
    return_sign: Literal[True],
    dtype: DTypeLike | None = None,
    out: Array | None = None,
    where: ArrayInput | None = None,
) -> tuple[Array, Array]: ...
@overload
def logsumexp(
    x: ArrayLike,
    axis: Axis = None,
    *,
    keepdims: bool = False,
    b: ArrayInput | None = None,
    return_sign: Literal[False] = False,
    dtype: DTypeLike | None = None,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> HostResult: ...
@overload
def logsumexp(
    x: ArrayLike,
    axis: Axis = None,
    *,
    keepdims: bool = False,
    b: ArrayInput | None = None,
    return_sign: Literal[True],
    dtype: DTypeLike | None = None,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> tuple[HostResult, HostResult]: ...
@overload
def logsumexp(
    x: Array,
    axis: Axis = None,
    *,
    keepdims: bool = False,
    b: ArrayInput | None = None,
    return_sign: bool = False,
    dtype: DTypeLike | None = None,
    out: Array | None = None,
    where: ArrayInput | None = None,
) -> Array | tuple[Array, Array]: ...
@overload
def logsumexp(
    x: ArrayLike,
    axis: Axis = None,
    *,
    keepdims: bool = False,
    b: ArrayInput | None = None,
    return_sign: bool = False,
    dtype: DTypeLike | None = None,
    out: NDArray[Any] | None = None,
    where: ArrayInput | None = None,
) -> HostResult | tuple[HostResult, HostResult]: ...
def logsumexp(
    x: ArrayInput,
    axis: Axis = None,
    *,
    keepdims: bool = False,
    b: ArrayInput | None = None,
    return_sign: bool = False,
    dtype: DTypeLike | None = None,
    out: ArrayInput | None = None,
    where: ArrayInput | None = None,
) -> Any:
    r"""Logarithm of the sum of exponentials, :math:`\log \sum_j b_j e^{x_j}`, along ``axis``.

    .. math::

        \operatorname{logsumexp}(x) = m + \log |b_{k^*}|
            + \log1p \Bigl(\frac{1}{b_{k^*}} \sum_{j \ne k^*} b_j e^{x_j - m}\Bigr),
        \qquad m = x_{k^*} = \max_j x_j

    Leaving the largest term out of the sum and adding it back through ``log1p`` keeps full
    relative accuracy when one term dominates: ``logsumexp([0, -40])`` is ``4.248e-18``, not 0.

    Parameters
    ----------
    x : array_like
        Input values (real floats, integers or bools). Never modified.
    axis : int, tuple of int or None, optional
        Axes to reduce (default: all).
    keepdims : bool, optional
        Keep the reduced axes as size-1 dimensions.
    b : array_like, optional
        Weights :math:`b_j`, broadcast to ``x`` (scipy.special.logsumexp semantics). Elements
        with ``b == 0`` are ignored even where ``x`` is inf or NaN. A negative total gives NaN
        unless ``return_sign`` is set.
    return_sign : bool, optional
        Also return the sign of the sum, so negative sums have a result: ``(log|S|, sign(S))``.
    dtype : dtype, optional
        Computation and result dtype (float16, bfloat16, float32 or float64). Default: the
        input's float dtype, float64 for integers and bools. ``b`` is converted to it.
    out : ndarray, optional
        Array of the result's shape and dtype to write the (log-magnitude) result into.
    where : array_like of bool, optional
        Elements to include, broadcast to ``x`` (jax.scipy.special.logsumexp semantics). A fully
        excluded group gives -inf.

    Returns
    -------
    ndarray or scalar
        The reduction (a NumPy scalar when 0-d and ``out`` is not given).
    sign : ndarray or scalar
        Only with ``return_sign``: +1, -1, 0 for an empty or zero sum, NaN for NaN results.

    Raises
    ------
    TypeError, ValueError, numpy.exceptions.AxisError, RuntimeError, ImportError
        As for :func:`log_softmax`; also for a ``b`` that does not broadcast.

    Notes
    -----
    NaN anywhere in a group gives NaN; +inf (without NaN) gives +inf; an empty group or one of
    only -inf gives -inf (sign 0). With weights, +inf entries whose weights cancel give NaN.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham and N. J. Higham, "Accurately computing the log-sum-exp
       and softmax functions", IMA Journal of Numerical Analysis 41 (2021).

    Examples
    --------
    >>> import numpy as np, lsm
    >>> float(lsm.logsumexp([0., -40.]))
    4.248354255291589e-18
    >>> lsm.logsumexp([[0., 0.], [1., 1.]], axis=1)
    array([0.69314718, 1.69314718])
    >>> value, sign = lsm.logsumexp([1., 2.], b=[1., -1.], return_sign=True)
    >>> round(float(value), 6), float(sign)
    (1.541325, -1.0)
    """
    pipeline = pipeline_for("logsumexp", x=x, out=out, where=where, b=b)
    return pipeline.logsumexp(x, axis, keepdims, b, return_sign, dtype, out, where)
