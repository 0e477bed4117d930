"""Every argument check of the public functions, and every error message, in one place.

The checks look at types, dtypes and shapes only, never at array memory, so every backend (CPU,
CUDA, Dask) calls the same functions and raises the same errors. Each message starts with the
public function's name and names the argument at fault.
"""

import functools
import numbers
import operator

import numpy as np

_SUPPORTED = "float16, bfloat16, float32 or float64"
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("mean", "sum", "none")
DEFAULT_IGNORE_INDEX = -100


def type_name(obj):
    """``module.QualifiedName`` of ``obj``'s type, for messages."""
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


# --- dtypes -----------------------------------------------------------------------------------


def bfloat16_dtype():
    """The ml_dtypes bfloat16 dtype (imported only when a caller asks for bfloat16)."""
    try:
        import ml_dtypes
    except ImportError as error:
        raise ImportError(
            "lsm: bfloat16 needs ml_dtypes; install the extra with pip install 'lsm-kernels[bfloat16]'"
        ) from error
    return np.dtype(ml_dtypes.bfloat16)


@functools.cache
def dtype_name(dtype):
    """``dtype.name``, remembered per dtype: NumPy works the name out in Python on every read
    (about 3 us, as long as a small call's kernel), and a call asks it of several operands."""
    return dtype.name


def _is_float(dtype):
    return dtype in _FLOATS or dtype_name(dtype) == "bfloat16"


def input_dtype(func, dtype, name="x"):
    """Raise the TypeError for an argument ``name`` whose dtype lsm cannot compute with (only
    real floats, integers and bools are accepted)."""
    if dtype.kind not in "biuf" and dtype_name(dtype) != "bfloat16":
        raise TypeError(f"{func}: unsupported dtype {dtype.name} for argument {name!r}")


def result_dtype(func, x_dtype, dtype=None):
    """The result (and computation) dtype of ``func`` for an input of dtype ``x_dtype``.

    Integers and booleans become float64 unless ``dtype`` is given; float16 and bfloat16 keep
    their type (the kernels accumulate them in float32); a byte-swapped float its native twin.
    """
    if dtype is not None:
        try:
            wanted = bfloat16_dtype() if str(dtype) == "bfloat16" else np.dtype(dtype)
        except TypeError as error:
            raise TypeError(f"{func}: dtype={dtype!r} is not a dtype") from error
        if not _is_float(wanted):
            raise TypeError(f"{func}: dtype must be {_SUPPORTED}, got {wanted.name}")
        return wanted
    if _is_float(x_dtype):
        return x_dtype
    if x_dtype.kind == "f" and x_dtype.newbyteorder("=") in _FLOATS:  # byte-swapped input
        return x_dtype.newbyteorder("=")
    if x_dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(
        f"{func}: unsupported input dtype {x_dtype.name} (expected a real floating, integer or bool array)"
    )


def backward_dtype(func, grad_dtype, y_dtype):
    """The computation dtype of a backward call: the promotion of the two inputs' float dtypes
    (integers count as float64)."""
    dtypes = [result_dtype(func, dtype) for dtype in (grad_dtype, y_dtype)]
    if dtypes[0] == dtypes[1]:
        return dtypes[0]
    try:
        return result_dtype(func, np.promote_types(*dtypes))
    except TypeError as error:  # bfloat16 against float16: no common type
        raise TypeError(
            f"{func}: 'grad' ({dtypes[0]}) and 'y' ({dtypes[1]}) have no common dtype; convert one"
        ) from error


def where_dtype(func, dtype):
    if dtype != np.bool_:
        raise TypeError(f"{func}: 'where' must be a boolean array, got dtype {dtype.name}")


def target_dtype(func, dtype):
    """Class indices (integers) or probabilities (floats): anything else is a TypeError."""
    if dtype.kind not in "iuf" and dtype_name(dtype) != "bfloat16":
        raise TypeError(
            f"{func}: 'target' must hold integer class indices or floating probabilities, "
            f"got dtype {dtype.name}"
        )


def index_target_dtype(func, dtype):
    """nll_loss takes class indices only."""
    if dtype.kind not in "iu":
        raise TypeError(f"{func}: 'target' must hold integer class indices, got dtype {dtype.name}")


def not_convertible(func, name, error):
    """The TypeError for an argument ``name`` that ``np.asarray`` refused."""
    return TypeError(f"{func}: argument {name!r} cannot be converted to an array: {error}")


