"""lsm's kernels under torch's autograd: ``log_softmax``, ``softmax``, ``logsumexp`` and
``cross_entropy`` as :class:`torch.autograd.Function` s, and :class:`CrossEntropyLoss`.

The plain functions (``lsm.log_softmax`` and friends) take torch tensors that do not require
grad and return tensors, but build no autograd graph. The functions here do: the forward pass
runs lsm's public function on the detached tensor, the backward pass lsm's gradient
(:func:`lsm.log_softmax_backward`, :func:`lsm.softmax_backward`), and ``cross_entropy``
computes its gradient in the forward pass (lsm's fused ``return_grad=True``), so its backward
only scales that gradient by the upstream one: no second pass over the logits.

A CPU tensor is read and written in place through a NumPy view (``lsm._devices.TorchHost``); a
CUDA tensor goes to lsm's GPU backend through its ``__cuda_array_interface__``, which allocates
the results with torch's allocator on the tensor's device and runs on torch's current stream.
Results and gradients are torch tensors on the input's device, in its dtype (or the ``dtype``
asked for).

The gradients are not themselves differentiable: a backward pass with ``create_graph=True``
works, but differentiating its result again (a double backward) raises a ``RuntimeError`` naming
the function.

Importing ``lsm`` never imports this module, nor torch.
"""

import functools

import torch

from ._api import log_softmax as _log_softmax
from ._api import logsumexp as _logsumexp
from ._api import softmax as _softmax
from ._gradients import log_softmax_backward, softmax_backward
from ._losses import cross_entropy as _cross_entropy

__all__ = ["CrossEntropyLoss", "cross_entropy", "log_softmax", "logsumexp", "softmax"]


def _tensor(func, name, value):
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"lsm.torch.{func}: argument {name!r} must be a torch tensor, got {type(value).__name__}"
        )
    return value


def _dtype_name(dtype):
    """A torch dtype as the name lsm's ``dtype=`` accepts (``torch.float32`` -> ``'float32'``)."""
    return None if dtype is None else str(dtype).removeprefix("torch.")


def _reduced_shape(shape, dim):
    """``shape`` with the axes of ``dim`` (an int, a tuple, or None for all) set to 1."""
    ndim = len(shape)
    dims = range(ndim) if dim is None else (dim,) if isinstance(dim, int) else dim
    reduced = {d % ndim for d in dims} if ndim else set()
    return tuple(1 if axis in reduced else size for axis, size in enumerate(shape))


def _empty(like, dtype=None):
    """An uninitialised tensor of ``like``'s shape and device (and its dtype, unless given).

    Every result lsm writes here comes from torch's allocator, as the other tensors of a training
    step do, and goes back to it: large blocks that torch frees are then taken again page by
    page. lsm's own results on tensors are NumPy allocations, which ask the kernel for huge pages
    and may wait for it to compact memory that torch has just fragmented. Measured on a 2-core
    VM, a (4096, 32000) float32 loss step on logits that torch has just computed: 0.7 s this
    way, 1.1 s (slower than torch's own 1.0 s) with NumPy's memory.
    """
    return torch.empty(like.shape, dtype=dtype or like.dtype, device=like.device)


class _NotTwice(torch.autograd.Function):
    """The identity on a gradient lsm computed, whose own backward raises: lsm's gradients are not
    differentiable."""

    @staticmethod
    def forward(ctx, gradient, func):
        ctx.func = func
        return gradient.clone()

    @staticmethod
    def backward(ctx, _):
        raise RuntimeError(
            f"lsm.torch.{ctx.func}: lsm's gradient is not differentiable, so a double backward through "
            f"it is not supported; use torch's own {ctx.func} where second derivatives are needed"
        )


def _first_order(backward):
    """Decorate a ``backward`` whose forward set ``ctx.func``: it runs without grad, and under
    ``create_graph=True`` (grad mode on in the backward pass) each gradient it returns gets a node
    that raises if differentiated.

    ``torch.autograd.function.once_differentiable`` does this only when an upstream gradient
    requires grad: a gradient that depends on the input alone would come back as a constant, and
    differentiating it would fail with torch's message about a tensor without a grad_fn."""

    @functools.wraps(backward)
    def run(ctx, *grads):
        with torch.no_grad():
            results = backward(ctx, *grads)
        if not torch.is_grad_enabled():
            return results
        return tuple(
            None if result is None else _NotTwice.apply(result.detach().requires_grad_(), ctx.func)
            for result in results
        )

    return run


