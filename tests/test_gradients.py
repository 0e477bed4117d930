"""log_softmax_backward and softmax_backward: references, torch, finite differences, masks, errors."""

import importlib.util

import numpy as np
import pytest
from adversarial import BFLOAT16, DTYPES, adversarial_cases, dtype_id
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import assert_scaled_close, ref_backward

import lsm

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
FLOAT_IDS = [dtype_id(d) for d in DTYPES]
FORWARD = {True: lsm.log_softmax, False: lsm.softmax}
KINDS = pytest.mark.parametrize("log", [True, False], ids=["log_softmax", "softmax"])

# (shape, axis): rows short and long (blocked sums), columns (tiles), tuples, all axes, 1-d, 0-d
LAYOUTS = [
    ((6, 9), -1),
    ((3, 600), 1),
    ((5, 5, 70), 1),
    ((40, 3), 0),
    ((3, 4, 5), (0, 2)),
    ((3, 4, 5), (1, 2)),
    ((2, 3, 4), None),
    ((37,), 0),
    ((), -1),
]
LAYOUT_IDS = [f"{'x'.join(map(str, shape)) or '0d'}-axis{axis}" for shape, axis in LAYOUTS]


def _backward(backend, log):
    return backend.log_softmax_backward if log else backend.softmax_backward