def masked_array(func, name):
    return TypeError(
        f"{func}: {name!r} is a numpy.ma.MaskedArray (lsm would ignore its mask); "
        "pass the data and where=~mask instead"
    )


# --- axes -------------------------------------------------------------------------------------


def axes(axis, ndim):
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
    items = axis if isinstance(axis, tuple) else (axis,)
    normalized = []
    for item in items:
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


def class_axis(func, axis, ndim, name):
    """The class axis of a loss input ``name`` of ``ndim`` dimensions, as a sorted 1-tuple."""
    # a plain int first: the check against the numbers ABC takes several calls
    if type(axis) is not int and (
        isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral)
    ):
        raise TypeError(f"{func}: axis must be an integer (the class axis), got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{func}: {name!r} must have at least one dimension (the classes), got a 0-d array")
    return axes(int(axis), ndim)


# --- shapes -----------------------------------------------------------------------------------


def broadcast_error(func, name, operand_shape, shape):
    """The ValueError for an operand ``name`` of ``operand_shape`` that does not broadcast to the
    input shape ``shape``."""
    return ValueError(
        f"{func}: {name!r} with shape {operand_shape} cannot be broadcast to the input shape {shape}"
    )


def same_shape(func, name, shape, expected):
    """An operand that travels beside the input (an upstream gradient, probability targets)."""
    if tuple(shape) != tuple(expected):
        raise ValueError(
            f"{func}: {name!r} has shape {tuple(shape)}, expected {tuple(expected)} (the shape of the input)"
        )


def grad_and_y(func, grad_shape, y_shape):
    if tuple(grad_shape) != tuple(y_shape):
        raise ValueError(
            f"{func}: 'grad' has shape {tuple(grad_shape)} but 'y' has shape {tuple(y_shape)}; "
            "they must match"
        )


def index_target_shape(func, shape, kept_shape, axis):
    """Class-index targets have the input's shape without the class axis."""
    if tuple(shape) != tuple(kept_shape):
        raise ValueError(
            f"{func}: class-index 'target' must have shape {tuple(kept_shape)} (the input's shape without "
            f"axis {axis}), got {tuple(shape)}"
        )


def weight_shape(func, shape, n_classes):
    if tuple(shape) != (n_classes,):
        raise ValueError(
            f"{func}: 'weight' must have shape ({n_classes},), one per class, got {tuple(shape)}"
        )


def bad_weights(func, count):
    """The ValueError for ``count`` class weights that are negative, infinite or NaN."""
    return ValueError(f"{func}: 'weight' must be finite and non-negative ({count} entries are not)")


def out_of_range(func, value, where, n_classes, ignore_index):
    """The IndexError for the class-index target ``value`` at index tuple ``where``."""
    return IndexError(
        f"{func}: target {value} at position {tuple(int(i) for i in where)} is out of range for "
        f"{n_classes} classes (valid: 0 to {n_classes - 1}, or ignore_index={ignore_index})"
    )


# --- out= -------------------------------------------------------------------------------------


def out_kind(func, out, expected, name="out"):
    """The TypeError for an ``out`` that is not the backend's kind of array."""
    return TypeError(f"{func}: {name!r} must be a {expected}, got {type_name(out)}")


def out_layout(func, shape, dtype, readonly, expected_shape, expected_dtype, name="out"):
    """Check an output's shape, dtype and writability against the result's."""
    if tuple(shape) != tuple(expected_shape):
        raise ValueError(f"{func}: {name!r} has shape {tuple(shape)}, expected {tuple(expected_shape)}")
    if dtype != expected_dtype:
        raise TypeError(f"{func}: {name!r} has dtype {dtype}, expected {expected_dtype} (native byte order)")
    if readonly:
        raise ValueError(f"{func}: {name!r} is read-only")


def out_overlaps(func, name="out"):
    return ValueError(
        f"{func}: {name!r} overlaps an input; pass a separate array (or exactly the input, in place)"
    )


def lazy_out(func, name, value):
    """Dask results are lazy: an output argument (``out``, ``grad_out``) is a TypeError."""
    if value is not None:
        raise TypeError(
            f"{func}: {name}= is not supported for Dask arrays (results are lazy); "
            "store the result with dask.array.store or compute it"
        )


# --- loss options -----------------------------------------------------------------------------


def reduction(func, value):
    if not isinstance(value, str) or value not in REDUCTIONS:
        raise ValueError(f"{func}: reduction must be one of 'mean', 'sum' or 'none', got {value!r}")
    return value


_INT64 = np.iinfo(np.int64)


