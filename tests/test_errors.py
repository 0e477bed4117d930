"""Argument validation: every bad argument raises the documented exception with a clear message.

The tests that take the ``backend`` fixture pass their arrays through it (tests/conftest.py), so
the same bad arguments are checked on NumPy, Dask and device arrays; the messages expected are
those of the CPU path. Dask refuses ``out=`` (its results are lazy): the tests passing it skip
there. The tests at the end pass objects no backend holds (Python lists, masked arrays, stand-ins
for foreign array types) and run on the host only.
"""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.exceptions import AxisError

import lsm

NAMES = ["log_softmax", "softmax", "logsumexp"]
SOFTMAX_NAMES = ["log_softmax", "softmax"]


@pytest.fixture
def x():
    return np.arange(12, dtype=np.float64).reshape(3, 4)


def _skip_unless_held(backend, dtype):
    """Skip where the backend's arrays cannot hold ``dtype`` (device arrays hold numbers of the
    native byte order only; bfloat16 where the backend says so)."""
    dtype = np.dtype(dtype)
    numeric = dtype.isnative and (dtype.kind in "biufc" or backend.accepts(dtype))
    if backend.gpu and not numeric:
        pytest.skip(f"{backend}: device arrays cannot hold {dtype.str}")


# --- axis -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("axis", [2, -3, 100, (0, 2), (-3,), np.int64(2), np.intp(-3)])
def test_axis_out_of_range(backend, name, x, axis):
    with pytest.raises(AxisError, match="out of bounds"):
        getattr(backend, name)(x, axis=axis)


@pytest.mark.parametrize("name", NAMES)
def test_axis_out_of_range_on_0d_input(backend, name):
    with pytest.raises(AxisError, match="out of bounds"):
        getattr(backend, name)(np.float64(1.0), axis=1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("axis", [(0, 0), (1, -1), (0, 1, 0)])
def test_duplicate_axis(backend, name, x, axis):
    with pytest.raises(AxisError, match="duplicate"):
        getattr(backend, name)(x, axis=axis)


def test_axis_error_is_also_a_value_and_index_error(backend, x):
    # numpy's AxisError subclasses both, so callers catching either keep working
    with pytest.raises(ValueError):
        backend.log_softmax(x, axis=5)
    with pytest.raises(IndexError):
        backend.logsumexp(x, axis=-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("axis", [1.0, "0", [0, 1], True, np.bool_(False), (0, 1.5), np.float64(1)])
def test_non_integer_axis(backend, name, x, axis):
    with pytest.raises(TypeError, match="axis must be an integer"):
        getattr(backend, name)(x, axis=axis)


@pytest.mark.parametrize("axis", [np.int64(1), np.int8(-1), (np.intp(0), 1)])
def test_numpy_integer_axis_is_accepted(backend, x, axis):
    expected = backend.logsumexp(x, axis=tuple(int(a) for a in np.atleast_1d(axis)))
    np.testing.assert_array_equal(backend.logsumexp(x, axis=axis), expected)


# --- input dtypes ---------------------------------------------------------------------------

BAD_INPUTS = {
    "complex128": np.array([1 + 2j, 3 - 1j]),
    "complex64": np.array([1 + 2j, 3 - 1j], dtype=np.complex64),
    "object": np.array([1.0, "a"], dtype=object),
    "str": np.array(["a", "bc"]),
    "bytes": np.array([b"a", b"bc"]),
    "datetime64": np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]"),
    "timedelta64": np.array([1, 2], dtype="timedelta64[s]"),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_unsupported_input_dtype_names_the_dtype(backend, name, kind):
    _skip_unless_held(backend, BAD_INPUTS[kind].dtype)
    with pytest.raises(TypeError, match=f"unsupported dtype {kind}"):
        getattr(backend, name)(BAD_INPUTS[kind])


def test_unsupported_b_dtype_names_b(backend):
    with pytest.raises(TypeError, match=r"unsupported dtype complex128 for argument 'b'"):
        backend.logsumexp(np.ones(2), b=np.array([1j, 1]))


# --- dtype= ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad_dtype", ["float17", "not a dtype", "bfloat17"])
def test_unknown_dtype_string(backend, name, x, bad_dtype):
    with pytest.raises(TypeError, match=f"{name}: dtype='{bad_dtype}' is not a dtype"):
        getattr(backend, name)(x, dtype=bad_dtype)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("bad_dtype", "dtype_name"),
    [(int, "int64"), (np.int32, "int32"), ("uint8", "uint8"), (bool, "bool"), (np.complex128, "complex128")],
)
def test_non_float_dtype(backend, name, x, bad_dtype, dtype_name):
    with pytest.raises(
        TypeError, match=f"dtype must be float16, bfloat16, float32 or float64, got {dtype_name}"
    ):
        getattr(backend, name)(x, dtype=bad_dtype)


@pytest.mark.parametrize("name", NAMES)
def test_longdouble_dtype_is_rejected(backend, name, x):
    if np.dtype(np.longdouble) == np.float64:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match="dtype must be"):
        getattr(backend, name)(x, dtype=np.longdouble)


