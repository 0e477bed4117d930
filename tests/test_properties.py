"""Hypothesis property tests for log_softmax, softmax and logsumexp (float32 and float64).

Every comparison uses a tolerance scaled by the dtype's machine epsilon and by the size of the
quantity involved (a few ulp of ``1 + |value|`` for log-domain results, a relative tolerance for
probabilities), so the same test is tight for float64 and fair to float32.

Every test runs on each backend (tests/conftest.py): the regression examples through the
``backend`` fixture, the properties through ``sweep_backend`` (the Dask cluster computes the
graphs of ``dask-halves``, at a tenth of a second a call) with fewer examples where a call is
slow (see :func:`property_test`).
"""

import math
import warnings

import numpy as np
import pytest
import scipy.special
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
ULPS = 16  # allowed error, in units of eps * scale


def property_test(*strategies, examples=60):
    """A test of the property ``body(backend, *drawn)`` (``drawn`` from ``strategies``), run by
    Hypothesis on each backend of ``sweep_backend``: ``examples`` examples on the host and a GPU,
    a twelfth of them on Dask (each call builds and computes a graph) and a twentieth on the
    simulator (each call runs every CUDA thread as a Python thread), at least two."""

    def decorate(body):
        def test(sweep_backend):
            count = examples
            if sweep_backend.max_elements is not None:
                count = max(2, examples // 20)
            elif sweep_backend.lazy:
                count = max(2, examples // 12)
            checks = settings(
                deadline=None,
                max_examples=count,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            )
            checks(given(*strategies)(body))(backend=sweep_backend)

        test.__doc__ = body.__doc__
        return test

    return decorate


# --- strategies -----------------------------------------------------------------------------


def _elements(dtype, bound, neg_inf=False):
    width = 32 if dtype == np.float32 else 64
    finite = st.floats(-bound, bound, width=width, allow_nan=False, allow_infinity=False)
    if not neg_inf:
        return finite
    return st.one_of(finite, finite, finite, st.just(-math.inf))


@st.composite
def axes(draw, ndim, allow_none=True, allow_tuple=True):
    """An axis argument for an array of ``ndim`` dims: int (maybe negative), tuple or None."""
    choices = ["int"] + (["none"] if allow_none else []) + (["tuple"] if allow_tuple else [])
    kind = draw(st.sampled_from(choices))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    picked = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    negate = draw(st.booleans())
    return tuple(a - ndim if negate else a for a in picked)


@st.composite
def arrays_and_axis(draw, bound=50.0, neg_inf=False, **axis_kwargs):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=7))
    x = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, bound, neg_inf)))
    return x, draw(axes(x.ndim, **axis_kwargs))


# --- helpers --------------------------------------------------------------------------------


def _axes_tuple(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,))))


def _to_groups(a, axis):
    """``a`` as a 2-D array with one reduced group per row (and the inverse shape info)."""
    reduced = _axes_tuple(axis, a.ndim)
    moved = np.moveaxis(a, reduced, range(a.ndim - len(reduced), a.ndim))
    n = math.prod(a.shape[i] for i in reduced)
    groups = math.prod(size for i, size in enumerate(a.shape) if i not in reduced)
    return moved.reshape(groups, n), moved.shape, reduced


def _from_groups(rows, moved_shape, reduced, ndim):
    return np.moveaxis(rows.reshape(moved_shape), range(ndim - len(reduced), ndim), reduced)


def ref_row(func, row):
    """The float64 contract for one 1-D group (scipy.special does the arithmetic)."""
    row = np.asarray(row, dtype=np.float64)
    if func == "logsumexp":
        if row.size == 0:
            return -np.inf
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return scipy.special.logsumexp(row)
    if row.size == 0:
        return row
    if np.isnan(row).any() or np.isposinf(row).any() or np.isneginf(row).all():
        return np.full(row.shape, np.nan)
    return getattr(scipy.special, func)(row)