class _Softmax(torch.autograd.Function):
    """log_softmax or softmax: the output is saved, and lsm's backward takes it with the upstream
    gradient (the input is not needed)."""

    @staticmethod
    def forward(ctx, x, dim, dtype, log):
        forward = _log_softmax if log else _softmax
        floating = x.dtype if x.is_floating_point() else torch.float64  # lsm's rule for integers
        y = forward(x.detach(), axis=dim, dtype=_dtype_name(dtype), out=_empty(x, dtype or floating))
        ctx.func, ctx.dim, ctx.log, ctx.input_dtype = "log_softmax" if log else "softmax", dim, log, x.dtype
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @_first_order
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        backward = log_softmax_backward if ctx.log else softmax_backward
        dx = backward(grad.detach(), y.detach(), axis=ctx.dim, out=_empty(y))
        return dx.to(ctx.input_dtype), None, None, None


def log_softmax(input, dim=-1, dtype=None):
    r"""Differentiable :func:`lsm.log_softmax` of a torch tensor along ``dim``.

    .. math::

        y_j = x_j - \log \sum_k e^{x_k}, \qquad
        \frac{\partial L}{\partial x_j} = g_j - e^{y_j} \sum_k g_k

    with :math:`g = \partial L / \partial y`; the backward pass is :func:`lsm.log_softmax_backward`
    on the saved output.

    Parameters
    ----------
    input : torch.Tensor
        CPU or CUDA tensor of real floats (integers and bools give float64, as in lsm).
    dim : int, tuple of int or None, optional
        The axis or axes to normalise over (default: the last; None: all). Unlike
        ``torch.nn.functional.log_softmax``, a missing ``dim`` never means an implicit axis.
    dtype : torch.dtype, optional
        Computation and result dtype (float16, bfloat16, float32, float64); the gradient is cast
        back to the input's dtype.

    Returns
    -------
    torch.Tensor
        The log-probabilities, on the input's device, shaped like it.

    Raises
    ------
    TypeError
        If ``input`` is not a tensor, and for the dtypes :func:`lsm.log_softmax` refuses.

    Examples
    --------
    >>> import torch, lsm.torch
    >>> x = torch.tensor([[-999.0, 1.0, 2.0]], requires_grad=True)
    >>> y = lsm.torch.log_softmax(x, dim=1)
    >>> y[0, 0].backward()
    >>> x.grad
    tensor([[ 1.0000, -0.2689, -0.7311]])
    """
    return _Softmax.apply(_tensor("log_softmax", "input", input), dim, dtype, True)


def softmax(input, dim=-1, dtype=None):
    r"""Differentiable :func:`lsm.softmax` of a torch tensor along ``dim``.

    .. math::

        y_j = \frac{e^{x_j}}{\sum_k e^{x_k}}, \qquad
        \frac{\partial L}{\partial x_j} = y_j \Bigl(g_j - \sum_k g_k y_k\Bigr)

    with :math:`g = \partial L / \partial y`; the backward pass is :func:`lsm.softmax_backward` on
    the saved output.

    Parameters
    ----------
    input : torch.Tensor
        CPU or CUDA tensor.
    dim : int, tuple of int or None, optional
        As for :func:`log_softmax`.
    dtype : torch.dtype, optional
        As for :func:`log_softmax`.

    Returns
    -------
    torch.Tensor
        The probabilities, on the input's device, shaped like it.

    Raises
    ------
    TypeError
        As for :func:`log_softmax`.

    Examples
    --------
    >>> import math, torch, lsm.torch
    >>> lsm.torch.softmax(torch.tensor([0.0, math.log(3.0)], dtype=torch.float64), dim=0)
    tensor([0.2500, 0.7500], dtype=torch.float64)
    """
    return _Softmax.apply(_tensor("softmax", "input", input), dim, dtype, False)


