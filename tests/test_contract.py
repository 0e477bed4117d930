"""The numerical contract of log_softmax, softmax and logsumexp (see docs/architecture.md).

Every result is compared with the long double references of ``tests/reference.py`` under the
tolerance of its dtype (``reference.assert_close``), over the adversarial inputs of
``tests/adversarial.py`` and over one explicit test per row of the contract table.
"""

import numpy as np
import pytest
import scipy.special
from adversarial import BFLOAT16, DTYPES, INPUT_DTYPES, adversarial_cases, dtype_id
from reference import (
    LONG,
    assert_close,
    ref_log_softmax,
    ref_logsumexp,
    ref_softmax,
    to_long,
    tolerance,
    ulp,
)

import lsm

nan, inf = np.nan, np.inf
F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
FLOAT_IDS = [dtype_id(d) for d in DTYPES]

SOFTMAX_FAMILY = {"log_softmax": (lsm.log_softmax, ref_log_softmax), "softmax": (lsm.softmax, ref_softmax)}


def result_dtype(dtype):
    """The result dtype lsm must give for an input of ``dtype`` when no ``dtype=`` is passed."""
    dtype = np.dtype(dtype)
    return F64 if dtype.kind in "biu" else dtype.newbyteorder("=")


def as_computed(x):
    """``x`` converted the way lsm converts it before computing (the reference's input)."""
    return x.astype(result_dtype(x.dtype))


def _adversarial_params():
    params = []
    for dtype in INPUT_DTYPES:
        for case in adversarial_cases(dtype):
            params.append(pytest.param(case.array, case.axis, id=f"{dtype_id(dtype)}-{case.id}"))
    return params


ADVERSARIAL = _adversarial_params()


# --- the adversarial inputs against the references ----------------------------------------------


@pytest.mark.parametrize(("x", "axis"), ADVERSARIAL)
def test_log_softmax_adversarial(sweep_backend, x, axis):
    backend = sweep_backend
    got = backend.log_softmax(x, axis=axis)
    assert_close(got, ref_log_softmax(as_computed(x), axis=axis), result_dtype(x.dtype))


@pytest.mark.parametrize(("x", "axis"), ADVERSARIAL)
def test_softmax_adversarial(sweep_backend, x, axis):
    backend = sweep_backend
    got = backend.softmax(x, axis=axis)
    assert_close(got, ref_softmax(as_computed(x), axis=axis), result_dtype(x.dtype))


@pytest.mark.parametrize(("x", "axis"), ADVERSARIAL)
def test_logsumexp_adversarial(sweep_backend, x, axis):
    backend = sweep_backend
    dtype = result_dtype(x.dtype)
    xc = as_computed(x)
    assert_close(backend.logsumexp(x, axis=axis), ref_logsumexp(xc, axis=axis), dtype, "plain")
    kept = backend.logsumexp(x, axis=axis, keepdims=True)
    assert_close(kept, ref_logsumexp(xc, axis=axis, keepdims=True), dtype, "keepdims")
    value, sign = backend.logsumexp(x, axis=axis, return_sign=True)
    ref_value, ref_sign = ref_logsumexp(xc, axis=axis, return_sign=True)
    assert_close(value, ref_value, dtype, "return_sign value")
    assert_close(sign, ref_sign, dtype, "return_sign sign")


def _snapshot(array):
    flags = array.flags
    layout = (flags.writeable, flags.c_contiguous, flags.f_contiguous, flags.owndata, flags.aligned)
    return array.tobytes(), array.dtype, array.shape, array.strides, layout


@pytest.mark.parametrize(("x", "axis"), ADVERSARIAL)
def test_inputs_never_modified(x, axis):
    before = _snapshot(x)
    lsm.log_softmax(x, axis=axis)
    lsm.softmax(x, axis=axis)
    lsm.logsumexp(x, axis=axis)
    lsm.logsumexp(x, axis=axis, return_sign=True, keepdims=True)
    assert _snapshot(x) == before, "x was modified (data, dtype, strides or flags changed)"


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided", "readonly", "broadcast"])
def test_where_and_b_never_modified(layout):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 40))
    where, b = rng.random((40, 6)) < 0.7, rng.uniform(-2, 2, (40, 6))
    if layout == "contiguous":
        where, b = np.ascontiguousarray(where.T), np.ascontiguousarray(b.T)
    elif layout == "transposed":
        where, b = where.T, b.T
    elif layout == "strided":
        where, b = np.repeat(where.T, 2, axis=1)[:, ::2], np.repeat(b.T, 2, axis=1)[:, ::2]
    elif layout == "readonly":
        where, b = np.ascontiguousarray(where.T), np.ascontiguousarray(b.T)
        where.setflags(write=False)
        b.setflags(write=False)
    else:
        where, b = np.broadcast_to(where[:, 0], x.shape), np.broadcast_to(b[:, 0], x.shape)
    operands = {"x": x, "where": where, "b": b}
    before = {name: _snapshot(a) for name, a in operands.items()}
    for axis in (-1, 0, None):
        lsm.log_softmax(x, axis=axis, where=where)
        lsm.softmax(x, axis=axis, where=where)
        lsm.logsumexp(x, axis=axis, b=b, where=where, return_sign=True, keepdims=True)
    for name, array in operands.items():
        assert _snapshot(array) == before[name], f"{name} was modified"