def reference(func, x, axis, where=None):
    """Group-by-group float64 reference, honouring ``where`` by compressing each group."""
    rows, moved_shape, reduced = _to_groups(x.astype(np.float64), axis)
    mask = None
    if where is not None:
        mask, _, _ = _to_groups(np.broadcast_to(where, x.shape), axis)
    if func == "logsumexp":
        values = np.array(
            [ref_row(func, row if mask is None else row[mask[i]]) for i, row in enumerate(rows)]
        )
        kept = [size for i, size in enumerate(x.shape) if i not in reduced]
        return values.reshape(kept)
    fill = -np.inf if func == "log_softmax" else 0.0
    out = np.full(rows.shape, fill)
    for i, row in enumerate(rows):
        if mask is None:
            out[i] = ref_row(func, row)
        else:
            out[i, mask[i]] = ref_row(func, row[mask[i]])
    return _from_groups(out, moved_shape, reduced, x.ndim)


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def assert_special_values_match(got, expected):
    """Same NaN positions and same infinities."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg="NaN positions differ")
    inf = np.isinf(expected)
    np.testing.assert_array_equal(got[inf], expected[inf], err_msg="infinities differ")
    np.testing.assert_array_equal(np.isinf(got), inf, err_msg="unexpected infinities")


def assert_log_close(got, expected, dtype, scale=None, ulps=ULPS):
    """Log-domain values: |got - expected| <= ulps * eps * (1 + |expected|) (or ``scale``)."""
    assert_special_values_match(got, expected)
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(expected)
    if scale is None:
        scale = 1 + np.abs(expected)
    tolerance = ulps * _eps(dtype) * np.broadcast_to(scale, expected.shape)
    with np.errstate(invalid="ignore"):
        error = np.abs(got - expected)
    bad = finite & ~(error <= tolerance)
    assert not bad.any(), (
        f"{bad.sum()} values off: got {got[bad][:5]}, expected {expected[bad][:5]}, "
        f"tolerance {tolerance[bad][:5]}"
    )


def assert_prob_close(got, expected_log, dtype, ulps=ULPS):
    """Probabilities against ``exp`` of a log-domain reference: relative error ~ eps * (1 + |log p|)."""
    expected_log = np.asarray(expected_log, dtype=np.float64)
    expected = np.exp(expected_log)
    assert_special_values_match(got, expected)
    got = np.asarray(got, dtype=np.float64)
    finite = np.isfinite(expected)
    log_size = np.abs(np.where(np.isfinite(expected_log), expected_log, 0.0))
    tolerance = ulps * _eps(dtype) * (1 + log_size) * expected + np.finfo(dtype).tiny
    with np.errstate(invalid="ignore"):
        bad = finite & ~(np.abs(got - expected) <= tolerance)
    assert not bad.any(), f"{bad.sum()} probabilities off: got {got[bad][:5]}, expected {expected[bad][:5]}"


def lse_scale(x, axis, keepdims=False, b=None):
    """``1 + max|finite x| + log(n) (+ max|log b|)`` per group: the size of logsumexp's rounding."""
    finite = np.where(np.isfinite(x), np.abs(x.astype(np.float64)), 0.0)
    reduced = _axes_tuple(axis, x.ndim)
    n = math.prod(x.shape[i] for i in reduced)
    scale = 1 + finite.max(axis=reduced, keepdims=keepdims, initial=0.0) + math.log(max(n, 1))
    if b is not None:
        with np.errstate(divide="ignore"):
            logs = np.abs(np.log(np.abs(np.broadcast_to(b, x.shape).astype(np.float64))))
        logs = np.where(np.isfinite(logs), logs, 0.0)
        scale = scale + logs.max(axis=reduced, keepdims=keepdims, initial=0.0)
    return scale


def _check_dtype(result, x):
    assert isinstance(result, np.ndarray)
    assert result.dtype == x.dtype


# --- agreement with scipy.special -----------------------------------------------------------


@property_test(arrays_and_axis())
def test_log_softmax_matches_scipy(backend, data):
    x, axis = data
    got = backend.log_softmax(x, axis=axis)
    _check_dtype(got, x)
    assert got.shape == x.shape
    expected = scipy.special.log_softmax(x.astype(np.float64), axis=_axes_tuple(axis, x.ndim))
    assert_log_close(got, expected, x.dtype)


