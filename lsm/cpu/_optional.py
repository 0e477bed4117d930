"""Optional kernel operands (``where`` mask, ``b`` weights, ``sign`` output) as compile-time choices.

Each helper is overloaded on its operand's type: when the caller passes ``None`` the overload
returns a constant (always kept, weight one, nothing stored), so the kernel compiled for that
signature carries no mask, weight or sign code at all.
"""

from numba import types
from numba.extending import overload

from ._scalar import to_acc


def included(where, b, o, j, i):
    """Whether element ``(o, j, i)`` takes part: ``where`` is True there and ``b`` is nonzero."""


def weight(b, like, o, j, i):
    """The weight ``b[o, j, i]`` in the accumulation type of ``like`` (one when ``b`` is None)."""


def put_sign(sign, o, i, value):
    """Store ``value`` in ``sign[o, i]`` unless ``sign`` is None."""


def _is_none(operand):
    return operand is None or isinstance(operand, types.NoneType)


@overload(included, inline="always")
def _included_overload(where, b, o, j, i):
    if _is_none(where) and _is_none(b):
        return lambda where, b, o, j, i: True
    if _is_none(b):
        return lambda where, b, o, j, i: where[o, j, i]
    if _is_none(where):
        return lambda where, b, o, j, i: b[o, j, i] != 0
    # "&" rather than "and": a short-circuit here trips a Numba IR scoping check
    return lambda where, b, o, j, i: where[o, j, i] & (b[o, j, i] != 0)


@overload(weight, inline="always")
def _weight_overload(b, like, o, j, i):
    if _is_none(b):
        return lambda b, like, o, j, i: to_acc(1.0, like)
    return lambda b, like, o, j, i: to_acc(b[o, j, i], like)


@overload(put_sign, inline="always")
def _put_sign_overload(sign, o, i, value):
    if _is_none(sign):
        return lambda sign, o, i, value: None

    def store_sign(sign, o, i, value):
        sign[o, i] = value

    return store_sign
