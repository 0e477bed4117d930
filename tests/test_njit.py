"""lsm's functions called from a user's ``@njit`` code (``lsm._njit``) and ``lsm.streaming``.

Every compiled caller below is module-level and takes the axis at run time, so one compilation
per function, dimension count and dtype serves every axis: Numba compiles are the cost of this
file. Results are compared bit for bit with the public call on the same arrays (the same kernels
run), and with the long-double references once.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit, prange
from numba.core.errors import TypingError
from numpy.exceptions import AxisError
from reference import assert_close, assert_relative, ref_log_softmax, ref_logsumexp

import lsm
from lsm import streaming

SHAPES = {1: [(7,), (100,)], 2: [(5, 70), (3, 4)], 3: [(3, 4, 80), (2, 3, 5)]}
FORWARD = ["log_softmax", "softmax"]
BACKWARD = ["log_softmax_backward", "softmax_backward"]


@njit
def _log_softmax(x, axis):
    return lsm.log_softmax(x, axis)


@njit
def _softmax(x, axis):
    return lsm.softmax(x, axis=axis)


@njit
def _logsumexp(x, axis):
    return lsm.logsumexp(x, axis)


@njit
def _log_softmax_backward(grad, y, axis):
    return lsm.log_softmax_backward(grad, y, axis)


@njit
def _softmax_backward(grad, y, axis):
    return lsm.softmax_backward(grad, y, axis=axis)


COMPILED = {
    "log_softmax": _log_softmax,
    "softmax": _softmax,
    "logsumexp": _logsumexp,
    "log_softmax_backward": _log_softmax_backward,
    "softmax_backward": _softmax_backward,
}


def _bits_equal(actual, expected):
    expected = np.asarray(expected)
    if isinstance(actual, float):  # a compiled float32 scalar comes back as a Python float
        actual = expected.dtype.type(actual)
    actual = np.asarray(actual)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert np.array_equal(actual, expected, equal_nan=True)
    assert actual.tobytes() == expected.tobytes()


def _input(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.flat[0] = -np.inf  # an entry whose probability is 0
    return x


# float32 where its kernels differ from float64's only in type: 2-d has rows and columns
CASES = [(1, np.float64), (2, np.float32), (2, np.float64), (3, np.float64)]


@pytest.mark.parametrize(("ndim", "dtype"), CASES)
@pytest.mark.parametrize("func", [*FORWARD, "logsumexp"])
def test_forward_equals_the_public_call(func, ndim, dtype):
    """Every axis (negative ones too), short rows, long rows and columns, bit for bit; the input
    is left as it was."""
    for shape in SHAPES[ndim]:
        x = _input(shape, dtype)
        before = x.copy()
        for axis in range(-ndim, ndim):
            _bits_equal(COMPILED[func](x, axis), getattr(lsm, func)(x, axis))
        assert np.array_equal(x, before)


@pytest.mark.parametrize(("ndim", "dtype"), CASES)
@pytest.mark.parametrize("func", BACKWARD)
def test_backward_equals_the_public_call(func, ndim, dtype):
    forward = lsm.log_softmax if func == "log_softmax_backward" else lsm.softmax
    for shape in SHAPES[ndim]:
        grad = _input(shape, dtype, seed=1)
        grad.flat[0] = 0.5
        for axis in range(-ndim, ndim):
            y = forward(_input(shape, dtype), axis)
            before = grad.copy(), y.copy()
            _bits_equal(COMPILED[func](grad, y, axis), getattr(lsm, func)(grad, y, axis))
            assert np.array_equal(grad, before[0]) and np.array_equal(y, before[1])


def test_the_compiled_call_runs_the_public_calls_compiled_kernels():
    """The kernels receive the public call's argument types from a user's ``@njit`` code too:
    the operands they only read typed read-only, the options ``bool`` (not a constant's literal
    type), so each kernel compiles once for both callers. (In a fresh process whose entry points
    are compiled afresh: kernels loaded within their caller's cached code show no signatures.)"""
    program = textwrap.dedent(
        """
        import numba, numpy as np, lsm
        from lsm.cpu import _backward, _forward, _njit

        for name in ("softmax", "_softmax_rows", "softmax_backward"):
            setattr(_njit, name, numba.njit(getattr(_njit, name).py_func))  # typed here, uncached

        @numba.njit
        def forward_and_back(x, axis):
            y = lsm.softmax(x, axis)
            return lsm.log_softmax(x, axis), lsm.softmax_backward(x, y, axis)

        forward_and_back(np.linspace(-3.0, 3.0, 5 * 70).reshape(5, 70), 1)
        for module, read in ((_forward, 1), (_backward, 2)):  # x; the gradient and y
            for name, driver in vars(module).items():
                if name.endswith("_serial"):
                    for signature in driver.signatures:
                        literal = any(isinstance(ty, numba.types.Literal) for ty in signature)
                        print(name, literal, all(not ty.mutable for ty in signature[:read]))
        """
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = [line.split() for line in run.stdout.splitlines()]
    names = {name for name, *_ in lines}
    assert {"softmax_columns_serial", "softmax_short_rows_serial", "backward_rows_serial"} <= names
    assert [line for line in lines if line[1:] != ["False", "True"]] == []


def test_against_the_references():
    x = _input((6, 90), np.float64)
    for axis in (0, 1):
        assert_close(_log_softmax(x, axis), ref_log_softmax(x, axis), np.float64)
        assert_close(_logsumexp(x, axis), ref_logsumexp(x, axis), np.float64)


def test_strided_and_integer_inputs():
    """A strided input is copied to a contiguous one (the public call's result on that copy, bit
    for bit; on the strided view it runs kernels compiled for strides, whose vectorised sums may
    round differently), an integer one converted to float64 as the public call converts it."""
    x = _input((6, 150), np.float64)[:, ::2]
    for axis in (0, 1):
        _bits_equal(_log_softmax(x, axis), lsm.log_softmax(np.ascontiguousarray(x), axis))
        assert_close(_log_softmax(x, axis), ref_log_softmax(x, axis), np.float64)
    counts = np.arange(12, dtype=np.int32).reshape(3, 4)
    _bits_equal(_logsumexp(counts, 1), lsm.logsumexp(counts, 1))


@njit
def _softmax_into(x, axis, out, where):
    return lsm.softmax(x, axis, out=out, where=where)


@njit
def _log_softmax_into(x, axis, out, where):
    return lsm.log_softmax(x, axis, out=out, where=where)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_out_and_where(log):
    """``out=`` (contiguous, in place, and for softmax strided) and ``where=`` (full, and for
    softmax broadcast) as the public call, on rows and columns. The strided ``out`` and the
    broadcast mask are the wrapper's business, the same for both functions; softmax's kernels
    choose between three ways of keeping their exponentials (``lsm.cpu._njit``)."""
    compiled, public = (_log_softmax_into, lsm.log_softmax) if log else (_softmax_into, lsm.softmax)
    x = _input((4, 80), np.float64)
    where = np.random.default_rng(2).random((4, 80)) > 0.3
    for axis in (0, 1):
        expected = public(x, axis, where=where)
        out = np.empty_like(x)
        assert compiled(x, axis, out, where) is out
        _bits_equal(out, expected)
        in_place = x.copy()
        compiled(in_place, axis, in_place, None)
        _bits_equal(in_place, public(x, axis))
        if not log:
            strided = np.empty((4, 160))[:, ::2]
            compiled(x, axis, strided, where)
            _bits_equal(strided, expected)
            _bits_equal(compiled(x, axis, None, where[0]), public(x, axis, where=where[0]))


@njit
def _logsumexp_options(x, axis, b, where, out):
    value, sign = lsm.logsumexp(x, axis, keepdims=True, b=b, return_sign=True, where=where, out=out)
    return value, sign, lsm.logsumexp(x), lsm.logsumexp(x, None, keepdims=True)


def test_logsumexp_options():
    x = _input((3, 4, 70), np.float64)
    b = np.random.default_rng(3).standard_normal((4, 70))
    where = np.random.default_rng(4).random((3, 4, 70)) > 0.2
    for axis in (0, 1, 2, -1):
        out = np.empty(lsm.logsumexp(x, axis, keepdims=True).shape)
        value, sign, total, kept = _logsumexp_options(x, axis, b, where, out)
        expected = lsm.logsumexp(x, axis, keepdims=True, b=b, return_sign=True, where=where)
        assert value is out
        _bits_equal(value, expected[0])
        _bits_equal(sign, expected[1])
        assert total == lsm.logsumexp(x)
        _bits_equal(kept, lsm.logsumexp(x, None, keepdims=True))


@njit
def _logsumexp_scalar_into(x, out):
    return lsm.logsumexp(x, out=out)


def test_logsumexp_scalar_into_a_0d_out():
    x = _input((50,), np.float32)
    out = np.empty((), np.float32)
    assert _logsumexp_scalar_into(x, out) is out
    _bits_equal(out, lsm.logsumexp(x, out=np.empty((), np.float32)))


@njit
def _backward_into(grad, y, out, where):
    return lsm.log_softmax_backward(grad, y, -1, out=out, where=where)


def test_backward_out_where_and_in_place():
    grad, y = _input((5, 90), np.float64, seed=5), lsm.log_softmax(_input((5, 90), np.float64))
    grad.flat[0] = 1.0
    where = np.random.default_rng(6).random((5, 90)) > 0.4
    expected = lsm.log_softmax_backward(grad, y, where=where)
    _bits_equal(_backward_into(grad, y, np.empty_like(y), where), expected)
    in_place = grad.copy()
    _backward_into(in_place, y, in_place, where)
    _bits_equal(in_place, expected)


# --- errors -------------------------------------------------------------------------------------


def _typing_error(func, *args):
    with pytest.raises(TypingError) as caught:
        func(*args)
    return str(caught.value)


@njit
def _with_axes(x):
    return lsm.logsumexp(x, (0, 1))


@njit
def _with_dtype(x):
    return lsm.log_softmax(x, -1, dtype=np.float32)


@njit
def _runtime_keepdims(x, keep):
    return lsm.logsumexp(x, 0, keepdims=keep)


@njit
def _float64_out(x, out):
    return lsm.softmax(x, 0, out=out)


@njit
def _bool_b(x, b):
    return lsm.logsumexp(x, 0, b=b, return_sign=False)


def test_compile_time_errors_name_the_argument():
    x = _input((3, 4), np.float64)
    assert "'axis'" in _typing_error(_with_axes, x)
    assert "'dtype'" in _typing_error(_with_dtype, x)
    assert "'keepdims'" in _typing_error(_runtime_keepdims, x, True)
    assert "'out'" in _typing_error(_float64_out, x, np.empty((3, 4), np.float32))
    assert "'out'" in _typing_error(_float64_out, x, np.empty(3))
    assert "'x'" in _typing_error(_log_softmax, x.astype(np.float16), 0)
    assert "'x'" in _typing_error(_log_softmax, x.astype(np.complex128), 0)
    assert "'x'" in _typing_error(_log_softmax, np.zeros((1, 1, 1, 2)), 0)
    assert "'b'" in _typing_error(_bool_b, x, np.zeros((3, 4), np.complex64))


def test_run_time_errors():
    x = _input((3, 4), np.float64)
    with pytest.raises(AxisError):
        _log_softmax(x, 2)
    with pytest.raises(AxisError):
        _logsumexp(x, -3)
    with pytest.raises(ValueError, match="shape"):
        _softmax_into(x, 1, np.empty((4, 3)), None)
    buffer = np.zeros(20)
    overlapping = buffer[:12].reshape(3, 4)
    with pytest.raises(ValueError, match="overlaps"):
        _softmax_into(overlapping, 1, buffer[4:16].reshape(3, 4), None)
    with pytest.raises(ValueError, match="same shape"):
        _log_softmax_backward(x, x[:, :3].copy(), 1)


# --- a parallel caller --------------------------------------------------------------------------


@njit(parallel=True)
def _rows_in_parallel(x):
    lse = np.empty(x.shape[0])
    out = np.empty_like(x)
    for i in prange(x.shape[0]):
        lse[i] = lsm.logsumexp(x[i])
        lsm.log_softmax(x[i], out=out[i])
    return lse, out


def test_a_parallel_caller():
    """Each prange iteration runs lsm's serial kernels on its own thread: the same bits as the
    public call per row."""
    x = _input((64, 300), np.float64)
    lse, out = _rows_in_parallel(x)
    _bits_equal(lse, lsm.logsumexp(x, 1))
    _bits_equal(out, lsm.log_softmax(x, 1))


# --- streaming ----------------------------------------------------------------------------------

SPECIAL = [0.0, -40.0, 3.5, 1e308, -745.0, np.inf, -np.inf, np.nan]


def test_merge_is_the_dask_merge():
    """Bit for bit the merge of two partials in lsm's Dask reductions, special values included."""
    pytest.importorskip("dask")
    from lsm.dask._blocks import pack
    from lsm.dask._forward import _normaliser_merge

    logs = [0.0, 0.5, 1e-20, np.log(3.0), -np.inf, np.inf, np.nan]
    for m_a in SPECIAL:
        for m_b in SPECIAL:
            for l_a in logs:
                for l_b in logs[:4]:
                    with np.errstate(invalid="ignore"):
                        dask = _normaliser_merge(
                            pack(np.array([[m_a, m_b]]), np.array([[l_a, l_b]])), axis=(1,), keepdims=False
                        )[0]
                    merged = np.array(streaming.merge((m_a, l_a), (m_b, l_b)))
                    np.testing.assert_array_equal(merged, [dask.real, dask.imag])


@njit
def _stream(values, chunk):
    s = streaming.EMPTY
    for start in range(0, values.shape[0], chunk):
        s = streaming.merge(s, streaming.chunk_state(values[start : start + chunk]))
    return streaming.finalise(s)


def test_merged_streams_keep_relative_accuracy():
    """Two streams folded apart, then merged (a parallel reduction): the second's terms, all
    below the first's lone maximum 0, are the whole of the result, about e^-31.5. Its state is
    ``(m_2, log(S_2 e^-m_2))``; ``m_2 + log(S_2 e^-m_2)`` rounded to one float would leave that
    term up to 31 ulps off."""
    values = np.array([0.0, -31.669172932330827, -33.169172932330824])

    def stream(terms):
        s = streaming.EMPTY
        for term in terms:
            s = streaming.merge(s, streaming.state(term))
        return s

    for split in (1, 2):
        first, second = stream(values[:split]), stream(values[split:])
        for merged in (streaming.merge(first, second), streaming.merge(second, first)):
            got = np.float64(streaming.finalise(merged))
            assert_relative(got, ref_logsumexp(values), np.float64, "merged")


def test_merged_chunk_states_keep_relative_accuracy():
    """Chunks entered by ``chunk_state``, split at every place and merged both ways round: each
    chunk's maximum and shifted sum stay apart, so the result near 0 keeps its relative accuracy
    (``state(lsm.logsumexp(chunk))`` rounds the second chunk's log-sum to one float: 17 eps off
    here, split after the 0)."""
    values = np.array([0.0, -33.650079248551386, -35.84394698591125, -33.96066138101961])
    for split in range(5):
        first, second = streaming.chunk_state(values[:split]), streaming.chunk_state(values[split:])
        for merged in (streaming.merge(first, second), streaming.merge(second, first)):
            got = np.float64(streaming.finalise(merged))
            assert_relative(got, ref_logsumexp(values), np.float64, f"split at {split}")
    # from @njit, chunk by chunk
    for chunk in (1, 2, 3):
        assert_relative(np.float64(_stream(values, chunk)), ref_logsumexp(values), np.float64, f"by {chunk}")


@pytest.mark.parametrize("n", [1, 2, 31, 1000, 5000])
def test_chunk_state_is_the_chunks_logsumexp(n):
    """``finalise(chunk_state(x))`` agrees with ``lsm.logsumexp`` to an ulp, for every dtype it
    takes and for any shape and layout (the terms are read as float64)."""

    def check(values):
        got = streaming.finalise(streaming.chunk_state(values))
        np.testing.assert_array_max_ulp(got, lsm.logsumexp(values.astype(np.float64)), maxulp=1)

    x = np.random.default_rng(n).standard_normal(n) * 20
    m, log_sum = streaming.chunk_state(x)
    assert m == x.max() and 0 <= log_sum <= np.log(n) + 1e-15
    grid = np.tile(x, (3, 1))  # 2-d, then a strided and a transposed view
    for values in (x, x.astype(np.float32), np.arange(-n, n), grid, grid[:, ::2], grid.T):
        check(values)


def test_chunk_state_of_special_values():
    """An empty chunk is the empty sum; a chunk's NaN or +inf, or nothing above -inf, gives the
    state ``state`` gives that value; a single term's state is ``state``'s."""
    negative_nan = -np.abs(np.nan)
    cases = [
        ([], streaming.EMPTY),
        ([-np.inf, -np.inf], streaming.EMPTY),
        ([1.0, np.inf, 3.0], (np.inf, np.inf)),
        ([1.0, np.nan, np.inf], (np.nan, np.nan)),
    ]
    for values, expected in cases:
        np.testing.assert_array_equal(streaming.chunk_state(np.array(values, dtype=np.float64)), expected)
    for value in SPECIAL:
        np.testing.assert_array_equal(streaming.chunk_state(np.array([value])), streaming.state(value))
    for values in ([1.0, negative_nan], [negative_nan, 2.0, 3.0]):
        assert np.isnan(streaming.finalise(streaming.chunk_state(np.array(values))))


def test_streams_against_the_reference():
    values = np.random.default_rng(7).standard_normal(1000) * 30
    for chunk in (1, 7, 1000):
        assert_close(np.float64(_stream(values, chunk)), ref_logsumexp(values), np.float64)
    s = streaming.EMPTY
    for value in (0.0, -40.0):
        s = streaming.merge(s, streaming.state(value))
    assert streaming.finalise(s) == np.log1p(np.exp(-40.0))
    assert streaming.finalise(streaming.EMPTY) == -np.inf
    for special, expected in [(np.inf, np.inf), (np.nan, np.nan), (-np.inf, 1.0)]:
        s = streaming.merge(streaming.state(1.0), streaming.state(special))
        np.testing.assert_array_equal(streaming.finalise(s), expected)