@property_test(arrays_and_axis())
def test_softmax_matches_scipy(backend, data):
    x, axis = data
    got = backend.softmax(x, axis=axis)
    _check_dtype(got, x)
    reduced = _axes_tuple(axis, x.ndim)
    expected_log = scipy.special.log_softmax(x.astype(np.float64), axis=reduced)
    assert_prob_close(got, expected_log, x.dtype)
    expected = scipy.special.softmax(x.astype(np.float64), axis=reduced)
    np.testing.assert_allclose(got, expected, rtol=500 * _eps(x.dtype), atol=np.finfo(x.dtype).tiny)


@property_test(arrays_and_axis(), st.booleans())
def test_logsumexp_matches_scipy(backend, data, keepdims):
    x, axis = data
    got = backend.logsumexp(x, axis=axis, keepdims=keepdims)
    expected = scipy.special.logsumexp(x.astype(np.float64), axis=axis, keepdims=keepdims)
    assert np.asarray(got).dtype == x.dtype
    assert np.shape(got) == np.shape(expected)
    assert_log_close(got, expected, x.dtype, scale=lse_scale(x, axis, keepdims))


@st.composite
def shapes_broadcasting_to(draw, shape):
    """A shape that ``np.broadcast_to(..., shape)`` accepts: trailing dims of ``shape`` or 1."""
    ndim = draw(st.integers(0, len(shape)))
    return tuple(draw(st.sampled_from([1, size])) for size in shape[len(shape) - ndim :])


@st.composite
def arrays_axis_and_weights(draw, signed=False):
    x, axis = draw(arrays_and_axis(bound=30.0))
    b_shape = draw(shapes_broadcasting_to(x.shape))
    # |b| >= 1e-3 keeps every term b * exp(x - max) a normal float32; subnormal weights lose
    # precision in any float arithmetic (scipy's too) and are pinned by a regression test below
    magnitudes = st.floats(1e-3, 5.0)
    if signed:
        magnitudes = st.tuples(st.sampled_from([-1.0, 1.0]), magnitudes).map(lambda sm: sm[0] * sm[1])
    weights = st.one_of(st.just(0.0), magnitudes, st.just(1.0), st.just(-1.0) if signed else st.just(2.0))
    b = draw(hnp.arrays(np.float64, b_shape, elements=weights))
    return x, axis, b


@property_test(arrays_axis_and_weights())
def test_logsumexp_with_nonnegative_b_matches_scipy(backend, data):
    x, axis, b = data
    got = backend.logsumexp(x, axis=axis, b=b)
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # b is documented to be converted to the computation type first (float32 for float32 x)
        expected = scipy.special.logsumexp(x.astype(np.float64), axis=axis, b=b.astype(x.dtype))
    assert np.asarray(got).dtype == x.dtype
    assert_log_close(got, expected, x.dtype, scale=lse_scale(x, axis, b=b))


@property_test(arrays_axis_and_weights(signed=True))
def test_logsumexp_signed_b_return_sign(backend, data):
    x, axis, b = data
    value, sign = backend.logsumexp(x, axis=axis, b=b, return_sign=True)
    assert np.asarray(value).dtype == x.dtype
    assert np.asarray(sign).dtype == x.dtype
    value = np.asarray(value, dtype=np.float64)
    sign = np.asarray(sign, dtype=np.float64)
    assert np.isin(sign, [-1.0, 0.0, 1.0]).all()
    assert not np.isnan(value).any()
    # compare in the linear domain: S = sum b exp(x), with error ~ eps * sum |b exp(x)|
    x64 = x.astype(np.float64)
    b_used = np.broadcast_to(b, x.shape).astype(x.dtype).astype(np.float64)  # b is rounded to x's type
    reduced = _axes_tuple(axis, x.ndim)
    terms = b_used * np.exp(x64)
    expected_sum = terms.sum(axis=reduced)
    magnitude = np.abs(terms).sum(axis=reduced)
    got_sum = sign * np.exp(value)
    tolerance = (ULPS * _eps(x.dtype) * (1 + lse_scale(x, axis, b=b))) * magnitude + 1e-300
    assert np.all(np.abs(got_sum - expected_sum) <= tolerance)
    # a zero sum (sign 0) is -inf; where the sum is clearly nonzero the sign is right
    np.testing.assert_array_equal(value[sign == 0], -np.inf)
    clear = np.abs(expected_sum) > 2 * tolerance
    np.testing.assert_array_equal(sign[clear], np.sign(expected_sum[clear]))


