"""Turn the arguments of a public call into a small plan the kernels can run.

The plan holds the input as the canonical strided view ``(outer, n, inner)`` whose middle axis
combines the reduced axes: ``inner == 1`` is the row case, ``inner > 1`` the column case. A
single axis, or a run of adjacent axes, is always viewed without copying when the strides allow
it; separated axes are first moved behind the kept ones (``perm``), which may copy once.

All validation lives here, so each error names the argument that caused it.
"""

import math
import operator
from dataclasses import dataclass

import numpy as np

# Result dtypes the kernels produce, and the element type each one travels as inside a kernel
# (Numba's CPU target has no 16-bit floats: see lsm/cpu/_scalar.py). bfloat16 comes from
# ml_dtypes, which is imported only when an array needs it, so it is recognised by name.
_STORAGE = {
    np.dtype(np.float64): np.dtype(np.float64),
    np.dtype(np.float32): np.dtype(np.float32),
    np.dtype(np.float16): np.dtype(np.uint16),
}
_BFLOAT16_STORAGE = np.dtype(np.int16)
_SUPPORTED = "float16, bfloat16, float32 or float64"


def _is_result_dtype(dtype):
    return dtype in _STORAGE or dtype.name == "bfloat16"


@dataclass(slots=True)
class Plan:
    """What a kernel call needs, in canonical form.

    Attributes
    ----------
    x : ndarray
        The input as a native-order ``(outer, n, inner)`` view in ``dtype`` (a copy only where a
        conversion or an unviewable axis combination demands one), in its storage type.
    where, b : ndarray or None
        ``where`` (bool) and ``b`` (accumulation float type) broadcast to the input and viewed the
        same way.
    dtype : numpy.dtype
        The result dtype.
    shape : tuple of int
        The shape of the (possibly 0-d) input the caller passed.
    axes : tuple of int
        The reduced axes, sorted (of the input seen as 1-d when it is 0-d).
    perm : tuple of int or None
        The transpose applied before the reshape to ``(outer, n, inner)``.
    """

    x: np.ndarray
    where: np.ndarray | None
    b: np.ndarray | None
    dtype: np.dtype
    shape: tuple
    axes: tuple
    perm: tuple | None

    @property
    def work_shape(self):
        """The input shape the kernels see (0-d inputs are treated as one element)."""
        return self.shape if self.shape else (1,)

    @property
    def kept_shape(self):
        """The shape of a reduction's result without ``keepdims``."""
        return tuple(size for axis, size in enumerate(self.work_shape) if axis not in self.axes)

    def storage_view(self, array):
        """View an output of the input's shape as the kernels see the input, ``(outer, n, inner)``,
        or None when its strides do not allow a view."""
        return view3(array if array.ndim else array.reshape(1), self.perm, self.x.shape)

    def reduced_view(self, array):
        """View a reduction's output (with or without keepdims) as the kernels' ``(outer, inner)``,
        or None when its strides do not allow a view."""
        outer, _, inner = self.x.shape
        return _reshape_or_none(array, (outer, inner))


def storage_dtype(dtype):
    """The element type arrays of result dtype ``dtype`` travel as inside the kernels."""
    return _STORAGE.get(dtype, _BFLOAT16_STORAGE)


def as_storage(array, dtype):
    """``array`` (of result dtype ``dtype``) viewed as the kernels' storage type."""
    storage = storage_dtype(dtype)
    return array if storage is dtype else array.view(storage)


def bfloat16_dtype():
    """The ml_dtypes bfloat16 dtype (imported only when a caller asks for bfloat16)."""
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def accumulation_dtype(dtype):
    """The float type the kernels accumulate a result of dtype ``dtype`` in: float64 for float64,
    float32 for every narrower float (float32, float16, bfloat16)."""
    return np.dtype(np.float64 if dtype == np.float64 else np.float32)