# --- out= -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOFTMAX_NAMES)
@pytest.mark.parametrize("shape", [(4, 3), (12,), (3, 4, 1), (1, 3, 4)])
def test_out_wrong_shape_softmax(backend, name, x, shape):
    with pytest.raises(ValueError, match=re.escape(f"'out' has shape {shape}, expected (3, 4)")):
        getattr(backend, name)(x, out=np.empty(shape))


@pytest.mark.parametrize(
    ("kwargs", "shape", "expected"),
    [
        ({"axis": 1}, (3, 1), r"\(3,\)"),
        ({"axis": 1, "keepdims": True}, (3,), r"\(3, 1\)"),
        ({}, (1,), r"\(\)"),
        ({"axis": 0}, (3,), r"\(4,\)"),
    ],
)
def test_out_wrong_shape_logsumexp(backend, x, kwargs, shape, expected):
    with pytest.raises(ValueError, match=f"'out' has shape .*, expected {expected}"):
        backend.logsumexp(x, out=np.empty(shape), **kwargs)


@pytest.mark.parametrize("name", SOFTMAX_NAMES)
@pytest.mark.parametrize("out_dtype", [np.float32, np.int64, np.float16, ">f8"])
def test_out_wrong_dtype_softmax(backend, name, x, out_dtype):
    _skip_unless_held(backend, out_dtype)
    with pytest.raises(TypeError, match=r"'out' has dtype .*, expected float64"):
        getattr(backend, name)(x, out=np.empty(x.shape, dtype=out_dtype))


def test_out_dtype_must_match_dtype_argument(backend, x):
    with pytest.raises(TypeError, match="'out' has dtype float64, expected float32"):
        backend.log_softmax(x, dtype=np.float32, out=np.empty(x.shape))
    with pytest.raises(TypeError, match="'out' has dtype float32, expected float64"):
        backend.logsumexp(x, axis=0, out=np.empty(4, dtype=np.float32))


def _on_the_host(backend, name, message):
    """The error for a host value (a list, a Python number) passed as ``name``: the host's own
    check on the host; on the GPU, where every array argument must be a device array (lsm never
    copies between host and device), the refusal to mix them, which names the argument."""
    return rf"'x' on the GPU but '{name}' on the host" if backend.gpu else message


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("out", [[0.0] * 12, (0.0,), 0.0])
def test_out_not_an_ndarray(backend, name, x, out):
    message = rf"'out' must be a numpy.ndarray, got builtins.{type(out).__name__}"
    with pytest.raises(TypeError, match=_on_the_host(backend, "out", message)):
        getattr(backend, name)(x, out=out)


@pytest.mark.parametrize("name", NAMES)
def test_out_read_only(backend, name, x):
    if backend.name == "cuda":
        pytest.skip("CuPy arrays cannot be read-only")
    frozen = np.zeros(() if name == "logsumexp" else x.shape)
    frozen.flags.writeable = False
    out = backend.move(frozen)
    with pytest.raises(ValueError, match="'out' is read-only"):
        getattr(backend, name)(x, out=out)
    assert np.all(backend.to_numpy(out) == 0)


@pytest.mark.parametrize("name", SOFTMAX_NAMES)
@pytest.mark.parametrize("shift", [1, -1, 3])
def test_out_partially_overlapping_input(backend, name, shift):
    before = np.linspace(-1, 1, 20)
    buffer = backend.move(before.copy())
    with pytest.raises(ValueError, match="'out' overlaps an input"):
        getattr(backend, name)(buffer[3:13], out=buffer[3 + shift : 13 + shift])
    np.testing.assert_array_equal(backend.to_numpy(buffer), before)  # nothing was written


@pytest.mark.parametrize("name", SOFTMAX_NAMES)
def test_out_same_memory_different_view_is_rejected(backend, name):
    x = backend.move(np.linspace(-1, 1, 16).reshape(4, 4))
    with pytest.raises(ValueError, match="'out' overlaps an input"):
        getattr(backend, name)(x, out=x.T)  # same buffer and shape, different strides: not exact aliasing
    with pytest.raises(ValueError, match="'out' overlaps an input"):
        getattr(backend, name)(x[:, :2], out=x[:, 1:3])