def _inputs(shape, axis, dtype, log, mask=False, seed=0):
    """``(x, y, grad, where)``: logits, their forward output, an upstream gradient, a mask."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    where = None
    if mask:
        where = rng.random(shape) < 0.7
        if where.ndim >= 2:  # one group fully masked
            where[(0,) * (where.ndim - 1)] = False
    y = FORWARD[log](x, axis=axis, where=where)
    grad = rng.standard_normal(shape).astype(dtype)
    return x, y, grad, where


@KINDS
@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS, ids=LAYOUT_IDS)
def test_matches_reference(backend, log, dtype, shape, axis):
    _, y, grad, _ = _inputs(shape, axis, dtype, log)
    got = _backward(backend, log)(grad, y=y, axis=axis)
    expected, scale = ref_backward(grad, y, axis=axis, log=log)
    assert_scaled_close(got, expected, scale, dtype)


def _adversarial_params():
    return [
        pytest.param(case.array, case.axis, id=f"{dtype_id(dtype)}-{case.id}")
        for dtype in (np.float32, np.float64)
        for case in adversarial_cases(dtype)
    ]


@KINDS
@pytest.mark.parametrize(("x", "axis"), _adversarial_params())
def test_adversarial_forward_outputs(sweep_backend, log, x, axis):
    """NaN and infinities in y propagate as the formulas say; odd layouts and byte orders work."""
    y = FORWARD[log](x, axis=axis)
    grad = np.random.default_rng(0).standard_normal(np.shape(x)).astype(y.dtype)
    got = _backward(sweep_backend, log)(grad, y=y, axis=axis)
    expected, scale = ref_backward(grad, y, axis=axis, log=log)
    assert_scaled_close(got, expected, scale, y.dtype)


@KINDS
@pytest.mark.parametrize("dtype", DTYPES, ids=FLOAT_IDS)
@pytest.mark.parametrize(("shape", "axis"), [((5, 300), -1), ((4, 6, 70), 1), ((3, 4, 5), (0, 2))])
def test_masked_matches_reference(backend, log, dtype, shape, axis):
    _, y, grad, where = _inputs(shape, axis, dtype, log, mask=True)
    got = _backward(backend, log)(grad, y=y, axis=axis, where=where)
    expected, scale = ref_backward(grad, y, axis=axis, where=where, log=log)
    assert_scaled_close(got, expected, scale, dtype)
    assert np.all(got[~np.broadcast_to(where, got.shape)] == 0)


@KINDS
@pytest.mark.parametrize("axis", [-1, 0])
def test_fully_masked_groups_give_zero_gradients(backend, log, axis):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    where = np.zeros_like(x, dtype=bool)
    y = FORWARD[log](x, axis=axis, where=where)
    grad = np.array([[1.0, np.nan, np.inf], [-2.0, 3.0, 0.5]])
    got = _backward(backend, log)(grad, y=y, axis=axis, where=where)
    assert np.array_equal(got, np.zeros_like(x))


@KINDS
def test_mask_hides_non_finite_gradients_at_excluded_places(backend, log):
    x = np.array([[0.0, 1.0, 2.0, 3.0]])
    where = np.array([[True, False, True, True]])
    y = FORWARD[log](x, where=where)
    grad = np.array([[0.5, np.nan, -1.0, 2.0]])
    got = _backward(backend, log)(grad, y=y, where=where)
    expected, _ = ref_backward(np.nan_to_num(grad), y, where=where, log=log)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected.astype(np.float64), rtol=1e-14, atol=1e-15)


@KINDS
@pytest.mark.parametrize(("shape", "axis"), [((4, 7), -1), ((5, 3, 4), 1), ((3, 4, 5), (0, 2))])
@pytest.mark.parametrize("mask", [False, True], ids=["plain", "masked"])
def test_finite_differences(log, shape, axis, mask):
    """The gradient of ``L(x) = sum(g * f(x))`` against central differences in float64."""
    x, _, grad, where = _inputs(shape, axis, np.float64, log, mask=mask, seed=3)
    if mask:
        where[(0,) * (where.ndim - 1)] = True  # every group partly included: L is finite
    forward = FORWARD[log]
    y = forward(x, axis=axis, where=where)
    got = (lsm.log_softmax_backward if log else lsm.softmax_backward)(grad, y, axis=axis, where=where)

    def loss(values):
        out = forward(values, axis=axis, where=where)
        return np.sum(np.where(np.isfinite(out), grad * out, 0.0))

    step = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (loss(up) - loss(down)) / (2 * step)
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-7)


@needs_torch
@pytest.mark.heavy
@KINDS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("shape", "axis"), [((8, 1000), -1), ((6, 5, 70), 1), ((50, 3), 0)])
def test_matches_torch(backend, log, dtype, shape, axis):
    import torch

    x, y, grad, _ = _inputs(shape, axis, dtype, log, seed=1)
    tx = torch.tensor(x, requires_grad=True)
    (torch.log_softmax if log else torch.softmax)(tx, axis).backward(torch.tensor(grad))
    got = _backward(backend, log)(grad, y=y, axis=axis)
    _, scale = ref_backward(grad, y, axis=axis, log=log)
    assert_scaled_close(got, tx.grad.numpy().astype(np.longdouble), 2 * scale, dtype, what="vs torch")


@needs_torch
@pytest.mark.heavy
@KINDS
def test_masked_matches_torch_masked_fill(backend, log):
    """torch's equivalent of ``where``: masked_fill(-inf) before the forward call, and no upstream
    gradient at the masked outputs (they are constants). masked_fill passes no gradient to the
    masked logits, so a fully masked group is zero in torch too, although its outputs are NaN."""
    import torch

    x, y, grad, where = _inputs((7, 300), -1, np.float64, log, mask=True, seed=2)
    tx = torch.tensor(x, requires_grad=True)
    filled = tx.masked_fill(~torch.tensor(where), -torch.inf)
    out = (torch.log_softmax if log else torch.softmax)(filled, -1)
    out.backward(torch.tensor(np.where(where, grad, 0.0)))
    got = _backward(backend, log)(grad, y=y, where=where)
    assert not where[0].any() and torch.isnan(out[0]).all()
    np.testing.assert_allclose(got, tx.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_seed_example_gradient_reaches_the_small_entry():
    x = np.array([-999.0, 1.0, 2.0, 5.0, 6.0])
    grad = np.array([1.0, 0.0, 0.0, 0.0, 0.0])  # d log_softmax(x)[0] / dx
    got = lsm.log_softmax_backward(grad, lsm.log_softmax(x))
    p = np.exp(x - np.logaddexp.reduce(x))
    np.testing.assert_allclose(got, np.eye(5)[0] - p, rtol=1e-15, atol=1e-300)
    assert got[0] == 1.0


@KINDS
def test_out_and_in_place(log):
    _, y, grad, _ = _inputs((6, 300), -1, np.float32, log)
    backward = lsm.log_softmax_backward if log else lsm.softmax_backward
    expected = backward(grad, y)
    out = np.empty_like(y)
    assert backward(grad, y, out=out) is out
    assert np.array_equal(out, expected)
    for alias in ("grad", "y"):
        g, v = grad.copy(), y.copy()
        target = g if alias == "grad" else v
        assert backward(g, v, out=target) is target
        assert np.array_equal(target, expected), alias


@KINDS
def test_inputs_not_modified(log):
    _, y, grad, where = _inputs((5, 300), -1, np.float64, log, mask=True)
    copies = y.copy(), grad.copy(), where.copy()
    (lsm.log_softmax_backward if log else lsm.softmax_backward)(grad, y, where=where)
    for original, copy in zip((y, grad, where), copies, strict=True):
        assert np.array_equal(original, copy, equal_nan=True)


def test_dtype_promotion():
    y = lsm.log_softmax(np.arange(4.0, dtype=np.float32))
    assert lsm.log_softmax_backward(np.ones(4, dtype=np.float64), y).dtype == np.float64
    assert lsm.log_softmax_backward(np.ones(4, dtype=np.float16), y).dtype == np.float32
    assert lsm.log_softmax_backward(np.ones(4, dtype=np.int64), y).dtype == np.float64
    half = lsm.softmax(np.arange(4.0).astype(BFLOAT16))
    assert lsm.softmax_backward(np.ones(4, dtype=BFLOAT16), half).dtype == BFLOAT16


@pytest.mark.parametrize("func", [lsm.log_softmax_backward, lsm.softmax_backward], ids=lambda f: f.__name__)
def test_errors(func):
    y = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"'grad' has shape \(3, 5\) but 'y' has shape \(3, 4\)"):
        func(np.zeros((3, 5)), y)
    with pytest.raises(TypeError, match="unsupported dtype complex128 for argument 'grad'"):
        func(np.zeros((3, 4), dtype=complex), y)
    with pytest.raises(np.exceptions.AxisError):
        func(y, y, axis=2)
    with pytest.raises(ValueError, match="'out' has shape"):
        func(y, y, out=np.zeros(3))
    with pytest.raises(ValueError, match="overlaps"):
        big = np.zeros((3, 8))
        func(big[:, :4], y, out=big[:, 1:5])
    with pytest.raises(TypeError, match="'where' must be a boolean"):
        func(y, y, where=np.ones((3, 4)))


# --- properties -----------------------------------------------------------------------------


@st.composite
def _rows(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40))
    finite = st.floats(-30, 30, width=32 if dtype == np.float32 else 64)
    x = draw(hnp.arrays(dtype, shape, elements=finite))
    grad = draw(hnp.arrays(dtype, shape, elements=finite))
    return x, grad


@settings(deadline=None, max_examples=40)
@given(_rows(), st.booleans())
def test_gradients_sum_to_zero(data, log):
    """Both Jacobians have rows summing to zero (shifting every logit changes nothing)."""
    x, grad = data
    y = FORWARD[log](x)
    got = (lsm.log_softmax_backward if log else lsm.softmax_backward)(grad, y)
    _, scale = ref_backward(grad, y, log=log)
    eps = np.finfo(x.dtype).eps
    bound = 32 * eps * scale.sum(axis=-1).astype(np.float64) + np.finfo(x.dtype).tiny
    assert np.all(np.abs(got.astype(np.float64).sum(axis=-1)) <= bound)
