"""lsm.special against scipy.special on every backend: scipy's defaults, broadcasting of ``a``
with ``b``, dtype promotion, the sign of an empty sum, 0-d inputs (scipy's own test file runs
against lsm.special in test_special_scipy.py, on NumPy arrays)."""

import numpy as np
import pytest
import scipy.special

import lsm
import lsm.special


def _call(backend, func, x, **kwargs):
    return backend._call(getattr(lsm.special, func), x, **kwargs)  # moves x and b to the backend


def _check(result, expected, dtype=None):
    """``result`` (lsm.special's, as NumPy) equals ``expected`` (scipy's): dtype, shape, values."""
    results = result if isinstance(result, tuple) else (result,)
    expecteds = expected if isinstance(expected, tuple) else (expected,)
    dtype = np.asarray(expecteds[0]).dtype if dtype is None else np.dtype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-13  # scipy's float32 sums are not compensated
    for got, want in zip(results, expecteds, strict=True):
        assert np.asarray(got).dtype == dtype and np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


@pytest.mark.parametrize(
    ("axis", "keepdims", "return_sign"), [(None, False, False), ((0, 2), True, True), (-1, False, True)]
)
def test_a_broadcasts_with_b(backend, axis, keepdims, return_sign):
    rng = np.random.default_rng(15)  # each test its own generator: inputs independent of test order
    a = rng.standard_normal((4, 1, 2, 1))
    b = rng.standard_normal((3, 1, 5))  # a and b broadcast together to (4, 3, 2, 5)
    kwargs = dict(axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    expected = scipy.special.logsumexp(a, **kwargs)
    if backend.name == "cuda-sim":  # Numba device arrays cannot broadcast: a clear error
        with pytest.raises(TypeError, match=r"'a' \(.*\) must be broadcast to shape \(4, 3, 2, 5\)"):
            _call(backend, "logsumexp", a, **kwargs)
        return
    _check(_call(backend, "logsumexp", a, **kwargs), expected, np.float64)


def test_b_broadcasts_to_a_and_new_leading_axes_of_a_are_views(backend):
    rng = np.random.default_rng(16)
    a, b = rng.standard_normal((3, 5)), rng.standard_normal(5)  # b broadcasts to a, as in lsm
    expected = scipy.special.logsumexp(a, b=b, axis=1, return_sign=True)
    _check(_call(backend, "logsumexp", a, b=b, axis=1, return_sign=True), expected)
    a, b = rng.standard_normal(5), rng.standard_normal((1, 5))  # a gains a size-1 axis: every kind can
    expected = scipy.special.logsumexp(a, b=b, axis=-1, keepdims=True)
    _check(_call(backend, "logsumexp", a, b=b, axis=-1, keepdims=True), expected)


@pytest.mark.parametrize(
    ("a_dtype", "b_dtype", "dtype"),
    [
        (np.float32, np.float64, np.float64),
        (np.float64, np.float32, np.float64),
        (np.int64, np.float32, np.float64),
        (np.float32, np.int8, np.float32),
        (np.int32, np.bool_, np.float64),
    ],
)
def test_the_result_dtype_is_the_promotion_of_a_and_b(backend, a_dtype, b_dtype, dtype):
    a = np.array([[2, 1, 0], [1, 1, 3]], dtype=a_dtype)
    b = np.array([1, -1, 1], dtype=b_dtype)
    expected = scipy.special.logsumexp(a, b=b, axis=-1, return_sign=True)
    assert expected[0].dtype == dtype  # scipy's rule
    _check(_call(backend, "logsumexp", a, b=b, axis=-1, return_sign=True), expected, dtype)


@pytest.mark.parametrize(("shape", "axis"), [((0,), None), ((0, 3), 0), ((2, 0, 3), 1)])
def test_an_empty_sum_has_sign_minus_one(backend, shape, axis):
    a = np.zeros(shape)
    expected = scipy.special.logsumexp(a, axis=axis, return_sign=True)
    assert np.all(expected[1] == -1)
    _check(_call(backend, "logsumexp", a, axis=axis, return_sign=True), expected, np.float64)


def test_a_0d_input_counts_as_1d(backend):
    a = np.float64(2.5)
    expected = scipy.special.logsumexp(a, keepdims=True)
    assert expected.shape == (1,)
    _check(_call(backend, "logsumexp", a, keepdims=True), expected, np.float64)
    _check(_call(backend, "logsumexp", a, axis=0), scipy.special.logsumexp(a, axis=0), np.float64)


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_softmax_and_log_softmax_default_to_all_axes(backend, func, dtype):
    x = np.array([[-3, 0, 2], [3, 1, 2]]).astype(dtype)
    expected = getattr(scipy.special, func)(x)
    # the values from scipy in float64: its float32 log_softmax of a column (-3, 3) is
    # -0.0024756517, 1.4e-5 off the exact -0.0024756851 that lsm gives
    exact = getattr(scipy.special, func)(x.astype(np.float64))
    _check(_call(backend, func, x), exact.astype(expected.dtype), expected.dtype)
    exact = getattr(scipy.special, func)(x.astype(np.float64), axis=0)
    _check(_call(backend, func, x, axis=0), exact.astype(expected.dtype), expected.dtype)


def test_python_scalars_and_lists_promote_as_in_scipy():
    a32 = np.array([1.0, 2.0], dtype=np.float32)
    cases = [(a32, 2), (a32, 2.0), (2.0, a32), ([1, 2], 2.0), ([1.0, 2.0], [[1], [2]]), (3, None)]
    dtypes = []
    for a, b in cases:
        expected = scipy.special.logsumexp(a, b=b)
        _check(lsm.special.logsumexp(a, b=b), expected)
        dtypes.append(np.asarray(expected).dtype.name)
    assert dtypes == ["float32"] * 3 + ["float64"] * 3


@pytest.mark.parametrize(("a", "b"), [([1j, 2], None), ([1.0, 2.0], [1j, 1])])
def test_complex_input_is_a_type_error(a, b):
    with pytest.raises(TypeError, match="complex128"):
        lsm.special.logsumexp(np.asarray(a), b=None if b is None else np.asarray(b))


def test_the_signatures_are_scipys():
    """The parameters, their kinds and defaults (lsm's carry annotations, scipy's do not)."""
    import inspect

    def parameters(func):
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]

    for name in ("logsumexp", "softmax", "log_softmax"):
        assert parameters(getattr(lsm.special, name)) == parameters(getattr(scipy.special, name))
