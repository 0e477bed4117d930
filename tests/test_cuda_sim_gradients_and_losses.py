"""The gradients and losses on device arrays, in the CUDA simulator run: what only the GPU path
has (the shared test bodies check the numerical contract). Out-of-range targets and bad weights
found by the device-side checks, in place and scattered outputs, result kinds, conversions."""

import numpy as np
import pytest
from test_cuda_sim import device, host

import lsm

pytestmark = pytest.mark.cuda_sim


@pytest.fixture(scope="module")
def cuda():
    from numba import cuda

    return cuda


@pytest.mark.parametrize("func", [lsm.cross_entropy, lsm.nll_loss], ids=lambda f: f.__name__)
@pytest.mark.parametrize("target_dtype", [np.int64, np.int32, np.int16])
def test_target_out_of_range_names_value_and_position(cuda, func, target_dtype):
    """The first offending position (in C order), found by the device check, as on the CPU."""
    logits = device(cuda, np.zeros((3, 4)))
    target = np.array([0, 4, 7], dtype=target_dtype)
    with pytest.raises(IndexError, match=r"target 4 at position \(1,\) is out of range for 4 classes"):
        func(logits, device(cuda, target))
    columns = device(cuda, np.zeros((2, 4, 3)))  # the column kernels' layout, a 2-d target
    target = np.array([[0, -100, 1], [0, -1, 9]], dtype=target_dtype)
    with pytest.raises(IndexError, match=r"target -100 at position \(0, 1\)"):
        func(columns, device(cuda, target), axis=1, ignore_index=0)
    with pytest.raises(IndexError, match=r"target -1 at position \(1, 1\)"):
        func(columns, device(cuda, target), axis=1)
    strided = np.array([0, 99, 1, 5, 2, 99])[::2]  # [0, 1, 2] viewed with a stride: all valid
    assert np.isfinite(host(func(logits, device(cuda, strided))))


def test_the_first_bad_target_of_many_is_found(cuda):
    """The one-block check: each thread keeps its own first bad position over a stride of the
    items (more items than the block has threads), the block takes the smallest; the total
    weight (the mean's denominator) summed by the same threads matches the host's."""
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((100, 5))
    target = rng.integers(0, 5, 100)
    weight = rng.random(5)
    expected = lsm.cross_entropy(logits, target, weight=weight)
    found = host(lsm.cross_entropy(device(cuda, logits), device(cuda, target), weight=device(cuda, weight)))
    np.testing.assert_allclose(found, expected, rtol=1e-13)
    target[[99, 70, 41]] = [9, -3, 5]  # threads 3, 6 and 9 of a 32-thread block (SIM_CONFIG)
    with pytest.raises(IndexError, match=r"target 5 at position \(41,\)"):
        lsm.cross_entropy(device(cuda, logits), device(cuda, target))


@pytest.mark.parametrize("func", [lsm.cross_entropy, lsm.nll_loss], ids=lambda f: f.__name__)
def test_bad_weights_are_found_on_the_device(cuda, func):
    logits, target = device(cuda, np.zeros((3, 4))), device(cuda, np.array([0, 1, 2]))
    for bad in ([1.0, -1.0, 1.0, 1.0], [1.0, np.nan, 1.0, 1.0], [np.inf, 1.0, 1.0, 1.0]):
        with pytest.raises(ValueError, match=r"'weight' must be finite and non-negative \(1 entries"):
            func(logits, target, weight=device(cuda, np.array(bad)))
    with pytest.raises(ValueError, match=r"'weight' must have shape \(4,\)"):
        func(logits, target, weight=device(cuda, np.ones(3)))


def test_target_errors_on_the_device(cuda):
    logits = device(cuda, np.zeros((3, 4)))
    with pytest.raises(TypeError, match="integer class indices or floating probabilities, got dtype bool"):
        lsm.cross_entropy(logits, device(cuda, np.array([True, False, True])))
    with pytest.raises(ValueError, match=r"must have shape \(3,\) \(the input's shape without axis 1\)"):
        lsm.cross_entropy(logits, device(cuda, np.zeros(4, dtype=int)))
    with pytest.raises(ValueError, match=r"'target' has shape \(3,\), expected \(3, 4\)"):
        lsm.cross_entropy(logits, device(cuda, np.zeros(3)))
    with pytest.raises(TypeError, match="integer class indices, got dtype float64"):
        lsm.nll_loss(logits, device(cuda, np.zeros(3)))
    with pytest.raises(ValueError, match="at least one dimension"):
        lsm.cross_entropy(device(cuda, np.array(1.0)), device(cuda, np.array(0)))
    with pytest.raises(ValueError, match="'grad_out' has shape"):
        lsm.cross_entropy(logits, device(cuda, np.zeros(3, dtype=int)), return_grad=True, grad_out=logits[:2])


@pytest.mark.parametrize(("shape", "axis"), [((4, 40), -1), ((3, 5, 6), 1)], ids=["rows", "columns"])
def test_gradient_written_over_the_logits(cuda, shape, axis):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    target = rng.integers(0, shape[axis], size=np.delete(np.array(shape), axis % len(shape)))
    expected_loss, expected_grad = lsm.cross_entropy(x, target, axis, return_grad=True, label_smoothing=0.1)
    work = device(cuda, x)
    loss, grad = lsm.cross_entropy(
        work, device(cuda, target), axis, return_grad=True, grad_out=work, label_smoothing=0.1
    )
    assert grad is work
    np.testing.assert_allclose(host(loss), expected_loss, rtol=1e-14)
    np.testing.assert_allclose(host(work), expected_grad, rtol=1e-13, atol=1e-16)


def test_gradient_into_a_scattered_grad_out(cuda):
    """A grad_out whose strides do not fit the canonical view: computed, then scattered into it."""
    rng = np.random.default_rng(1)
    x, target = rng.standard_normal((4, 6)), np.array([0, 5, 2, 3])
    _, expected = lsm.cross_entropy(x, target, return_grad=True)
    out = device(cuda, np.zeros((6, 4))).T  # Fortran order: (4, 6) with column-major strides
    _, grad = lsm.cross_entropy(device(cuda, x), device(cuda, target), return_grad=True, grad_out=out)
    assert grad is out
    np.testing.assert_allclose(host(out), expected, rtol=1e-14, atol=1e-17)


@pytest.mark.parametrize("log", [True, False], ids=["log_softmax", "softmax"])
def test_backward_out_and_in_place(cuda, log):
    rng = np.random.default_rng(2)
    y = (lsm.log_softmax if log else lsm.softmax)(rng.standard_normal((3, 40)).astype(np.float32))
    grad = rng.standard_normal((3, 40)).astype(np.float32)
    backward = lsm.log_softmax_backward if log else lsm.softmax_backward
    expected = backward(grad, y)
    for alias in ("grad", "y"):
        dg, dy = device(cuda, grad), device(cuda, y)
        out = dg if alias == "grad" else dy
        assert backward(dg, dy, out=out) is out
        np.testing.assert_allclose(host(out), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="overlaps an input"):
        wide = device(cuda, np.zeros((3, 80), dtype=np.float32))
        backward(wide[:, :40], device(cuda, y), out=wide[:, 1:41])


def test_backward_promotes_and_converts_on_the_device(cuda):
    """float16 grad with float32 y: float32 result; integer grad converted by a device copy."""
    y = lsm.log_softmax(np.arange(6.0, dtype=np.float32))
    got = lsm.log_softmax_backward(device(cuda, np.ones(6, dtype=np.float16)), device(cuda, y))
    assert host(got).dtype == np.float32
    np.testing.assert_allclose(host(got), lsm.log_softmax_backward(np.ones(6, np.float32), y), rtol=1e-6)
    got = lsm.softmax_backward(device(cuda, np.arange(6)), device(cuda, y.astype(np.float64)))
    assert host(got).dtype == np.float64


def test_loss_results_stay_on_the_device(cuda):
    x = device(cuda, np.zeros((3, 4), dtype=np.float16))
    target = device(cuda, np.array([0, 1, 2]))
    mean = lsm.cross_entropy(x, target)
    assert type(mean).__name__ == "FakeCUDAArray" and mean.shape == () and mean.dtype == np.float16
    assert host(mean) == np.float16(np.log(4))
    none = lsm.nll_loss(x, target, reduction="none")
    assert type(none).__name__ == "FakeCUDAArray" and none.shape == (3,)


def test_the_mean_over_fractional_weights_is_the_same_bitwise_every_time(cuda):
    """The total target weight (the mean's denominator) is a fixed-order sum, not an atomic
    one whose order, and so whose rounding, changes from run to run."""
    rng = np.random.default_rng(7)
    logits = device(cuda, rng.standard_normal((64, 3)))
    target = device(cuda, rng.integers(0, 3, 64))
    weight = device(cuda, rng.random(3) / 7)
    losses = {float(host(lsm.cross_entropy(logits, target, weight=weight))) for _ in range(3)}
    assert len(losses) == 1