# --- the reference and its tolerance can fail ---------------------------------------------------


def test_assert_close_rejects_errors():
    x = np.array([1.0, 2.0, 3.0])
    reference = ref_log_softmax(x)
    assert_close(lsm.log_softmax(x), reference, F64)
    for wrong in (
        lsm.log_softmax(x) + 1e-14,  # too far
        lsm.log_softmax(x).astype(F32),  # wrong dtype
        lsm.log_softmax(x)[:2],  # wrong shape
        list(lsm.log_softmax(x)),  # not a NumPy result
        np.array([nan, -1.0, -0.5]),  # NaN where the reference is finite
    ):
        with pytest.raises(AssertionError):
            assert_close(wrong, reference, F64)
    half = np.array([0.0, 1.0], dtype=F16)
    allowed = tolerance(F16)(np.array([1.0], dtype=LONG))
    assert float(allowed[0]) == 2.0**-10
    with pytest.raises(AssertionError):  # two ulps off in float16
        assert_close(np.array([0.0, 1.0 + 2 * 2.0**-10], dtype=F16), to_long(half), F16)


# --- one test per row of the contract table -----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
def test_row_finite(backend, dtype):
    """finite: x - lse(x), exp(x - lse), max + log(sum exp(x - max))."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((20, 50)) * 5).astype(dtype)
    for axis in (-1, 0):
        assert_close(backend.log_softmax(x, axis=axis), ref_log_softmax(x, axis=axis), dtype)
        assert_close(backend.softmax(x, axis=axis), ref_softmax(x, axis=axis), dtype)
        assert_close(backend.logsumexp(x, axis=axis), ref_logsumexp(x, axis=axis), dtype)
    assert np.isfinite(to_long(backend.log_softmax(x))).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
def test_row_contains_nan(backend, dtype):
    """contains NaN: whole row NaN (log_softmax, softmax), NaN (logsumexp); other rows untouched."""
    x = np.array([[1.0, nan, -inf, inf], [1.0, 2.0, 3.0, 4.0]], dtype=dtype)
    for func in (lsm.log_softmax, lsm.softmax):
        got = to_long(func(x))
        assert np.isnan(got[0]).all()
        assert np.isfinite(got[1]).all()
    got = to_long(backend.logsumexp(x, axis=1))
    assert np.isnan(got[0]) and np.isfinite(got[1])
    got = to_long(backend.logsumexp(x.T, axis=0))  # the column kernel
    assert np.isnan(got[0]) and np.isfinite(got[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
def test_row_contains_posinf_without_nan(backend, dtype):
    """contains +inf (no NaN): whole row NaN (log_softmax, softmax), +inf (logsumexp)."""
    x = np.array([[1.0, inf, -inf, 2.0], [inf, inf, 0.0, 0.0]], dtype=dtype)
    for axis, data in ((-1, x), (0, np.ascontiguousarray(x.T))):
        for func in (lsm.log_softmax, lsm.softmax):
            assert np.isnan(to_long(func(data, axis=axis))).all()
        assert (to_long(backend.logsumexp(data, axis=axis)) == inf).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
def test_row_all_neginf(backend, dtype):
    """all -inf: whole row NaN (log_softmax, softmax), -inf (logsumexp, sign 0)."""
    x = np.full((2, 3), -inf, dtype=dtype)
    for axis in (-1, 0):
        assert np.isnan(to_long(backend.log_softmax(x, axis=axis))).all()
        assert np.isnan(to_long(backend.softmax(x, axis=axis))).all()
        value, sign = backend.logsumexp(x, axis=axis, return_sign=True)
        assert (to_long(value) == -inf).all() and (to_long(sign) == 0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
def test_row_some_neginf(backend, dtype):
    """some -inf: -inf at those places (log_softmax), 0 there (softmax), finite (logsumexp)."""
    x = np.array([-inf, 0.0, -inf, np.log(3.0)], dtype=dtype)
    log_p = backend.log_softmax(x)
    p = backend.softmax(x)
    assert (to_long(log_p)[[0, 2]] == -inf).all() and np.isfinite(to_long(log_p)[[1, 3]]).all()
    assert (to_long(p)[[0, 2]] == 0).all() and (to_long(p)[[1, 3]] > 0).all()
    assert_close(p, ref_softmax(x), dtype)
    assert np.isfinite(to_long(backend.logsumexp(x)))
    assert_close(backend.logsumexp(x), ref_logsumexp(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
def test_row_length_zero(backend, dtype):
    """length 0: empty result (log_softmax, softmax), -inf (logsumexp)."""
    x = np.zeros((3, 0), dtype=dtype)
    for func in (lsm.log_softmax, lsm.softmax):
        got = func(x)
        assert got.shape == (3, 0) and got.dtype == dtype
    value = backend.logsumexp(x, axis=1)
    assert value.shape == (3,) and value.dtype == dtype and (to_long(value) == -inf).all()
    assert to_long(backend.logsumexp(np.zeros(0, dtype=dtype))) == -inf


@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "columns"])
def test_row_where_false(backend, dtype, axis):
    """where= False: -inf (log_softmax), 0 (softmax), ignored (logsumexp); fully masked never NaN."""
    x = np.array([[1.0, nan, 2.0, inf], [3.0, 4.0, 5.0, 6.0], [nan, inf, -inf, 1.0]], dtype=dtype)
    where = np.array([[True, False, True, False], [False, False, False, False], [False, False, True, True]])
    if axis == 0:
        x, where = np.ascontiguousarray(x.T), np.ascontiguousarray(where.T)
    log_p = backend.log_softmax(x, axis=axis, where=where)
    p = backend.softmax(x, axis=axis, where=where)
    lse = backend.logsumexp(x, axis=axis, where=where)
    assert (to_long(log_p)[~where] == -inf).all()
    assert (to_long(p)[~where] == 0).all()
    assert not np.isnan(to_long(log_p)).any() and not np.isnan(to_long(p)).any()
    assert_close(log_p, ref_log_softmax(x, axis=axis, where=where), dtype)
    assert_close(p, ref_softmax(x, axis=axis, where=where), dtype)
    assert_close(lse, ref_logsumexp(x, axis=axis, where=where), dtype)
    assert to_long(lse)[1] == -inf  # the fully masked group
    rtol = 1e-2 if dtype in (F16, BFLOAT16) else 1e-6
    np.testing.assert_allclose(float(to_long(lse)[0]), np.logaddexp(1.0, 2.0), rtol=rtol)  # NaN, inf masked


# --- worked examples from the docs --------------------------------------------------------------


def test_seed_example_log_softmax_keeps_tiny_probabilities():
    x = np.array([-999.0, 1, 2, 5, 6])
    expected = np.array([-1005.3314, -5.3314, -4.3314, -1.3314, -0.33141])
    got = lsm.log_softmax(x)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert_close(got, ref_log_softmax(x), F64)
    with np.errstate(divide="ignore"):
        via_softmax = np.log(lsm.softmax(x))
    assert via_softmax[0] == -inf
    np.testing.assert_allclose(via_softmax[1:], expected[1:], atol=1e-4, rtol=0)


def test_logsumexp_dominant_term_matches_logaddexp_exactly():
    got = lsm.logsumexp([0.0, -40.0])
    assert got == np.logaddexp(0.0, -40.0)
    assert got > 0  # log(1 + exp(-40)) would round to 0


@pytest.mark.parametrize(
    ("dtype", "log_value", "value"),
    [(F16, -11.5129, 1e-5), (BFLOAT16, -11.5129, 1e-5)],
    ids=["float16", "bfloat16"],
)
def test_half_row_of_100000_zeros_does_not_overflow(dtype, log_value, value):
    x = np.zeros(100_000, dtype=dtype)
    log_p = lsm.log_softmax(x)
    p = lsm.softmax(x)
    assert log_p.dtype == dtype and p.dtype == dtype
    assert (log_p == np.array(log_value).astype(dtype)).all()
    assert (p == np.array(value).astype(dtype)).all()
    lse = lsm.logsumexp(x)
    assert lse.dtype == dtype and lse == np.array(np.log(100_000)).astype(dtype)


@pytest.mark.parametrize("dtype", [F16, BFLOAT16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "columns"])
def test_every_16bit_pattern_loads_and_stores_exactly(dtype, axis):
    """A group of one element: logsumexp is the element itself, log_softmax 0, softmax 1 (or NaN)."""
    values = np.arange(1 << 16, dtype=np.uint16).view(dtype)
    x = values.reshape((-1, 1) if axis == -1 else (1, -1))
    expected = to_long(values)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(to_long(lsm.logsumexp(x, axis=axis)), expected)
    np.testing.assert_array_equal(to_long(lsm.log_softmax(x, axis=axis)).ravel(), np.where(finite, 0, nan))
    np.testing.assert_array_equal(to_long(lsm.softmax(x, axis=axis)).ravel(), np.where(finite, 1, nan))


@pytest.mark.parametrize("dtype", [F16, BFLOAT16], ids=["float16", "bfloat16"])
def test_half_results_are_rounded_to_nearest(dtype):
    """logsumexp([a, a]) = a + log 2 for every finite 16-bit a: rounded to nearest, not truncated.

    Accumulating in float32 and rounding once may double-round a value within a float32 ulp of a
    midpoint between two 16-bit values, hence the 1/64 ulp slack.
    """
    values = np.arange(1 << 16, dtype=np.uint16).view(dtype)
    values = values[np.isfinite(to_long(values)) & (np.abs(to_long(values)) < 30000)]
    got = to_long(lsm.logsumexp(np.stack([values, values], axis=1), axis=1))
    reference = to_long(values) + np.log(LONG(2))
    error = np.abs(got - reference) / ulp(reference, dtype)
    assert error.max() <= 0.5 + 2.0**-6, values[np.argmax(error)]


# --- agreement with scipy.special.logsumexp (b, return_sign, keepdims) ---------------------------


def _weights(kind, shape, rng):
    if kind == "none":
        return None
    if kind == "positive":
        return rng.uniform(0.1, 10.0, shape)
    if kind == "signed":
        return rng.uniform(0.1, 10.0, shape) * rng.choice([-1.0, 1.0], shape)
    if kind == "with-zeros":
        return rng.uniform(0.1, 10.0, shape) * rng.choice([0.0, 1.0], shape)
    if kind == "broadcast-row":
        return rng.uniform(-3.0, 3.0, shape[-1:])
    raise ValueError(kind)


@pytest.mark.parametrize("weights", ["none", "positive", "signed", "with-zeros", "broadcast-row"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)], ids=["None", "0", "1", "-1", "01"])
@pytest.mark.parametrize("keepdims", [False, True], ids=["flat", "keepdims"])
@pytest.mark.parametrize("return_sign", [False, True], ids=["nosign", "sign"])
def test_logsumexp_agrees_with_scipy(weights, axis, keepdims, return_sign):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 7)) * 4
    b = _weights(weights, x.shape, rng)
    got = lsm.logsumexp(x, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = scipy.special.logsumexp(x, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    got_value, want_value = (got[0], want[0]) if return_sign else (got, want)
    assert np.shape(got_value) == np.shape(want_value)
    np.testing.assert_allclose(got_value, want_value, rtol=1e-13, atol=1e-13, equal_nan=True)
    if return_sign:
        np.testing.assert_array_equal(got[1], want[1])
    reference = ref_logsumexp(x, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    if return_sign:
        assert_close(got[0], reference[0], F64)
        assert_close(got[1], reference[1], F64)
    else:
        assert_close(got, reference, F64)


@pytest.mark.parametrize(
    ("x", "b", "expected", "scipy_agrees"),
    [
        pytest.param([inf, 1.0], [0.0, 1.0], 1.0, True, id="b0-ignores-posinf"),
        pytest.param([nan, 1.0], [0.0, 1.0], 1.0, True, id="b0-ignores-nan"),
        pytest.param([-inf, 1.0], [0.0, 1.0], 1.0, True, id="b0-ignores-neginf"),
        pytest.param([inf, inf, 0.0], [1.0, -1.0, 1.0], nan, True, id="posinf-weights-cancel"),
        # lsm sums the weights at +inf (2 - 1 > 0): +inf; scipy computes inf - inf = NaN
        pytest.param([inf, inf, 0.0], [2.0, -1.0, 1.0], inf, False, id="posinf-weights-positive"),
        pytest.param([1.0, 2.0], [1.0, -1.0], nan, True, id="negative-sum-nan"),
        pytest.param([1.0, 1.0], [1.0, -1.0], -inf, True, id="zero-sum"),
        pytest.param([2.0, 1.0], [0.0, 0.0], -inf, True, id="all-weights-zero"),
    ],
)
def test_logsumexp_weight_semantics(x, b, expected, scipy_agrees):
    got = lsm.logsumexp(np.array(x), b=np.array(b))
    assert isinstance(got, np.float64)
    np.testing.assert_equal(got, expected)
    assert_close(got, ref_logsumexp(np.array(x), b=np.array(b)), F64)
    if scipy_agrees:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            want = scipy.special.logsumexp(np.array(x), b=np.array(b))
        np.testing.assert_equal(got, want)


@pytest.mark.parametrize(
    ("x", "b", "value", "sign"),
    [
        pytest.param([1.0, 2.0], [1.0, -1.0], np.log(np.e**2 - np.e), -1.0, id="negative"),
        pytest.param([1.0, 2.0], [1.0, 1.0], np.logaddexp(1.0, 2.0), 1.0, id="positive"),
        pytest.param([1.0, 1.0], [1.0, -1.0], -inf, 0.0, id="zero-sum"),
        pytest.param([inf, inf], [1.0, -2.0], inf, -1.0, id="posinf-negative-weight"),
        pytest.param([nan, 1.0], [1.0, 1.0], nan, nan, id="nan"),
        pytest.param([-inf, -inf], [1.0, 1.0], -inf, 0.0, id="all-neginf"),
    ],
)
def test_logsumexp_return_sign(x, b, value, sign):
    got_value, got_sign = lsm.logsumexp(np.array(x), b=np.array(b), return_sign=True)
    np.testing.assert_allclose(got_value, value, rtol=1e-15)
    np.testing.assert_equal(got_sign, sign)
    assert isinstance(got_value, np.float64) and isinstance(got_sign, np.float64)


def test_logsumexp_empty_sign_is_zero_unlike_scipy():
    """Documented difference: the sign of an empty sum is 0 in lsm; scipy reports -1."""
    value, sign = lsm.logsumexp(np.zeros(0), return_sign=True)
    assert value == -inf and sign == 0
    scipy_value, _ = scipy.special.logsumexp(np.zeros(0), return_sign=True)
    assert scipy_value == value  # the values agree; only the sign convention differs


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_logsumexp_tiny_weight_at_max_does_not_overflow(dtype):
    """Regression: rest / b_k overflowed to inf for a tiny weight at the maximum (scipy: 459.517)."""
    big = 1e200 if dtype == F64 else 1e20
    x = np.array([0.0, -1.0], dtype=dtype)
    b = np.array([1 / big, big], dtype=dtype)
    got = lsm.logsumexp(x, b=b)
    assert_close(got, ref_logsumexp(x, b=b), dtype)


# Regression: infinite weights at finite x gave A = R = inf, and log1p(R / A) = log1p(inf / inf)
# was NaN: logsumexp([1., 0.], b=[inf, inf]) was NaN; scipy gives +inf (-inf weights: +inf, sign -1).
@pytest.mark.parametrize("weight", [inf, -inf], ids=["posinf", "neginf"])
def test_logsumexp_infinite_weights_give_infinity(weight):
    x, b = np.array([1.0, 0.0]), np.array([weight, weight])
    value, sign = lsm.logsumexp(x, b=b, return_sign=True)
    with np.errstate(invalid="ignore", over="ignore"):
        want = scipy.special.logsumexp(x, b=b, return_sign=True)
    assert (value, sign) == (inf, np.sign(weight)) == want


# Regression: return_sign paired a NaN value with sign +1 (the sign of the larger of A and R,
# both infinite): logsumexp([1., -1.], b=[inf, -inf], return_sign=True) was (nan, 1.0).
def test_logsumexp_nan_result_has_nan_sign_with_infinite_weights():
    value, sign = lsm.logsumexp(np.array([1.0, -1.0]), b=np.array([inf, -inf]), return_sign=True)
    assert np.isnan(value)
    assert np.isnan(sign)


# --- where= -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
def test_where_broadcasts_and_matches_reference(dtype):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 5, 70)) * 3).astype(dtype)
    for where, axis in [
        (rng.random(70) < 0.5, -1),
        (rng.random((5, 1)) < 0.5, 1),
        (rng.random((4, 5, 70)) < 0.2, (0, 2)),
        (np.array(False), None),
        (np.array(True), 0),
    ]:
        for name, (func, ref) in SOFTMAX_FAMILY.items():
            got = func(x, axis=axis, where=where)
            assert_close(got, ref(x, axis=axis, where=where), dtype, f"{name} axis={axis}")
            assert not np.isnan(to_long(got)).any()
        assert_close(
            lsm.logsumexp(x, axis=axis, where=where), ref_logsumexp(x, axis=axis, where=where), dtype
        )


def test_where_fully_masked_rows_never_nan():
    x = np.array([[nan, inf, -inf], [-inf, -inf, -inf], [1.0, 2.0, 3.0]])
    where = np.zeros_like(x, dtype=bool)
    assert (lsm.log_softmax(x, where=where) == -inf).all()
    assert (lsm.softmax(x, where=where) == 0).all()
    assert (lsm.logsumexp(x, axis=1, where=where) == -inf).all()
    value, sign = lsm.logsumexp(x, axis=1, where=where, return_sign=True)
    assert (value == -inf).all() and (sign == 0).all()


def test_where_and_b_together():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 9))
    b = rng.uniform(0.5, 2.0, (5, 9))
    b[:, 0] = 0.0
    x[:, 0] = nan  # ignored through b == 0
    x[:, 1] = inf
    where = np.ones_like(x, dtype=bool)
    where[:, 1] = False  # ignored through where
    got = lsm.logsumexp(x, axis=1, b=b, where=where)
    assert np.isfinite(got).all()
    assert_close(got, ref_logsumexp(x, axis=1, b=b, where=where), F64)


# --- out= ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SOFTMAX_FAMILY))
@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
def test_out_is_written_and_returned(name, dtype):
    func, ref = SOFTMAX_FAMILY[name]
    x = np.random.default_rng(2).standard_normal((6, 9)).astype(dtype)
    out = np.full(x.shape, 7.0, dtype=dtype)
    returned = func(x, axis=0, out=out)
    assert returned is out
    assert_close(out, ref(x, axis=0), dtype)


IN_PLACE_LAYOUTS = ["contiguous", "fortran", "transposed", "strided", "negstride", "3d-transposed"]


def _in_place_operand(layout, dtype):
    """A fresh array of the given layout (a view into a larger buffer where the layout says so)."""
    rng = np.random.default_rng(4)
    base = (rng.standard_normal((40, 90)) * 4).astype(dtype)
    base[3, 5] = -inf
    if layout == "contiguous":
        return base
    if layout == "fortran":
        return np.asfortranarray(base)
    if layout == "transposed":
        return base.T
    if layout == "strided":
        return base[:, ::3]
    if layout == "negstride":
        return base[::-2, ::-1]
    return base.reshape(4, 10, 90).transpose(2, 1, 0)  # "3d-transposed"


@pytest.mark.parametrize("name", list(SOFTMAX_FAMILY))
@pytest.mark.parametrize(
    "layout", ["contiguous", "fortran", "transposed", "strided", "negstride", "3d-transposed"]
)
@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
def test_out_is_x_in_place(name, layout, dtype):
    func, ref = SOFTMAX_FAMILY[name]
    for axis in range(-_in_place_operand(layout, dtype).ndim, 0):
        x = _in_place_operand(layout, dtype)
        original = x.copy()
        # the same values in the same layout: vectorised sums may differ in the last bit
        # between layouts; log_softmax in place runs the very same kernel, softmax in place
        # exponentiates twice instead of rescaling kept exponentials (see lsm/cpu/_backend.py)
        expected = func(_in_place_operand(layout, dtype), axis=axis)
        returned = func(x, axis=axis, out=x)
        assert returned is x
        if name == "log_softmax" or dtype not in (F32, F64):  # 16-bit outputs never keep exps
            np.testing.assert_array_equal(x, expected, err_msg=f"axis={axis}")
        else:
            eps = np.finfo(dtype).eps
            np.testing.assert_allclose(x, expected, rtol=4 * eps, atol=4 * eps, err_msg=f"axis={axis}")
        assert_close(x, ref(original, axis=axis), dtype, f"axis={axis}")


@pytest.mark.parametrize("axis", [0, 1, None], ids=["0", "1", "None"])
@pytest.mark.parametrize("keepdims", [False, True], ids=["flat", "keepdims"])
def test_logsumexp_out(axis, keepdims):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 130))
    want = ref_logsumexp(x, axis=axis, keepdims=keepdims)
    out = np.full(want.shape, 7.0)
    returned = lsm.logsumexp(x, axis=axis, keepdims=keepdims, out=out)
    assert returned is out and isinstance(returned, np.ndarray)
    assert_close(out, want, F64)
    if want.ndim:  # a non-contiguous out of the same shape
        wide = np.full((*want.shape[:-1], 2 * want.shape[-1]), 7.0)
        strided = wide[..., ::2]
        assert lsm.logsumexp(x, axis=axis, keepdims=keepdims, out=strided) is strided
        assert_close(strided, want, F64)
        assert (wide[..., 1::2] == 7.0).all()


def test_logsumexp_out_with_return_sign():
    x = np.array([[1.0, 2.0], [3.0, 3.0]])
    b = np.array([[1.0, -1.0], [1.0, 1.0]])
    out = np.empty(2)
    value, sign = lsm.logsumexp(x, axis=1, b=b, return_sign=True, out=out)
    assert value is out
    assert_close(out, ref_logsumexp(x, axis=1, b=b, return_sign=True)[0], F64)
    np.testing.assert_array_equal(sign, [-1.0, 1.0])


@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_out_overlapping_input_is_rejected(name):
    func = getattr(lsm, name)
    buffer = np.arange(20.0)
    x = buffer[:10]
    out = buffer[5:15] if name != "logsumexp" else buffer[3:4].reshape(())
    with pytest.raises(ValueError, match="overlap"):
        func(x, axis=0, out=out)
    assert (buffer == np.arange(20.0)).all()


@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
def test_out_wrong_shape_dtype_kind_readonly(name):
    func = getattr(lsm, name)
    x = np.ones((3, 4))
    with pytest.raises(ValueError):
        func(x, out=np.empty((4, 3)))
    with pytest.raises(TypeError):
        func(x, out=np.empty((3, 4), dtype=np.float32))
    with pytest.raises(TypeError):
        func(x, out=[[0.0] * 4] * 3)
    readonly = np.empty((3, 4))
    readonly.setflags(write=False)
    with pytest.raises(ValueError):
        func(x, out=readonly)


# --- output dtype rules -------------------------------------------------------------------------

DTYPE_RULES = [
    (np.int8, F64),
    (np.int16, F64),
    (np.int32, F64),
    (np.int64, F64),
    (np.uint8, F64),
    (np.uint64, F64),
    (np.bool_, F64),
    (np.float16, F16),
    (BFLOAT16, BFLOAT16),
    (np.float32, F32),
    (np.float64, F64),
    (np.dtype(">f8"), F64),
    (np.dtype(">f4"), F32),
]


@pytest.mark.parametrize(
    ("in_dtype", "out_dtype"), DTYPE_RULES, ids=[np.dtype(d).str for d, _ in DTYPE_RULES]
)
def test_output_dtype_default(in_dtype, out_dtype):
    x = np.array([[0, 1, 2], [3, 1, 0]]).astype(in_dtype)
    xc = x.astype(out_dtype)
    assert_close(lsm.log_softmax(x), ref_log_softmax(xc), out_dtype)
    assert_close(lsm.softmax(x), ref_softmax(xc), out_dtype)
    assert_close(lsm.logsumexp(x, axis=1), ref_logsumexp(xc, axis=1), out_dtype)
    assert_close(lsm.logsumexp(x), ref_logsumexp(xc), out_dtype)


@pytest.mark.parametrize("wanted", [*DTYPES, "bfloat16"], ids=[*FLOAT_IDS, "bfloat16-str"])
@pytest.mark.parametrize("in_dtype", [np.int32, np.bool_, np.float16, np.float64], ids=dtype_id)
def test_output_dtype_override(in_dtype, wanted):
    x = np.array([[0.0, 1.5, 2.0, -3.0], [3.0, 1.0, 0.0, 7.0]]).astype(in_dtype)
    dtype = BFLOAT16 if wanted == "bfloat16" else np.dtype(wanted)
    xc = x.astype(dtype)  # lsm converts first, then computes in the requested dtype
    assert_close(lsm.log_softmax(x, dtype=wanted), ref_log_softmax(xc), dtype)
    assert_close(lsm.softmax(x, dtype=wanted, axis=0), ref_softmax(xc, axis=0), dtype)
    b = np.array([1.0, 2.0, 0.5, 1.0])
    assert_close(lsm.logsumexp(x, axis=1, dtype=wanted, b=b), ref_logsumexp(xc, axis=1, b=b), dtype)


@pytest.mark.parametrize("bad", [np.int64, np.complex128, "int32", np.bool_])
def test_dtype_override_must_be_a_supported_float(bad):
    with pytest.raises(TypeError):
        lsm.log_softmax(np.ones(3), dtype=bad)


@pytest.mark.parametrize(
    "x",
    [np.ones(3, dtype=np.complex128), np.array(["a", "b"]), np.array([1.0, None], dtype=object)],
    ids=["complex", "str", "object"],
)
@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_unsupported_input_dtype_is_a_type_error_naming_it(name, x):
    with pytest.raises(TypeError, match=x.dtype.name[:3]):
        getattr(lsm, name)(x)


# --- 0-d results --------------------------------------------------------------------------------


@pytest.mark.parametrize("in_dtype", [*DTYPES, np.dtype(np.int64), np.dtype(np.bool_)], ids=dtype_id)
def test_zero_d_results_are_numpy_scalars(in_dtype):
    dtype = result_dtype(in_dtype)
    x = np.array(1).astype(in_dtype)
    for axis in (-1, 0, None):
        for func, expected in ((lsm.log_softmax, 0.0), (lsm.softmax, 1.0), (lsm.logsumexp, 1.0)):
            got = func(x, axis=axis)
            assert isinstance(got, np.generic) and not isinstance(got, np.ndarray), type(got)
            assert got.dtype == dtype and got.shape == ()
            assert float(got) == expected
    value, sign = lsm.logsumexp(x, return_sign=True)
    assert isinstance(value, np.generic) and isinstance(sign, np.generic)
    assert isinstance(lsm.logsumexp(np.ones((2, 3)).astype(in_dtype)), np.generic)
    assert isinstance(lsm.logsumexp(x, keepdims=True), np.generic)
    with pytest.raises(np.exceptions.AxisError):
        lsm.log_softmax(x, axis=1)


def test_zero_d_with_out_returns_out():
    out = np.empty(())
    assert lsm.logsumexp(np.ones(4), out=out) is out
    assert out[()] == np.log(4.0) + 1.0
    out0 = np.empty(())
    assert lsm.softmax(np.array(3.0), out=out0) is out0 and out0[()] == 1.0


# --- accuracy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "columns"])
def test_accuracy_magnitude_1e4(dtype, axis):
    rng = np.random.default_rng(12)
    x = rng.uniform(-1e4, 1e4, (50, 400)).astype(dtype)
    x[:, 7] = 1e4  # many near-ties at the top
    x[:, 8] = np.nextafter(dtype.type(1e4), dtype.type(0))
    assert_close(lsm.log_softmax(x, axis=axis), ref_log_softmax(x, axis=axis), dtype)
    assert_close(lsm.softmax(x, axis=axis), ref_softmax(x, axis=axis), dtype)
    assert_close(lsm.logsumexp(x, axis=axis), ref_logsumexp(x, axis=axis), dtype)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("data", ["near-equal", "normal", "magnitude-1e4"])
def test_accuracy_row_of_a_million(dtype, data):
    rng = np.random.default_rng(13)
    n = 1_000_000
    if data == "near-equal":  # a sum of 1e6 terms of size ~1: a plain float32 sum loses digits
        x = rng.uniform(-0.01, 0.01, n)
    elif data == "normal":
        x = rng.standard_normal(n) * 3
    else:
        x = rng.uniform(-1e4, 1e4, n)
    x = x.astype(dtype)
    assert_close(lsm.logsumexp(x), ref_logsumexp(x), dtype, "logsumexp")
    assert_close(lsm.log_softmax(x), ref_log_softmax(x), dtype, "log_softmax")
    assert_close(lsm.softmax(x), ref_softmax(x), dtype, "softmax")


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_accuracy_columns_of_half_a_million(dtype):
    """The column kernel sums down 500,000 rows for each of its columns."""
    x = np.random.default_rng(14).uniform(-0.01, 0.01, (500_000, 2)).astype(dtype)
    assert_close(lsm.logsumexp(x, axis=0), ref_logsumexp(x, axis=0), dtype, "logsumexp")
    assert_close(lsm.log_softmax(x, axis=0), ref_log_softmax(x, axis=0), dtype, "log_softmax")