def ignore_index(func, value):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: ignore_index must be an integer, got {value!r}")
    try:
        index = operator.index(value)
    except TypeError as error:
        raise TypeError(f"{func}: ignore_index must be an integer, got {value!r}") from error
    if not _INT64.min <= index <= _INT64.max:  # the kernels compare it with int64 targets
        raise ValueError(f"{func}: ignore_index must fit in a 64-bit signed integer, got {index}")
    return index


def label_smoothing(func, value):
    # a plain float first (the default): the check against the numbers ABC takes several calls
    if type(value) is not float and (
        not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_))
    ):
        raise TypeError(f"{func}: label_smoothing must be a real number, got {value!r}")
    if not 0.0 <= float(value) <= 1.0:  # also rejects NaN
        raise ValueError(f"{func}: label_smoothing must lie in [0, 1], got {value!r}")
    return float(value)


def grad_out_needs_grad(func, grad_out, return_grad):
    if grad_out is not None and not return_grad:
        raise ValueError(f"{func}: grad_out is only written with return_grad=True")


def probabilities_without_ignore_index(func, value):
    if value != DEFAULT_IGNORE_INDEX:
        raise ValueError(
            f"{func}: ignore_index applies to class-index targets only, got ignore_index={value} "
            "with probability targets"
        )


def loss_options(func, reduction_, ignore_index_, smoothing=0.0, grad_out=None, return_grad=False):
    """The checked ``(reduction, ignore_index, label_smoothing)`` of a loss call."""
    reduction(func, reduction_)
    smoothing = label_smoothing(func, smoothing)
    index = ignore_index(func, ignore_index_)
    grad_out_needs_grad(func, grad_out, return_grad)
    return reduction_, index, smoothing


# --- devices ----------------------------------------------------------------------------------


def mixed_devices(func, on_device, on_host):
    return TypeError(
        f"{func}: {', '.join(map(repr, on_device))} on the GPU but {', '.join(map(repr, on_host))} on "
        "the host; pass every array argument on the same side (lsm never copies between host and device)"
    )


def no_array_interface(func, name, operand):
    return TypeError(
        f"{func}: {name!r} ({type_name(operand)}) is a GPU array without __cuda_array_interface__; "
        "lsm reads device memory through that interface (wrap it with cupy.from_dlpack, for example)"
    )


def cannot_broadcast(func, name, array, shape):
    """An array that must be broadcast (``lsm.special``: ``a`` against ``b``) but whose kind has no
    broadcasting (a Numba device array)."""
    return TypeError(
        f"{func}: {name!r} ({type_name(array)}) must be broadcast to shape {tuple(shape)} to go with "
        "'b', and this kind of array cannot broadcast; pass it broadcast already, or as a CuPy or "
        "torch array"
    )


def no_gpu(func, array):
    return RuntimeError(
        f"{func}: got a GPU array ({type_name(array)}) but no CUDA GPU is available to this process "
        "(numba.cuda.is_available() is False)"
    )


def no_cupy_bfloat16(func):
    return TypeError(
        f"{func}: CuPy has no bfloat16 arrays to hold the result; use float16, float32 or float64, "
        "or pass torch tensors or Numba device arrays"
    )


def unknown_gpu_void(func, name, array):
    return TypeError(
        f"{func}: argument {name!r} ({type_name(array)}) describes its elements as two opaque bytes "
        "('<V2') and its dtype does not say bfloat16; lsm reads that type string as bfloat16 only "
        "from arrays whose dtype is bfloat16 (torch, JAX, Numba)"
    )


def gpu_byte_order(func, name):
    return TypeError(f"{func}: argument {name!r} has non-native byte order, which GPU kernels do not read")


def requires_grad(func, name):
    """A torch CPU tensor that requires grad (lsm's plain functions build no autograd graph)."""
    return TypeError(
        f"{func}: argument {name!r} is a torch tensor that requires grad, and lsm's plain functions "
        "build no autograd graph; for autograd use lsm.torch (log_softmax, softmax, logsumexp, "
        f"cross_entropy, CrossEntropyLoss), or pass {name}.detach() (lsm's *_backward functions and "
        "return_grad= give gradients)"
    )


def unreadable_interface(func, name, array, error):
    """A device array whose ``__cuda_array_interface__`` raised (torch: a tensor that requires
    grad)."""
    return TypeError(
        f"{func}: argument {name!r} ({type_name(array)}) does not expose its memory: {error} "
        "(for a torch tensor that requires grad: lsm.torch has autograd, or pass tensor.detach())"
    )
