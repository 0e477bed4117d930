"""Losses over the class axis: cross_entropy (with its fused gradient) and nll_loss."""

from typing import Any, Literal, SupportsIndex, overload

from numpy.typing import ArrayLike, NDArray

from ._dispatch import pipeline_for
from ._typing import Array, ArrayInput, ClassAxis, FloatArray, Floating, HostResult, Reduction

# The overloads say which kind of array each call returns (see ``lsm._typing``): that of the
# logits; on the host a NumPy scalar for the 'mean' and 'sum' reductions.


@overload
def cross_entropy(
    logits: Array,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: Literal[False] = False,
    grad_out: None = None,
) -> Array: ...
@overload
def cross_entropy(
    logits: Array,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: Literal[True],
    grad_out: Array | None = None,
) -> tuple[Array, Array]: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Literal["mean", "sum"] = "mean",
    label_smoothing: float = 0.0,
    return_grad: Literal[False] = False,
    grad_out: None = None,
) -> Floating: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Literal["mean", "sum"] = "mean",
    label_smoothing: float = 0.0,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = None,
) -> tuple[Floating, FloatArray]: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: Literal[False] = False,
    grad_out: None = None,
) -> HostResult: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = None,
) -> tuple[HostResult, FloatArray]: ...
@overload
def cross_entropy(
    logits: Array,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: bool = False,
    grad_out: Array | None = None,
) -> Array | tuple[Array, Array]: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: bool = False,
    grad_out: NDArray[Any] | None = None,
) -> HostResult | tuple[HostResult, FloatArray]: ...
def cross_entropy(
    logits: ArrayInput,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: bool = False,
    grad_out: ArrayInput | None = None,
) -> Any:
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
        reduction, ``label_smoothing`` outside [0, 1], ``ignore_index`` with probability targets
        or outside the 64-bit integers, ``grad_out`` without ``return_grad``, a bad
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
    pipeline = pipeline_for("cross_entropy", logits=logits, target=target, weight=weight, grad_out=grad_out)
    options = ignore_index, reduction, label_smoothing, return_grad, grad_out
    return pipeline.cross_entropy(logits, target, axis, weight, *options)


@overload
def nll_loss(
    logp: Array,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
) -> Array: ...
@overload
def nll_loss(
    logp: ArrayLike,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Literal["mean", "sum"] = "mean",
) -> Floating: ...
@overload
def nll_loss(
    logp: ArrayLike,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
) -> HostResult: ...
def nll_loss(
    logp: ArrayInput,
    target: ArrayInput,
    axis: ClassAxis = -1,
    *,
    weight: ArrayInput | None = None,
    ignore_index: SupportsIndex = -100,
    reduction: Reduction = "mean",
) -> Any:
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
    pipeline = pipeline_for("nll_loss", logp=logp, target=target, weight=weight)
    return pipeline.nll_loss(logp, target, axis, weight, ignore_index, reduction)
