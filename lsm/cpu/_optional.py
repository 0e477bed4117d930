"""Optional kernel operands (``where`` mask, ``b`` weights, extra outputs) as compile-time choices.

Each helper is overloaded on its operand's type: when the caller passes ``None`` the overload
returns a constant (always kept, weight one, nothing stored), so the kernel compiled for that
signature carries no mask, weight or extra-output code at all. ``index`` is whatever indexes the arrays:
an integer for a 1-d row, a tuple such as ``(o, j, i)`` for the canonical 3-d view.
"""

from numba import types
from numba.extending import overload

from ._scalar import to_acc


def included(where, b, index):
    """Whether element ``index`` takes part: ``where`` is True there and ``b`` is nonzero."""


def weight(b, like, index):
    """The weight ``b[index]`` in the accumulation type of ``like`` (one when ``b`` is None)."""


def weight_if(b, like, index, condition):
    """``weight(b, like, index)`` where ``condition`` holds, else zero."""


def put(target, index, value):
    """Store ``value`` in ``target[index]`` unless ``target`` is None."""


def _is_none(operand):
    return operand is None or isinstance(operand, types.NoneType)


@overload(included, inline="always")
def _included_overload(where, b, index):
    if _is_none(where) and _is_none(b):
        return lambda where, b, index: True
    if _is_none(b):
        return lambda where, b, index: where[index]
    if _is_none(where):
        return lambda where, b, index: b[index] != 0
    # "&" rather than "and": a short-circuit here trips a Numba IR scoping check
    return lambda where, b, index: where[index] & (b[index] != 0)


@overload(weight, inline="always")
def _weight_overload(b, like, index):
    if _is_none(b):
        return lambda b, like, index: to_acc(1.0, like)
    return lambda b, like, index: to_acc(b[index], like)


@overload(weight_if, inline="always")
def _weight_if_overload(b, like, index, condition):
    if _is_none(b):
        # a conversion, not a conditional: LLVM vectorises sums of this form
        return lambda b, like, index, condition: to_acc(condition, like)
    # a conditional, not a product: an infinite weight times zero would be NaN
    return lambda b, like, index, condition: to_acc(b[index], like) if condition else to_acc(0.0, like)


@overload(put, inline="always")
def _put_overload(target, index, value):
    if _is_none(target):
        return lambda target, index, value: None

    def store(target, index, value):
        target[index] = value

    return store