def result_dtype(x_dtype, dtype, func):
    """The result (and computation) dtype of ``func`` for an input of dtype ``x_dtype``.

    Integers and booleans become float64 unless ``dtype`` is given; float16 and bfloat16 keep
    their type (the kernels accumulate them in float32).
    """
    if dtype is not None:
        try:
            wanted = bfloat16_dtype() if str(dtype) == "bfloat16" else np.dtype(dtype)
        except TypeError as error:
            raise TypeError(f"{func}: dtype={dtype!r} is not a dtype") from error
        if not _is_result_dtype(wanted):
            raise TypeError(f"{func}: dtype must be {_SUPPORTED}, got {wanted.name}")
        return wanted
    if x_dtype in _STORAGE or x_dtype.name == "bfloat16":
        return x_dtype
    if x_dtype.kind == "f" and x_dtype.newbyteorder("=") in _STORAGE:  # byte-swapped input
        return x_dtype.newbyteorder("=")
    if x_dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(
        f"{func}: unsupported input dtype {x_dtype.name} (expected a real floating, integer or bool array)"
    )


def as_input(x, func, name="x"):
    """``np.asarray(x)``, rejecting dtypes lsm cannot compute with, with a message naming ``name``."""
    try:
        array = np.asarray(x)
    except Exception as error:
        raise TypeError(f"{func}: argument {name!r} cannot be converted to an array: {error}") from error
    check_input_dtype(func, array.dtype, name)
    return array


def check_input_dtype(func, dtype, name):
    """Raise the TypeError for an argument ``name`` whose dtype lsm cannot compute with (only
    real floats, integers and bools are accepted)."""
    if dtype.kind not in "biuf" and dtype.name != "bfloat16":
        raise TypeError(f"{func}: unsupported dtype {dtype.name} for argument {name!r}")


def normalize_axes(axis, ndim):
    """Sorted tuple of the axes ``axis`` names (None: all) for an array of ``ndim`` dimensions.

    A 0-d array is treated as having one axis, as torch does, so ``axis=-1`` works on it.

    Raises
    ------
    numpy.exceptions.AxisError
        For an axis out of range or named twice.
    TypeError
        For an axis that is not an integer.
    """
    ndim = max(ndim, 1)
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, fast
        return (axis % ndim,)
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    normalized = []
    for item in axes:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"axis must be an integer or a tuple of integers, got {item!r}")
        try:
            index = operator.index(item)
        except TypeError as error:
            raise TypeError(f"axis must be an integer or a tuple of integers, got {item!r}") from error
        if not -ndim <= index < ndim:
            raise np.exceptions.AxisError(index, ndim)
        normalized.append(index % ndim)
    if len(set(normalized)) != len(normalized):
        raise np.exceptions.AxisError(f"duplicate value in 'axis': {axis!r}")
    return tuple(sorted(normalized))


def canonical_layout(shape, axes):
    """``(perm, (outer, n, inner))`` for reducing ``axes`` of an array of ``shape``.

    Adjacent axes keep the array's order (``perm`` is None) and split it into the sizes before,
    of and after the run; separated axes are moved behind the kept ones and ``inner`` is 1.
    """
    if not axes or axes[-1] - axes[0] == len(axes) - 1:  # sorted and distinct: adjacent
        first, last = (axes[0], axes[-1] + 1) if axes else (len(shape), len(shape))
        return None, (math.prod(shape[:first]), math.prod(shape[first:last]), math.prod(shape[last:]))
    kept = tuple(axis for axis in range(len(shape)) if axis not in axes)
    return kept + axes, (math.prod(shape[axis] for axis in kept), math.prod(shape[axis] for axis in axes), 1)


def _reshape_or_none(array, shape):
    try:
        return array.reshape(shape, copy=False)
    except ValueError:
        return None


def view3(array, perm, shape3):
    """``array`` (transposed by ``perm``) as ``shape3`` without copying, or None if impossible."""
    return _reshape_or_none(array if perm is None else array.transpose(perm), shape3)


def _canonical_input(array, perm, shape3):
    view = view3(array, perm, shape3)
    if view is None:  # strides that cannot merge: one contiguous copy
        view = np.ascontiguousarray(array if perm is None else array.transpose(perm)).reshape(shape3)
    return view


def broadcast_error(func, name, operand_shape, shape):
    """The ValueError for an operand ``name`` of ``operand_shape`` that does not broadcast to the
    input shape ``shape``."""
    return ValueError(
        f"{func}: {name!r} with shape {operand_shape} cannot be broadcast to the input shape {shape}"
    )


def _broadcast(operand, shape, func, name):
    try:
        return np.broadcast_to(operand, shape)
    except ValueError as error:
        raise broadcast_error(func, name, operand.shape, shape) from error


def make_plan(func, x, axis, dtype, where=None, b=None):
    """Validate the arguments of ``func`` and build its :class:`Plan`.

    Parameters
    ----------
    func : str
        The public function's name, used in error messages.
    x : array_like
        The input; never modified.
    axis, dtype, where, b
        As in the public functions.
    """
    x = as_input(x, func)
    out_dtype = result_dtype(x.dtype, dtype, func)
    axes = normalize_axes(axis, x.ndim)
    work_shape = x.shape if x.ndim else (1,)
    perm, shape3 = canonical_layout(work_shape, axes)
    if x.dtype != out_dtype:  # also turns a byte-swapped input into native order
        x = x.astype(out_dtype)
    x3 = as_storage(_canonical_input(x if x.ndim else x.reshape(1), perm, shape3), out_dtype)

    where3 = None
    if where is not None:
        where = np.asarray(where)
        if where.dtype != np.bool_:
            raise TypeError(f"{func}: 'where' must be a boolean array, got dtype {where.dtype.name}")
        where3 = _canonical_input(_broadcast(where, x.shape, func, "where").reshape(work_shape), perm, shape3)

    b3 = None
    if b is not None:
        b = as_input(b, func, "b")
        b = _broadcast(b.astype(accumulation_dtype(out_dtype), copy=False), x.shape, func, "b")
        b3 = _canonical_input(b.reshape(work_shape), perm, shape3)

    return Plan(x=x3, where=where3, b=b3, dtype=out_dtype, shape=x.shape, axes=axes, perm=perm)


def check_out(func, out, shape, dtype, inputs, alias=None):
    """Validate a user-supplied ``out`` array for a result of ``shape`` and ``dtype``.

    ``out`` may be exactly ``alias`` (same memory, shape and strides: an in-place call) but must
    not otherwise share memory with any of ``inputs``.
    """
    if not isinstance(out, np.ndarray):
        raise TypeError(
            f"{func}: 'out' must be a numpy.ndarray, got {type(out).__module__}.{type(out).__qualname__}"
        )
    if out.shape != tuple(shape):
        raise ValueError(f"{func}: 'out' has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{func}: 'out' has dtype {out.dtype}, expected {dtype} (native byte order)")
    if not out.flags.writeable:
        raise ValueError(f"{func}: 'out' is read-only")
    if alias is not None and _same_memory(out, alias):
        inputs = [operand for operand in inputs if operand is not alias]
    for operand in inputs:
        if isinstance(operand, np.ndarray) and _overlaps(out, operand):
            raise ValueError(
                f"{func}: 'out' overlaps an input; pass a separate array (or exactly the input, in place)"
            )


def _same_memory(a, b):
    return (
        isinstance(b, np.ndarray)
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
    )


def _overlaps(a, b):
    if not np.may_share_memory(a, b):
        return False
    try:
        return np.shares_memory(a, b, max_work=10_000)
    except np.exceptions.TooHardError:  # cannot prove them disjoint: refuse
        return True


def canonical_operand(plan, array, func, name):
    """Another array of the input's shape in ``plan``'s canonical ``(outer, n, inner)`` layout.

    ``array`` is converted to the plan's dtype (a copy only when its dtype differs, or when its
    strides cannot be viewed that way) and returned in the kernels' storage type. Used for the
    operands that travel beside the input: the upstream gradient of a backward call, the
    probability targets of a loss.
    """
    array = as_input(array, func, name)
    if array.shape != plan.shape:
        raise ValueError(
            f"{func}: {name!r} has shape {array.shape}, expected {plan.shape} (the shape of the input)"
        )
    if array.dtype != plan.dtype:
        array = array.astype(plan.dtype)
    work = array if array.ndim else array.reshape(1)
    return as_storage(_canonical_input(work, plan.perm, plan.x.shape), plan.dtype)