def _mask_is_zero_weight(backend, x, axis, b, mask):
    """Excluding an element is the same as giving it weight zero (up to the summation order,
    which may differ between the kernel compiled with a mask and the one without)."""
    got = backend.logsumexp(x, axis=axis, b=b, where=mask, return_sign=True)
    weights = np.where(mask, b, 0.0)
    value, sign = backend.logsumexp(x, axis=axis, b=weights, return_sign=True)
    np.testing.assert_array_equal(got[1], sign)
    got_value, value = np.asarray(got[0], dtype=np.float64), np.asarray(value, dtype=np.float64)
    finite = np.isfinite(value)
    np.testing.assert_array_equal(got_value[~finite], value[~finite])
    # Each is within the contract's 4 eps (1 + |result|) (the |result| for the rounding of
    # m + log(A + R) near a large m); signed weights can cancel, and each summation order is then
    # off by up to a few eps times the condition number sum|terms| / |sum terms| besides.
    magnitude = np.asarray(backend.logsumexp(x, axis=axis, b=np.abs(weights)), dtype=np.float64)
    condition = np.exp(magnitude[finite] - value[finite])
    eps = np.finfo(x.dtype).eps
    allowed = 4 * eps * (1 + np.abs(value[finite]) + condition)
    assert np.all(np.abs(got_value[finite] - value[finite]) <= allowed)


@property_test(arrays_axis_and_weights(signed=True), st.data())
def test_logsumexp_where_and_b_combine(backend, data, draw):
    x, axis, b = data
    mask = draw.draw(hnp.arrays(np.bool_, draw.draw(shapes_broadcasting_to(x.shape))))
    _mask_is_zero_weight(backend, x, axis, b, mask)


def test_mask_and_weights_that_cancel(backend):
    """Regression: Hypothesis found signed weights whose sum cancels to 0.002 of their magnitude
    (float32), where the masked and the unmasked kernels differ by 1.9e-5 relative, which a
    tolerance without the condition number called a failure."""
    x = np.zeros((7, 2), dtype=np.float32)
    b = np.array([[0], [0], [-0.001], [-1], [0], [0], [1]], dtype=np.float32)
    _mask_is_zero_weight(backend, x, None, b, np.array(True))


def test_mask_and_weights_under_a_large_maximum(backend):
    """Regression: Hypothesis found a float64 group near 12.8 whose masked and unmasked sums give
    results of 16.23 one ulp apart (3.6e-15), beyond a tolerance that left out the contract's
    ``|result|`` term (4 eps (1 + condition) = 2.2e-15 there)."""
    x = np.full((7, 7), 12.8125)
    x[0, :4] = [0.5, 7.75, 9.83203125, 12.84375]
    b = np.array([[-1.5], [0], [0], [0], [1], [-1], [-3.5]])
    _mask_is_zero_weight(backend, x, None, b, np.array(True))


@property_test(arrays_axis_and_weights(signed=True))
def test_logsumexp_negative_sum_without_sign_is_nan(backend, data):
    x, axis, b = data
    value = np.asarray(backend.logsumexp(x, axis=axis, b=b), dtype=np.float64)
    signed_value, sign = backend.logsumexp(x, axis=axis, b=b, return_sign=True)
    sign = np.asarray(sign)
    np.testing.assert_array_equal(np.isnan(value), sign < 0)
    np.testing.assert_array_equal(value[sign >= 0], np.asarray(signed_value, dtype=np.float64)[sign >= 0])