class _LogSumExp(torch.autograd.Function):
    """logsumexp: the gradient is the softmax of the saved input, times the upstream gradient."""

    @staticmethod
    def forward(ctx, x, dim, keepdim):
        ctx.func, ctx.dim = "logsumexp", dim
        ctx.save_for_backward(x)
        return _logsumexp(x.detach(), axis=dim, keepdims=keepdim)

    @staticmethod
    @_first_order
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        # lsm's softmax (the group's maximum subtracted before exp), not exp(x - result): the
        # rounding of a large result would otherwise scale every probability.
        probabilities = _softmax(x.detach(), axis=ctx.dim, out=_empty(x))
        return probabilities.mul_(grad.reshape(_reduced_shape(x.shape, ctx.dim))), None, None


def logsumexp(input, dim=None, keepdim=False):
    r"""Differentiable :func:`lsm.logsumexp` of a torch tensor over ``dim``.

    .. math::

        r = \log \sum_j e^{x_j}, \qquad
        \frac{\partial L}{\partial x_j} = g \, \operatorname{softmax}(x)_j

    with :math:`g = \partial L / \partial r`; the backward pass is :func:`lsm.softmax` of the saved
    input, scaled by :math:`g`.

    Parameters
    ----------
    input : torch.Tensor
        CPU or CUDA tensor.
    dim : int, tuple of int or None, optional
        The axes to reduce (default: all, as lsm; torch's ``logsumexp`` has no default).
    keepdim : bool, optional
        Keep the reduced axes as size-1 dimensions.

    Returns
    -------
    torch.Tensor
        The reduction, on the input's device (0-d when every axis is reduced).

    Raises
    ------
    TypeError
        As for :func:`log_softmax`.

    Notes
    -----
    A group of only -inf gives -inf and a NaN gradient, a group with +inf gives +inf and a NaN
    gradient, as torch gives.

    Examples
    --------
    >>> import torch, lsm.torch
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    >>> lsm.torch.logsumexp(x, dim=1).sum().backward()
    >>> x.grad
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000]], dtype=torch.float64)
    """
    return _LogSumExp.apply(_tensor("logsumexp", "input", input), dim, keepdim)