def test_out_overlapping_where_or_b_is_rejected(backend):
    buffer = backend.move(np.zeros(8))
    where = buffer.view(np.bool_)[:8]  # aliases the first 8 bytes of the float buffer
    with pytest.raises(ValueError, match="'out' overlaps an input"):
        backend.softmax(np.ones(8), where=where, out=buffer)
    b = backend.move(np.ones(5))
    with pytest.raises(ValueError, match="'out' overlaps an input"):
        backend.logsumexp(np.ones((2, 5)), axis=1, b=b, out=b[:2])


def test_logsumexp_out_aliasing_input_is_rejected(backend):
    x = backend.move(np.linspace(-1, 1, 6))
    with pytest.raises(ValueError, match="'out' overlaps an input"):
        backend.logsumexp(x[None, :], axis=0, keepdims=False, out=x)


@pytest.mark.parametrize("name", SOFTMAX_NAMES)
@pytest.mark.parametrize("axis", [-1, 0])
def test_exact_aliasing_is_in_place(backend, name, axis):
    x = np.random.default_rng(0).standard_normal((5, 7))
    expected = getattr(backend, name)(x, axis=axis)
    # the backend checks that out (here its own copy of x) is what the call returns
    np.testing.assert_allclose(getattr(backend, name)(x, axis=axis, out=x), expected, rtol=1e-15, atol=1e-15)


def test_exact_aliasing_of_a_strided_view_is_in_place(backend):
    original = np.random.default_rng(1).standard_normal((6, 10))
    expected = backend.log_softmax(original[::2, ::3])
    base = backend.move(original)
    view = base[::2, ::3]
    backend.log_softmax(view, out=view)
    written = backend.to_numpy(base)
    np.testing.assert_allclose(written[::2, ::3], expected, rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(written[1::2], original[1::2])


# --- where= and b= --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(4,), (2, 4), (3, 2)])
def test_where_not_broadcastable(backend, name, shape):
    x = np.zeros((3, 5))
    with pytest.raises(ValueError, match=rf"'where' with shape \({shape[0]},.*cannot be broadcast"):
        getattr(backend, name)(x, where=np.ones(shape, dtype=bool))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("where", [np.ones(5, dtype=int), np.ones(5), [1, 0, 1, 0, 1], np.ones(5, np.uint8)])
def test_where_not_bool(backend, name, where):
    message = "'where' must be a boolean array, got dtype"
    if isinstance(where, list):
        message = _on_the_host(backend, "where", message)
    with pytest.raises(TypeError, match=message):
        getattr(backend, name)(np.zeros((3, 5)), where=where)


@pytest.mark.parametrize("shape", [(4,), (2, 5), (5, 3)])
def test_b_not_broadcastable(backend, shape):
    with pytest.raises(
        ValueError, match=r"logsumexp: 'b' with shape .* cannot be broadcast to the input shape \(3, 5\)"
    ):
        backend.logsumexp(np.zeros((3, 5)), axis=1, b=np.ones(shape))


def test_where_must_broadcast_to_input_not_the_other_way(backend):
    # x (5,) with where (3, 5) would broadcast jointly but where cannot broadcast to x
    with pytest.raises(ValueError, match="'where'"):
        backend.softmax(np.zeros(5), where=np.ones((3, 5), dtype=bool))
    with pytest.raises(ValueError, match="'b'"):
        backend.logsumexp(np.zeros(5), b=np.ones((3, 5)))


# --- objects no backend holds: the host only --------------------------------------------------
# Python lists, NumPy masked arrays and stand-ins for foreign array types are not arrays the
# backend fixture could move: what lsm makes of them is decided before any backend is chosen.

ALL_FUNCS = [lsm.log_softmax, lsm.softmax, lsm.logsumexp]
func_ids = lambda f: f.__name__  # noqa: E731


@pytest.mark.parametrize("func", ALL_FUNCS, ids=func_ids)
def test_unsupported_python_list_input(func):
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        func([1.0, 2j])
    with pytest.raises(TypeError, match="unsupported dtype str"):
        func(["a", "b"])


@pytest.mark.parametrize("func", ALL_FUNCS, ids=func_ids)
def test_ragged_input_is_a_type_error(func):
    with pytest.raises(TypeError, match="cannot be converted to an array"):
        func([[1.0, 2.0], [3.0]])


# --- foreign array types --------------------------------------------------------------------


@pytest.mark.parametrize("func", ALL_FUNCS, ids=func_ids)
def test_masked_array_rejected(func):
    x = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    with pytest.raises(TypeError, match=r"numpy.ma.MaskedArray .*where=~mask"):
        func(x)


def test_masked_array_rejected_as_where_b_or_out():
    with pytest.raises(TypeError, match="MaskedArray"):
        lsm.log_softmax(np.ones(2), out=np.ma.zeros(2))
    mask = np.ma.masked_array([True, False], mask=[False, True])
    with pytest.raises(TypeError, match="MaskedArray"):
        lsm.softmax(np.ones(2), where=mask)
    with pytest.raises(TypeError, match="MaskedArray"):
        lsm.logsumexp(np.ones(2), b=np.ma.masked_array([1.0, 2.0]))


class FakeCudaArray:
    """Quacks like a CuPy/Numba device array: only the CUDA array interface."""

    def __init__(self):
        self.__cuda_array_interface__ = {
            "shape": (3,),
            "typestr": "<f8",
            "data": (0, False),
            "version": 3,
            "strides": None,
        }


class FakeDLPackGpuArray:
    """An array living on a CUDA device according to DLPack (device type 2 is kDLCUDA)."""

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, stream=None):  # pragma: no cover - must never be called
        raise AssertionError("lsm must not try to import a GPU array through DLPack")