# --- internal consistency -------------------------------------------------------------------


@property_test(arrays_and_axis(neg_inf=True))
def test_exp_log_softmax_sums_to_one(backend, data):
    x, axis = data
    reduced = _axes_tuple(axis, x.ndim)
    got = backend.log_softmax(x, axis=axis).astype(np.float64)
    valid = np.isfinite(x.max(axis=reduced, keepdims=True, initial=-np.inf))  # not all -inf
    totals = np.exp(got).sum(axis=reduced, keepdims=True)
    n = math.prod(x.shape[i] for i in reduced)
    tolerance = ULPS * _eps(x.dtype) * (1 + math.log(n))
    assert np.all(np.abs(totals[valid] - 1) <= tolerance)
    assert np.all(got[np.broadcast_to(valid, x.shape)] <= ULPS * _eps(x.dtype))
    assert np.isnan(got[np.broadcast_to(~valid, x.shape)]).all()  # all -inf groups: NaN (contract)
    probabilities = backend.softmax(x, axis=axis).astype(np.float64)
    assert np.all(np.abs(probabilities.sum(axis=reduced, keepdims=True)[valid] - 1) <= tolerance)
    defined = probabilities[~np.isnan(probabilities)]
    assert np.all((defined >= 0) & (defined <= 1))


@property_test(arrays_and_axis(neg_inf=True, bound=200.0))
def test_softmax_is_exp_of_log_softmax(backend, data):
    x, axis = data
    log_p = backend.log_softmax(x, axis=axis)
    p = backend.softmax(x, axis=axis)
    assert p.dtype == log_p.dtype == x.dtype
    assert_prob_close(p, log_p, x.dtype)


@property_test(arrays_and_axis(bound=200.0))
def test_logsumexp_is_x_minus_log_softmax(backend, data):
    x, axis = data
    lse = backend.logsumexp(x, axis=axis, keepdims=True)
    log_p = backend.log_softmax(x, axis=axis)
    assert lse.ndim == x.ndim
    x64 = x.astype(np.float64)
    difference = x64 - log_p.astype(np.float64)
    scale = np.abs(x64) + np.abs(log_p.astype(np.float64)) + 1
    assert_log_close(np.broadcast_to(lse.astype(np.float64), x.shape), difference, x.dtype, scale=scale)


# --- shift invariance -----------------------------------------------------------------------


@st.composite
def exact_arrays_and_shift(draw):
    """Multiples of 1/8 in [-64, 64] (with some -inf) and a shift c = +-2^p, 2^-3 <= 2^p <= 2^10:
    x + c is exact in float32 and float64, so shifting changes no rounding in the input."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=7))
    steps = draw(hnp.arrays(np.int64, shape, elements=st.integers(-512, 512)))
    x = (steps / 8).astype(dtype)
    inf_mask = draw(hnp.arrays(np.bool_, shape, elements=st.sampled_from([False, False, False, True])))
    x[inf_mask] = -np.inf
    c = dtype.type(draw(st.sampled_from([-1.0, 1.0])) * 2.0 ** draw(st.integers(-3, 10)))
    return x, c, draw(axes(x.ndim))


@property_test(exact_arrays_and_shift())
def test_shift_invariance(backend, data):
    x, c, axis = data
    shifted = x + c
    assert np.array_equal(shifted - c, x)  # the shift really is exact
    for func in ("log_softmax", "softmax"):
        base = getattr(backend, func)(x, axis=axis)
        moved = getattr(backend, func)(shifted, axis=axis)
        if func == "log_softmax":
            assert_log_close(moved, base, x.dtype, ulps=4)
        else:
            assert_prob_close(moved, backend.log_softmax(x, axis=axis), x.dtype, ulps=4)
    lse = backend.logsumexp(x, axis=axis).astype(np.float64)
    lse_moved = backend.logsumexp(shifted, axis=axis).astype(np.float64)
    assert_log_close(lse_moved, lse + float(c), x.dtype, scale=lse_scale(x, axis) + abs(float(c)), ulps=4)


# --- extreme magnitudes ---------------------------------------------------------------------


@st.composite
def extreme_arrays_and_axis(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    bound = 1e30 if dtype == np.float64 else 1e4
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    x = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, bound, neg_inf=True)))
    return x, draw(axes(x.ndim))


@property_test(extreme_arrays_and_axis())
def test_extreme_magnitudes(backend, data):
    x, axis = data
    expected_log = reference("log_softmax", x, axis)
    log_p = backend.log_softmax(x, axis=axis)
    _check_dtype(log_p, x)
    assert_log_close(log_p, expected_log, x.dtype)
    assert_prob_close(backend.softmax(x, axis=axis), expected_log, x.dtype)
    lse = backend.logsumexp(x, axis=axis)
    assert_log_close(lse, reference("logsumexp", x, axis), x.dtype, scale=lse_scale(x, axis))
    assert not np.isposinf(np.asarray(lse)).any()  # nothing overflows


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_extreme_magnitudes_examples(backend, dtype):
    big = 1e30 if dtype == np.float64 else 1e4
    x = np.array([big, -big, -np.inf, big / 2, big], dtype=dtype)
    expected = np.array([-math.log(2), -2 * big - math.log(2), -np.inf, -big / 2 - math.log(2), -math.log(2)])
    assert_log_close(backend.log_softmax(x), expected, dtype)
    np.testing.assert_array_equal(backend.softmax(x), np.array([0.5, 0, 0, 0, 0.5], dtype=dtype))
    assert_log_close(backend.logsumexp(x), big + math.log(2), dtype)


@property_test(arrays_and_axis(neg_inf=True))
def test_nan_or_posinf_poisons_the_group(backend, data):
    x, axis = data
    flat = x.reshape(-1).copy()
    flat[0] = np.nan
    if flat.size > 1:
        flat[-1] = np.inf
    x = flat.reshape(x.shape)
    for func in ("log_softmax", "softmax", "logsumexp"):
        got = getattr(backend, func)(x, axis=axis)
        assert_special_values_match(got, reference(func, x, axis))


# --- masks ----------------------------------------------------------------------------------


@st.composite
def arrays_axis_and_mask(draw, neg_inf=False, allow_tuple=True):
    x, axis = draw(arrays_and_axis(neg_inf=neg_inf, allow_tuple=allow_tuple))
    mask_shape = draw(shapes_broadcasting_to(x.shape))
    mask = draw(hnp.arrays(np.bool_, mask_shape))
    return x, axis, mask


@property_test(arrays_axis_and_mask(neg_inf=True))
def test_where_equals_compressed_computation(backend, data):
    x, axis, mask = data
    full_mask = np.broadcast_to(mask, x.shape)
    for func, fill in (("log_softmax", -np.inf), ("softmax", 0.0)):
        got = getattr(backend, func)(x, axis=axis, where=mask)
        _check_dtype(got, x)
        expected_log = reference("log_softmax", x, axis, where=mask)
        if func == "log_softmax":
            assert_log_close(got, expected_log, x.dtype)
        else:
            assert_prob_close(got, expected_log, x.dtype)
        assert np.all(got[~full_mask] == fill)
    lse = backend.logsumexp(x, axis=axis, where=mask)
    expected = reference("logsumexp", x, axis, where=mask)
    assert_log_close(lse, expected, x.dtype, scale=lse_scale(x, axis))


@property_test(arrays_axis_and_mask())
def test_where_on_finite_input_never_gives_nan(backend, data):
    x, axis, mask = data
    reduced = _axes_tuple(axis, x.ndim)
    full_mask = np.broadcast_to(mask, x.shape)
    empty_groups = ~full_mask.any(axis=reduced, keepdims=True)
    log_p = backend.log_softmax(x, axis=axis, where=mask)
    p = backend.softmax(x, axis=axis, where=mask)
    lse = backend.logsumexp(x, axis=axis, where=mask, keepdims=True)
    assert not np.isnan(log_p).any()
    assert not np.isnan(p).any()
    assert not np.isnan(lse).any()
    np.testing.assert_array_equal(np.isneginf(log_p), ~full_mask)
    np.testing.assert_array_equal(p[~full_mask], 0)
    np.testing.assert_array_equal(np.isneginf(lse), empty_groups)
    # every non-empty group still sums to one
    totals = p.astype(np.float64).sum(axis=reduced, keepdims=True)
    n = math.prod(x.shape[i] for i in reduced)
    assert np.all(np.abs(totals[~empty_groups] - 1) <= ULPS * _eps(x.dtype) * (1 + math.log(n)))


@property_test(arrays_axis_and_mask(neg_inf=True))
def test_logsumexp_where_equals_logsumexp_of_selection(backend, data):
    x, _, mask = data
    full_mask = np.broadcast_to(mask, x.shape)
    got = backend.logsumexp(x, where=mask)
    selected = backend.logsumexp(x[full_mask])
    assert np.asarray(got).dtype == x.dtype
    assert np.ndim(got) == 0
    expected = reference("logsumexp", x[full_mask], None)
    scale = lse_scale(x, None)
    assert_log_close(got, expected, x.dtype, scale=scale)
    assert_log_close(got, np.asarray(selected, dtype=np.float64), x.dtype, scale=scale)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_fully_masked_groups(backend, dtype):
    x = np.array([[1.0, -np.inf, 3.0], [-np.inf, -np.inf, -np.inf], [0.0, 0.0, 0.0]], dtype=dtype)
    where = np.array([[False, False, False], [False, False, False], [True, False, False]])
    log_p = backend.log_softmax(x, where=where)
    p = backend.softmax(x, where=where)
    lse = backend.logsumexp(x, axis=1, where=where)
    expected_log = np.array([[-np.inf] * 3, [-np.inf] * 3, [0.0, -np.inf, -np.inf]])
    np.testing.assert_array_equal(log_p, expected_log.astype(dtype))
    np.testing.assert_array_equal(p, np.exp(expected_log).astype(dtype))
    np.testing.assert_array_equal(lse, np.array([-np.inf, -np.inf, 0.0], dtype=dtype))
    # a scalar False masks everything (a NumPy scalar: the backend moves it, like any array)
    np.testing.assert_array_equal(backend.softmax(x, where=np.bool_(False)), np.zeros_like(x))
    assert backend.logsumexp(x, where=np.False_) == -np.inf


# --- larger arrays: multi-block sums, several column tiles, the parallel kernels -------------

SIDES = [1, 2, 3, 33, 65, 130, 257]


@st.composite
def larger_arrays(draw, max_elements):
    """Arrays up to ``max_elements`` (on the host, ~130k) elements (values from a seeded
    generator, not drawn one by one), with some -inf and an optional mask, so the blocked sums,
    the 64-column tiles and the parallel kernels (from ``PARALLEL_MIN_ELEMENTS`` elements) all
    meet random data."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.sampled_from(SIDES), min_size=ndim, max_size=ndim)))
    if ndim == 1:
        shape = (draw(st.sampled_from([n for n in (1, 31, 32, 33, 1000, 40_000) if n <= max_elements])),)
    while math.prod(shape) > max_elements:  # shrink the largest side instead of rejecting the draw
        largest = shape.index(max(shape))
        sides = list(shape)
        sides[largest] = SIDES[SIDES.index(sides[largest]) - 1]
        shape = tuple(sides)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1.0, 30.0]))
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    x[rng.random(shape) < draw(st.sampled_from([0.0, 0.1, 0.9]))] = -np.inf
    mask = rng.random(shape) < 0.6 if draw(st.booleans()) else None
    return x, draw(axes(x.ndim)), mask