class _CrossEntropy(torch.autograd.Function):
    """cross_entropy: the gradient is computed with the loss and saved; the backward scales it."""

    @staticmethod
    def forward(ctx, logits, target, weight, ignore_index, reduction, label_smoothing, differentiate):
        axis = 1 if logits.dim() > 1 else 0  # torch's class axis: (N, C, d1, ...) or (C,)
        grad = _empty(logits) if differentiate else None
        result = _cross_entropy(
            logits.detach(),
            target.detach(),  # under torch.no_grad() a target or weight may still require grad
            axis,
            weight=None if weight is None else weight.detach(),
            # torch ignores ignore_index for probability targets; lsm refuses one that is set
            ignore_index=-100 if target.is_floating_point() else ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            return_grad=differentiate,
            grad_out=grad,
        )
        if not differentiate:
            return result
        loss, grad = result
        ctx.func, ctx.axis, ctx.per_item = "cross_entropy", axis, reduction == "none"
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @_first_order
    def backward(ctx, grad_loss):
        (grad,) = ctx.saved_tensors
        if ctx.per_item:  # grad holds each item's own gradient: scale each by its upstream value
            return grad * grad_loss.unsqueeze(ctx.axis), None, None, None, None, None, None
        # loss.backward() sends 1: the saved gradient is the answer. Returned as it is, autograd
        # releases its saved copy before accumulating (unless retain_graph, when it clones), so
        # x.grad takes over its memory instead of a copy. On the GPU, reading the value would
        # wait for the device: multiply there.
        if grad_loss.device.type == "cpu" and grad_loss.item() == 1.0:
            return grad, None, None, None, None, None, None
        return grad * grad_loss, None, None, None, None, None, None


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    r"""Differentiable :func:`lsm.cross_entropy` with the semantics of
    ``torch.nn.functional.cross_entropy``: the class axis is dimension 1 of ``(N, C, d1, ...)``
    logits (dimension 0 of ``(C,)`` logits).

    For one item with logits :math:`x`, target coefficients :math:`q` (the class-index or
    probability target with its class weights and label smoothing, as in
    :func:`lsm.cross_entropy`):

    .. math::

        \ell = -\sum_c q_c \log \operatorname{softmax}(x)_c, \qquad
        \frac{\partial \ell}{\partial x_c} = \operatorname{softmax}(x)_c \sum_k q_k - q_c

    The gradient is computed in the same pass as the loss and saved; the backward pass multiplies
    it by the upstream gradient (per item for ``reduction='none'``) and does not read the
    logits again.

    Parameters
    ----------
    input : torch.Tensor
        The logits, CPU or CUDA, ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``.
    target : torch.Tensor
        Integer class indices, shaped like ``input`` without the class axis, each in ``[0, C)``
        or equal to ``ignore_index``; or floating class probabilities shaped like ``input``.
    weight : torch.Tensor, optional
        Class weights, shape ``(C,)``, finite and non-negative (not differentiated).
    ignore_index : int, optional
        Class-index targets equal to it add no loss and no gradient (default -100); not used
        with probability targets, as in torch.
    reduction : {'mean', 'sum', 'none'}, optional
        As in torch: 'mean' divides by the total weight of the counted targets (class indices)
        or by the number of items (probabilities).
    label_smoothing : float, optional
        :math:`\varepsilon \in [0, 1]`, mixing the target with the uniform distribution.

    Returns
    -------
    torch.Tensor
        The loss in the input's dtype, on its device: 0-d for 'mean' and 'sum', per item for
        'none'.

    Raises
    ------
    TypeError
        For arguments that are not tensors, and as :func:`lsm.cross_entropy`.
    NotImplementedError
        For a ``weight`` or probability ``target`` that requires grad while grad mode is on:
        lsm differentiates with respect to the logits only.
    IndexError, ValueError
        As :func:`lsm.cross_entropy` (a target out of range, bad shapes or options).

    Notes
    -----
    Where torch and lsm differ (a zero probability target at a -inf logit: 0 here, NaN in
    torch), lsm's rules hold; see :func:`lsm.cross_entropy`.

    Examples
    --------
    >>> import torch, lsm.torch
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]], requires_grad=True)
    >>> loss = lsm.torch.cross_entropy(logits, torch.tensor([0, 2]))
    >>> loss.backward()
    >>> round(loss.item(), 5), [round(g, 4) for g in logits.grad[1].tolist()]
    (0.66996, [0.1667, 0.1667, -0.3333])
    """
    _tensor("cross_entropy", "input", input)
    _tensor("cross_entropy", "target", target)
    if weight is not None:
        _tensor("cross_entropy", "weight", weight)
    if torch.is_grad_enabled():
        for name, value in (("weight", weight), ("target", target)):
            if value is not None and value.requires_grad:
                raise NotImplementedError(
                    f"lsm.torch.cross_entropy: no gradient with respect to {name!r}; pass "
                    f"{name}.detach() (lsm differentiates the loss with respect to the logits only)"
                )
    # needs_input_grad is set under torch.no_grad() too: ask for the gradient only when autograd
    # will use it, as the fused gradient costs a write of the logits' size.
    differentiate = torch.is_grad_enabled() and input.requires_grad
    options = ignore_index, reduction, label_smoothing, differentiate
    return _CrossEntropy.apply(input, target, weight, *options)


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    r""":class:`torch.nn.CrossEntropyLoss` computed by :func:`cross_entropy` (lsm's fused loss
    and gradient).

    The constructor is torch's own, with its arguments (``weight``, ``ignore_index``,
    ``reduction``, ``label_smoothing``, and the deprecated ``size_average`` and ``reduce``, which
    torch turns into a ``reduction``); ``weight`` is a buffer of the module, so ``.to(device)``
    moves it. An instance is a ``torch.nn.CrossEntropyLoss`` and can replace one.

    Examples
    --------
    >>> import torch, lsm.torch
    >>> criterion = lsm.torch.CrossEntropyLoss(label_smoothing=0.1)
    >>> logits = torch.zeros(4, 3, requires_grad=True)
    >>> round(criterion(logits, torch.tensor([0, 1, 2, 0])).item(), 6)
    1.098612
    """

    def forward(self, input, target):
        """The loss of ``input`` (logits) against ``target``, as :func:`cross_entropy`."""
        return cross_entropy(
            input,
            target,
            self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )
