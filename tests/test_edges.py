"""The numerical promises at the edges where they could fail (issue 21).

Each test here holds a documented promise where a plausible slip in the kernels would break it
and the broad tests would not notice (``docs/promises.md`` lists every promise with its test,
``docs/mutations.md`` the mutations each test catches):

- ``logsumexp`` keeps full *relative* accuracy when one term dominates, over the whole range
  where the small terms still change ``1 + q`` (the absolute tolerance of ``assert_close``,
  ``4 eps (1 + |r|)``, cannot see a lost ``log1p`` there), and so does ``log_softmax`` at the
  maximum;
- blocked sums stay compensated on a float32 row of 2^26 elements and columns of 2^20;
- an ``out=`` that shares a buffer with an input without overlapping it is accepted (on the host
  element by element; on a GPU by byte ranges, where interleaved views count as overlapping);
- weights of 0 exclude +inf, NaN and large values from ``logsumexp``;
- a loss term whose coefficient is 0 counts as 0 even at a -inf logit; ``label_smoothing`` takes
  both ends of [0, 1]; a group with +inf or NaN has NaN loss and gradient; float16 per-item
  losses are summed in float64 past float16's largest value;
- every GPU kernel family on integer-valued floats (maxima tied within and across split-row
  chunks) and on groups whose values are all negative (the identity of a maximum is -inf, not 0).

Shared bodies take the ``backend`` fixture and stay within the simulator's element budget.
"""

import math

import numpy as np
import pytest
import scipy.special
from reference import (
    BFLOAT16,
    assert_close,
    assert_loss_close,
    assert_relative,
    assert_scaled_close,
    ref_backward,
    ref_cross_entropy,
    ref_log_softmax,
    ref_logsumexp,
    ref_nll_loss,
    ref_softmax,
    to_long,
)
from test_cuda_paths import PATHS

import lsm
from conftest import SIM_CONFIG
from lsm.cpu._stats import COLUMN_BLOCK, ROW_BLOCK

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
nan, inf = np.nan, np.inf


def heavy(dtype):
    """A dtype case that the simulator skips (the kernels' paths do not depend on it there)."""
    return pytest.param(dtype, marks=pytest.mark.heavy, id=str(dtype))


# --- one dominant term --------------------------------------------------------------------------
# logsumexp(x) = m + log1p(q), q = sum_j b_j exp(x_j - m) over the terms below the maximum m. While
# q lies between eps and 1 it changes 1 + q, and log(1 + q) formed from the rounded 1 + q is off by
# up to eps / q relative: only a true log1p keeps the result's relative accuracy.

# layout -> (groups, group length, axis): short rows (chunks of them on the host), rows longer than
# the host's short rows (the GPU's block path under the simulator's tunables), columns, and a few
# rows long enough for the GPU's split path
DOMINANT_LAYOUTS = {
    "short-rows": (24, 4, -1),
    "rows": (12, 80, -1),
    "columns": (24, 40, 0),
    "few-long-rows": (4, 40, -1),
}


def dominant_groups(dtype, groups, n, axis):
    """``(x, b, where)``: ``groups`` groups of ``n + 1`` values along ``axis``.

    Each group holds its maximum 0 once, one term at each of ``-t``, ``-t - 1.5`` and ``-t - 4``
    and the rest 5 to 30 below ``-t`` (``t`` from 0.25 to past ``-log(eps)``, where
    ``1 + exp(-t)`` rounds to 1), at shuffled places, and a last element 3.0 that ``b`` (weight
    0) and ``where`` (False) exclude. ``b`` is 1 at the maximum, -0.5 at ``-t - 1.5`` and
    between 0.5 and 2 elsewhere, so the weighted sum stays dominated by the maximum.
    """
    rng = np.random.default_rng(0)
    t = np.linspace(0.25, 1.05 * -math.log(np.finfo(dtype).eps), groups)
    gaps = np.concatenate([[0.0, 0.0, 1.5, 4.0], rng.uniform(5.0, 30.0, max(0, n - 4))])[:n]
    x = -(t[:, None] + gaps)
    x[:, 0] = 0.0
    b = rng.uniform(0.5, 2.0, x.shape)
    b[:, 0], b[:, 2] = 1.0, -0.5
    order = rng.permuted(np.tile(np.arange(n), (groups, 1)), axis=1)
    x, b = np.take_along_axis(x, order, axis=1), np.take_along_axis(b, order, axis=1)
    x = np.concatenate([x, np.full((groups, 1), 3.0)], axis=1).astype(dtype)
    b = np.concatenate([b, np.zeros((groups, 1))], axis=1)
    where = np.ones(x.shape, dtype=bool)
    where[:, -1] = False
    if axis == 0:
        return x.T.copy(), b.T.copy(), where.T.copy()
    return x, b, where


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
@pytest.mark.parametrize("layout", list(DOMINANT_LAYOUTS))
def test_one_dominant_term_keeps_relative_accuracy(backend, dtype, layout):
    groups, n, axis = DOMINANT_LAYOUTS[layout]
    x, b, where = dominant_groups(dtype, groups, n, axis)
    plain = x[:-1] if axis == 0 else x[:, :-1]  # without the excluded element

    def check(got, reference, what):
        assert_close(got, reference, dtype, what)
        assert_relative(got, reference, dtype, what)

    check(backend.logsumexp(plain, axis=axis), ref_logsumexp(plain, axis=axis), "logsumexp")
    reference = ref_logsumexp(x, axis=axis, b=b.astype(dtype))
    check(backend.logsumexp(x, axis=axis, b=b), reference, "logsumexp with b")
    reference = ref_logsumexp(x, axis=axis, where=where)
    check(backend.logsumexp(x, axis=axis, where=where), reference, "logsumexp with where")
    # log_softmax at the maximum is -log1p(q)
    for values, mask in ((plain, None), (x, where)):
        got = backend.log_softmax(values, axis=axis, where=mask)
        reference = ref_log_softmax(values, axis=axis, where=mask)
        assert_close(got, reference, dtype, "log_softmax")
        check(got[values == 0], reference[values == 0], "log_softmax at the maximum")


# the lone maximum 0 in one chunk, the rest in another: the result, about e^-31.5, is all in the
# second chunk's partial, whose maximum lies 31.7 below the first's
CHUNKED_DOMINANT = np.array([0.0, -31.669172932330827, -33.169172932330824])


def test_dask_chunked_merge_keeps_relative_accuracy():
    """A Dask graph that splits the reduced axis merges its chunks' ``(m, log(S e^-m))`` as
    ``lsm.streaming`` merges states: the second chunk's term is ``e^(m_2 - m) e^l_2``, not the
    exponential of ``l_2 + m_2 - m`` rounded (up to 31 ulps off here, all of the result's error)."""
    da = pytest.importorskip("dask.array")
    x = CHUNKED_DOMINANT
    for chunks in ((1, 2), (2, 1), (1, 1, 1)):
        chunked = da.from_array(x, chunks=(chunks,))
        assert_relative(lsm.logsumexp(chunked).compute(), ref_logsumexp(x), F64, "logsumexp")
        where = np.array([True, True, True])
        assert_relative(lsm.logsumexp(chunked, where=where).compute(), ref_logsumexp(x), F64, "where")
        got, reference = lsm.log_softmax(chunked).compute()[0], ref_log_softmax(x)[0]
        assert_relative(got, reference, F64, "log_softmax at the maximum")


@pytest.mark.parametrize(
    "b",
    [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, -0.5], [1.0, -1.0, 1.0, -0.5], [-1.0, 1.0, -2.0, 0.5]],
    ids=["positive", "negative-below", "negative-in-both-chunks", "negative-on-top"],
)
def test_dask_chunked_weighted_merge_keeps_relative_accuracy(b):
    """With weights, a Dask graph that splits the reduced axis merges the sums of the positive and
    of the negative weights apart, each as ``lsm.streaming`` merges states, then takes
    ``log|S+ - S-|`` as ``m + log1p(r)``: a result near 0 keeps its relative accuracy whichever
    part holds the maximum (where each chunk's ``log|S|`` rounded to one float lost up to 31 ulps
    of it)."""
    da = pytest.importorskip("dask.array")
    x, b = np.append(CHUNKED_DOMINANT, -32.5), np.array(b)
    value, sign = ref_logsumexp(x, b=b, return_sign=True)
    for chunks in ((1, 3), (2, 2), (3, 1), (1, 1, 1, 1)):
        got, got_sign = lsm.logsumexp(da.from_array(x, chunks=(chunks,)), b=b, return_sign=True)
        assert_relative(got.compute(), value, F64, f"logsumexp with b, chunks {chunks}")
        assert got_sign.compute() == sign


def test_zero_weights_ignore_infinities_nan_and_large_values(backend):
    """Elements with ``b == 0`` take no part at all, even at +inf, NaN or a value 10,000 above the
    rest (which, let into the maximum, would shift every other term to 0)."""
    x = np.array([[inf, 1.0, 2.0], [nan, 1.0, 2.0], [-inf, 1.0, 2.0], [1e4, 0.3, 1.7], [1.0, 2.0, inf]])
    b = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [-1.0, 1.0, 0.0]])
    value, sign = backend.logsumexp(x, axis=1, b=b, return_sign=True)
    assert np.isfinite(value).all()
    reference, ref_sign = ref_logsumexp(x, axis=1, b=b, return_sign=True)
    assert_close(value, reference, F64, "logsumexp")
    assert_close(sign, ref_sign, F64, "sign")


@pytest.mark.parametrize("dtype", [F16, BFLOAT16, F32, F64], ids=str)
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "columns"])
def test_nan_with_its_sign_bit_set_poisons_the_group(backend, dtype, axis):
    """A NaN whose sign bit is set sorts below every number where lsm takes the maximum through
    order-preserving integer keys, so it never becomes the maximum: the sums must still carry it
    into every output of its group (and a mask must still hide it)."""
    x = np.array([[1.0, 2.0, 0.5, -1.0], [0.0, -3.0, 2.5, 1.0], [4.0, 1.0, -2.0, 0.0]])
    x[0, 2] = x[2, 3] = np.copysign(np.nan, -1.0)
    x = x.astype(dtype)
    where = np.ones(x.shape, dtype=bool)
    where[2, 3] = False
    if axis == 0:
        x, where = x.T.copy(), where.T.copy()
    assert np.signbit(to_long(x)[np.isnan(to_long(x))]).all()
    assert_close(backend.log_softmax(x, axis=axis), ref_log_softmax(x, axis=axis), dtype, "log_softmax")
    got = backend.softmax(x, axis=axis, where=where)
    assert_close(got, ref_softmax(x, axis=axis, where=where), dtype, "softmax with where")
    got = backend.logsumexp(x, axis=axis, where=where)
    assert_close(got, ref_logsumexp(x, axis=axis, where=where), dtype, "logsumexp with where")


def test_weights_that_cancel_in_working_precision_give_a_zero_sum(backend):
    """``exp(-2^-60)`` rounds to 1, so a term just below the maximum cancels the maximum's weight
    exactly: a zero sum, ``(-inf, 0)`` with ``return_sign`` (and -inf without), as scipy says, not
    a sign of +-1 beside -inf."""
    tiny = 2.0**-60
    x = np.array([[0.0, -tiny, -inf], [0.0, -tiny, -2 * tiny], [5.0, 5.0, 1.0]])
    b = np.array([[1.0, -1.0, 1.0], [2.0, -1.0, -1.0], [1.0, -1.0, 0.0]])
    value, sign = backend.logsumexp(x, axis=1, b=b, return_sign=True)
    assert np.array_equal(value, [-inf] * 3) and np.array_equal(sign, [0.0] * 3)
    assert np.array_equal(scipy.special.logsumexp(x, axis=1, b=b, return_sign=True), (value, sign))
    assert np.array_equal(backend.logsumexp(x, axis=1, b=b), [-inf] * 3)


# --- long groups --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["row", "columns"])
def test_float32_sums_stay_compensated_over_long_groups(layout):
    """A float32 row of 2^26 elements (256 MB, about a second) and columns of 2^20.

    The input repeats one pattern per block of the kernels' blocked sums (``ROW_BLOCK`` row
    elements, ``COLUMN_BLOCK`` column elements), so every block sum is the same float32 number and
    a plain running total of them drifts by thousands of eps in one direction; the compensated
    total stays within the contract. The exact result is that of the pattern, times the number of
    repeats.
    """
    rng = np.random.default_rng(3)
    if layout == "row":
        pattern, repeats, axis = rng.uniform(-3.0, 0.0, ROW_BLOCK), 2**18, -1
        pattern[0] = 1.0
        x = np.tile(pattern.astype(F32), repeats)
    else:
        pattern, repeats, axis = rng.uniform(-3.0, 0.0, (COLUMN_BLOCK, 4)), 2**15, 0
        pattern[0] = 1.0
        x = np.tile(pattern.astype(F32), (repeats, 1))
    exact = to_long(pattern.astype(F32))
    top = exact.max(axis=0)
    reference = top + np.log(repeats * np.exp(exact - top).sum(axis=0))
    assert_close(lsm.logsumexp(x, axis=axis), reference, F32)


# --- out= in the same buffer as an input --------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["log_softmax", "softmax", "logsumexp", "log_softmax_backward", "cross_entropy"]
)
@pytest.mark.parametrize("layout", ["halves", "halves-out-first", "interleaved"])
def test_out_sharing_a_buffer_with_the_input_without_overlap(backend, name, layout):
    """The input and ``out`` (``grad_out``) are the two halves of one buffer (whose byte ranges
    touch, in either order), or its even and odd columns. Disjoint views are legal; a GPU judges
    by byte ranges, so it refuses interleaved views (whose ranges meet), as documented."""
    values = np.random.default_rng(4).standard_normal((4, 12) if layout == "interleaved" else (8, 6))
    buffer = backend.move(values)
    if layout == "halves":
        data, free, host = buffer[:4], buffer[4:], values[:4]
    elif layout == "halves-out-first":
        data, free, host = buffer[4:], buffer[:4], values[4:]
    else:
        data, free, host = buffer[:, ::2], buffer[:, 1::2], values[:, ::2]
    y = lsm.log_softmax(host)
    target = np.array([0, 2, 1, 5])

    def call():
        if name == "logsumexp":
            return backend.logsumexp(data, axis=1, out=free[:, 0])
        if name == "log_softmax_backward":
            return backend.log_softmax_backward(data, y=y, out=free)
        if name == "cross_entropy":
            return backend.cross_entropy(data, target=target, return_grad=True, grad_out=free)[1]
        return getattr(backend, name)(data, out=free)

    if layout == "interleaved" and backend.gpu:
        with pytest.raises(ValueError, match="overlaps an input"):
            call()
        return
    got = call()
    if name == "log_softmax_backward":
        assert_scaled_close(got, *ref_backward(host, y), F64)
    elif name == "cross_entropy":
        _, grad, scale = ref_cross_entropy(host, target)
        assert_scaled_close(got, grad, scale, F64)
    else:
        reference = {"log_softmax": ref_log_softmax, "softmax": ref_softmax, "logsumexp": ref_logsumexp}
        assert_close(got, reference[name](host, axis=1), F64)
    np.testing.assert_array_equal(backend.to_numpy(data), host)  # the input is intact


# --- zero coefficients at -inf logits -----------------------------------------------------------


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the simulator's NumPy scalars: 0 * inf
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "columns"])
def test_zero_coefficient_at_a_neginf_logit_counts_as_zero(backend, axis):
    """Class 3 has weight 0 and a -inf logit in every item: every term of it has coefficient 0
    (with label smoothing, with class-index and with probability targets), so it contributes 0
    to the loss and its gradient, never ``0 * -inf = NaN``; the same in ``nll_loss``."""
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((6, 5))
    logits[:, 3] = -inf
    weight = np.array([1.0, 0.5, 2.0, 0.0, 1.5])
    target = np.array([3, 0, 3, 1, 2, 4])
    probs = rng.dirichlet(np.ones(5), 6)
    if axis == 0:
        logits, probs = logits.T.copy(), probs.T.copy()
    for labels, smoothing in ((target, 0.0), (target, 0.2), (probs, 0.0), (probs, 0.2)):
        options = {"axis": axis, "weight": weight, "label_smoothing": smoothing}
        loss, grad = backend.cross_entropy(
            logits, target=labels, reduction="none", return_grad=True, **options
        )
        ref_loss, ref_grad, scale = ref_cross_entropy(logits, labels, reduction="none", **options)
        assert np.isfinite(loss).all() and np.isfinite(grad).all()
        assert_loss_close(loss, ref_loss, F64)
        assert_scaled_close(grad, ref_grad, scale, F64)
    logp = lsm.log_softmax(logits, axis=axis)
    loss = backend.nll_loss(logp, target=target, axis=axis, weight=weight, reduction="none")
    assert np.isfinite(loss).all()
    assert_loss_close(loss, ref_nll_loss(logp, target, axis=axis, weight=weight, reduction="none"), F64)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the simulator's NumPy scalars: inf - inf
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "columns"])
def test_label_smoothing_at_its_bounds(backend, axis):
    """``label_smoothing`` takes both ends of [0, 1]: at 1 every class gets ``w_c / C``, whatever
    the targets (a -inf logit then makes the loss +inf, with a finite gradient)."""
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((5, 4)) * 3
    target = np.array([0, 3, 1, 1, 2])
    weight = rng.uniform(0.5, 2.0, 4)
    if axis == 0:
        logits = logits.T.copy()
    for smoothing in (0.0, 1.0):
        options = {"axis": axis, "weight": weight, "label_smoothing": smoothing, "reduction": "sum"}
        loss, grad = backend.cross_entropy(logits, target=target, return_grad=True, **options)
        ref_loss, ref_grad, scale = ref_cross_entropy(logits, target, **options)
        assert_loss_close(loss, ref_loss, F64)
        assert_scaled_close(grad, ref_grad, scale, F64)
    logits[0, 0] = -inf  # class 0 of item 0, in either layout
    options = {"axis": axis, "label_smoothing": 1.0, "reduction": "none"}
    loss, grad = backend.cross_entropy(logits, target=target, return_grad=True, **options)
    assert np.isposinf(loss[0]) and np.isfinite(loss[1:]).all() and np.isfinite(grad).all()


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the simulator's NumPy scalars
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "columns"])
def test_loss_of_a_group_with_posinf_or_nan_is_nan(backend, axis):
    """A group containing NaN or +inf gives NaN loss and gradient (the other groups are finite),
    with class indices and with probabilities."""
    logits = np.random.default_rng(9).standard_normal((4, 5))
    logits[1, 2], logits[2, 0] = inf, np.nan
    probs = np.full((4, 5), 0.2)
    if axis == 0:
        logits, probs = logits.T.copy(), probs.T.copy()
    for target in (np.array([0, 1, 2, 3]), probs):
        loss, grad = backend.cross_entropy(
            logits, target=target, axis=axis, reduction="none", return_grad=True
        )
        grad = np.moveaxis(grad, axis, -1)
        assert np.isnan(loss[1:3]).all() and np.isnan(grad[1:3]).all()
        assert np.isfinite(loss[[0, 3]]).all() and np.isfinite(grad[[0, 3]]).all()


def test_float16_losses_are_summed_in_float64(backend):
    """The mean of 20,000 float16 per-item losses of about 4: their sum is past float16's largest
    value (65,504), so it must be formed in float64 (and the mean rounded once to float16)."""
    shape = (20_000, 4)
    if backend.max_elements is not None and backend.max_elements < math.prod(shape):
        pytest.skip(f"{backend.name}: needs {math.prod(shape)} elements, over this backend's budget")
    rng = np.random.default_rng(10)
    logits = (rng.standard_normal(shape) * 4).astype(F16)
    target = rng.integers(0, 4, shape[0])
    total = ref_cross_entropy(logits, target, reduction="sum")[0]
    assert total > np.finfo(F16).max  # the edge
    loss = backend.cross_entropy(logits, target=target)
    assert np.isfinite(loss)
    assert_loss_close(loss, total / shape[0], F16)


@pytest.mark.parametrize("func", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "columns"])
def test_target_equal_to_the_class_count_is_out_of_range(backend, func, axis):
    """Class indices run from 0 to ``C - 1``: ``C`` itself is out of range, named with its
    position in the whole target (on Dask, in a later chunk than the first)."""
    logits = np.zeros((4, 5)) if axis == -1 else np.zeros((5, 4))
    target = np.array([0, 4, 1, 5])
    with pytest.raises(IndexError, match=r"target 5 at position \(3,\) is out of range for 5 classes"):
        getattr(backend, func)(logits, target=target, axis=axis)


# --- every GPU kernel family at ties and on negative groups -------------------------------------


@pytest.fixture
def gpu_tunables(backend, monkeypatch):
    """The simulator's tunables on a real GPU as well, so that the shapes of ``PATHS`` take their
    kernel family there too (the simulator run sets them for every test)."""
    if backend.gpu:
        from lsm.cuda import _config

        for name, value in SIM_CONFIG.items():
            monkeypatch.setattr(_config, name, value)


@pytest.mark.filterwarnings("ignore:Grid size")  # a real GPU warns about the tiny grids
@pytest.mark.usefixtures("gpu_tunables")
@pytest.mark.parametrize("dtype", [heavy(F16), F32, heavy(F64)], ids=str)
@pytest.mark.parametrize("data", ["tied-integers", "all-negative"])
@pytest.mark.parametrize(("shape", "axis", "path"), PATHS)
def test_kernel_paths_at_tied_maxima_and_negative_groups(backend, shape, axis, path, data, dtype):
    """Integer values from -3 to 3 tie at the maximum within and across the split path's chunks
    (whose merge must add the counts of tied maxima); values of -50 +- 1 leave no element at 0, so
    a maximum that starts from 0 instead of -inf (in idle lanes, say) shows."""
    rng = np.random.default_rng(7)
    if data == "tied-integers":
        x = rng.integers(-3, 4, shape).astype(dtype)
    else:
        x = (rng.uniform(-51.0, -49.0, shape)).astype(dtype)
    where = rng.random(shape) < 0.9
    b = rng.integers(1, 4, shape).astype(dtype)
    assert_close(backend.log_softmax(x, axis=axis), ref_log_softmax(x, axis=axis), dtype, "log_softmax")
    got = backend.softmax(x, axis=axis, where=where)
    assert_close(got, ref_softmax(x, axis=axis, where=where), dtype, "softmax")
    assert_close(backend.logsumexp(x, axis=axis), ref_logsumexp(x, axis=axis), dtype, "logsumexp")
    value, sign = backend.logsumexp(x, axis=axis, b=b, where=where, return_sign=True)
    reference, ref_sign = ref_logsumexp(x, axis=axis, b=b, where=where, return_sign=True)
    assert_close(value, reference, dtype, "logsumexp with b and where")
    assert_close(sign, ref_sign, dtype, "sign")