def vectorised_reference(func, x, axis, mask):
    """float64 reference via scipy: excluded elements become -inf; fully excluded groups follow
    the documented -inf / 0 instead of scipy's NaN."""
    x64 = x.astype(np.float64)
    if mask is not None:
        x64 = np.where(mask, x64, -np.inf)
    reduced = _axes_tuple(axis, x.ndim)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if func == "logsumexp":
            return scipy.special.logsumexp(x64, axis=reduced)
        expected = scipy.special.log_softmax(x64, axis=reduced)
    if mask is not None:
        empty = ~np.broadcast_to(mask.any(axis=reduced, keepdims=True), x.shape)
        expected[empty | ~mask] = -np.inf
    return expected


@property_test(st.data(), examples=25)
def test_larger_arrays_match_scipy(backend, data):
    x, axis, mask = data.draw(larger_arrays(backend.max_elements or 140_000))
    expected_log = vectorised_reference("log_softmax", x, axis, mask)
    got = backend.log_softmax(x, axis=axis, where=mask)
    _check_dtype(got, x)
    assert_log_close(got, expected_log, x.dtype)
    assert_prob_close(backend.softmax(x, axis=axis, where=mask), expected_log, x.dtype)
    lse = backend.logsumexp(x, axis=axis, where=mask)
    expected = vectorised_reference("logsumexp", x, axis, mask)
    assert_log_close(lse, expected, x.dtype, scale=lse_scale(x, axis))