class FakeDLPackCpuArray:
    """DLPack on the CPU (device type 1) with a NumPy fallback: treated as a host array."""

    def __dlpack_device__(self):
        return (1, 0)

    def __array__(self, dtype=None, copy=None):
        return np.array([0.0, np.log(3.0)], dtype=dtype)


@pytest.mark.parametrize("cls", [FakeCudaArray, FakeDLPackGpuArray])
def test_host_and_device_arguments_are_not_mixed(cls):
    """A device array beside a host array is an error naming both sides, never a silent copy."""
    pattern = r"on the GPU but .* on the host"
    x = np.zeros(3)
    with pytest.raises(TypeError, match=pattern):
        lsm.softmax(x, where=cls())
    with pytest.raises(TypeError, match=pattern):
        lsm.log_softmax(x, out=cls())
    with pytest.raises(TypeError, match=pattern):
        lsm.logsumexp(x, b=cls())
    with pytest.raises(TypeError, match=r"'x' on the GPU but 'where' on the host"):
        lsm.softmax(cls(), where=np.ones(3, dtype=bool))
    with pytest.raises(TypeError, match=r"'x', 'out' on the GPU but 'b' on the host"):
        lsm.logsumexp(cls(), out=cls(), b=[1.0, 2.0, 3.0])


@pytest.mark.parametrize("func", ALL_FUNCS, ids=func_ids)
def test_dlpack_only_gpu_array_is_refused(func):
    with pytest.raises(
        TypeError, match=r"FakeDLPackGpuArray\) is a GPU array without __cuda_array_interface__"
    ):
        func(FakeDLPackGpuArray())


def test_gpu_array_without_a_gpu():
    """With numba-cuda but no GPU, a device array is a clear error (without numba-cuda, an
    ImportError naming the extra to install)."""
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"lsm\[cuda\]"):
            lsm.softmax(FakeCudaArray())
        return
    from lsm.cuda import _numba

    if _numba.is_available():
        pytest.skip("a CUDA GPU is present: the fake array's null pointer must not reach it")
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        lsm.softmax(FakeCudaArray())


def test_dlpack_cpu_array_is_accepted():
    np.testing.assert_allclose(lsm.softmax(FakeDLPackCpuArray()), [0.25, 0.75], rtol=1e-15)


def test_import_does_not_pull_in_gpu_or_dask_modules():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import lsm
        lsm.log_softmax(np.ones((3, 4)))
        lsm.logsumexp(np.ones(5), b=np.ones(5), where=np.ones(5, dtype=bool))
        bad = sorted(
            name for name in sys.modules
            if name == "numba.cuda" or name.startswith(("numba.cuda.", "cupy", "dask"))
        )
        print("loaded:", bad)
        sys.exit(1 if bad else 0)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded: []" in done.stdout


GRADIENT_AND_LOSS_CALLS = {
    "log_softmax_backward": lambda a, b: lsm.log_softmax_backward(a, b),
    "softmax_backward": lambda a, b: lsm.softmax_backward(a, b),
    "cross_entropy": lambda a, b: lsm.cross_entropy(a, b),
    "nll_loss": lambda a, b: lsm.nll_loss(a, b),
}


@pytest.mark.parametrize("name", list(GRADIENT_AND_LOSS_CALLS))
def test_gradients_and_losses_take_the_gpu_path(name):
    """The gradients and losses dispatch device arrays like the forward functions: mixed with
    host arrays is an error naming both sides; without a GPU, the same clear error."""
    call = GRADIENT_AND_LOSS_CALLS[name]
    with pytest.raises(TypeError, match=r"on the GPU but .* on the host"):
        call(np.zeros(3), FakeCudaArray())
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"lsm\[cuda\]"):
            call(FakeCudaArray(), FakeCudaArray())
        return
    from lsm.cuda import _numba

    if _numba.is_available():
        pytest.skip("a CUDA GPU is present: the fake array's null pointer must not reach it")
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        call(FakeCudaArray(), FakeCudaArray())