# --- regression tests, named after the bug they pin ------------------------------------------


# Regression: a subnormal weight at the maximum of x overflowed R / A, so
# logsumexp([0., 1.], b=[1., 1e-310]) was inf instead of ~0.0.
@pytest.mark.parametrize(
    ("dtype", "tiny"),
    [(np.float64, 1e-310), (np.float64, 5e-324), (np.float32, 1e-40)],
    ids=["float64-1e-310", "float64-5e-324", "float32-1e-40"],
)
def test_logsumexp_tiny_weight_at_the_maximum(backend, dtype, tiny):
    x = np.array([0.0, 1.0], dtype=dtype)
    b = np.array([1.0, tiny])
    # S = 1 + tiny * e, so log S is 0 to within rounding (scipy.special gives 0.0)
    with np.errstate(over="ignore"):  # scipy divides by the tiny weight too, then recovers
        expected = scipy.special.logsumexp(x.astype(np.float64), b=b.astype(dtype))
    assert backend.logsumexp(x, b=b) == pytest.approx(expected, abs=1e-6)
    value, sign = backend.logsumexp(x, b=-b, return_sign=True)
    assert (value, sign) == (pytest.approx(expected, abs=1e-6), -1)


# Regression: a NaN weight made R NaN, which fell through to the 'S = 0' branch, so
# logsumexp([0., 1.], b=[1., nan]) was -inf (sign 0) instead of NaN.
@pytest.mark.parametrize("nan_at", [0, 1], ids=["below-max", "at-max"])
def test_logsumexp_nan_weight_gives_nan(backend, nan_at):
    b = np.ones(2)
    b[nan_at] = np.nan
    assert np.isnan(backend.logsumexp(np.array([0.0, 1.0]), b=b))
    value, sign = backend.logsumexp(np.array([0.0, 1.0]), b=b, return_sign=True)
    assert np.isnan(value) and np.isnan(sign)


# Regression: an infinite weight, or finite weights whose sum overflows, made R NaN in the
# compensated sum, so logsumexp([0., 1.], b=[inf, 1.]) was -inf. A weighted sum that overflows
# the dtype now gives +inf (the true 711.4 of the second case is out of reach without rescaling).
@pytest.mark.parametrize(
    ("x", "b", "dtype", "lower"),
    [
        ([0.0, 1.0], [np.inf, 1.0], np.float64, np.inf),
        ([1.0, 0.999, 0.999], [1.0, 1.7e308, 1.7e308], np.float64, 711.0),
        ([1.0, 0.999, 0.999], [1.0, 3e38, 3e38], np.float32, 90.0),
    ],
    ids=["inf-weight", "float64-sum-overflows", "float32-sum-overflows"],
)
def test_logsumexp_overflowing_weighted_sum_is_not_minus_inf(backend, x, b, dtype, lower):
    # the true log-sums are +inf, log(3.4e308) + 0.999 = 711.4 and 90.29: none is -inf
    assert backend.logsumexp(np.array(x, dtype=dtype), b=np.array(b)) >= lower
