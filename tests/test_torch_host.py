"""torch CPU tensors in, torch tensors out: every function reads and writes the tensors' own memory
(through NumPy views) and returns torch tensors, 0-d results as 0-d tensors; a tensor that
requires grad is refused with a pointer to ``.detach()``.

These tests run where torch is importable (it is not part of the ``test`` extra: a CPU build is
about 750 MB); without torch they are skipped.
"""

import ml_dtypes
import numpy as np
import pytest
import scipy.special

import lsm
import lsm.special

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(6)


def _same(tensor, expected, dtype=None):
    assert isinstance(tensor, torch.Tensor) and tensor.device.type == "cpu"
    assert tensor.dtype == (dtype or torch.float32) and tuple(tensor.shape) == np.shape(expected)
    got = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
    np.testing.assert_array_equal(got, expected)


def test_forward_functions_give_tensors_equal_to_numpys_results():
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    t = torch.from_numpy(x.copy())
    _same(lsm.log_softmax(t), lsm.log_softmax(x))
    _same(lsm.softmax(t, axis=0), lsm.softmax(x, axis=0))
    _same(lsm.logsumexp(t, axis=1, keepdims=True), lsm.logsumexp(x, axis=1, keepdims=True))
    lse, sign = lsm.logsumexp(t, b=torch.ones(6), return_sign=True)  # 0-d results: 0-d tensors
    _same(lse, np.asarray(lsm.logsumexp(x, b=np.ones(6, np.float32))))
    _same(sign, np.asarray(1.0, np.float32))
    np.testing.assert_array_equal(t.numpy(), x)  # the input is never modified


def test_inputs_and_outputs_are_the_tensors_memory():
    t = torch.from_numpy(RNG.standard_normal((3, 5)).astype(np.float32)).T  # a strided view
    expected = lsm.log_softmax(t.numpy(), axis=0)
    out = torch.empty(5, 3)
    assert lsm.log_softmax(t, axis=0, out=out) is out
    _same(out, expected)
    assert lsm.log_softmax(t, axis=0, out=t) is t  # in place, through the view
    _same(t, expected)


def test_gradients_and_losses_give_tensors():
    logits = torch.from_numpy(RNG.standard_normal((4, 3)).astype(np.float32))
    target = torch.tensor([0, 2, 1, 2])
    loss, grad = lsm.cross_entropy(logits, target, return_grad=True)
    expected_loss, expected_grad = lsm.cross_entropy(logits.numpy(), target.numpy(), return_grad=True)
    _same(loss, np.asarray(expected_loss))
    _same(grad, expected_grad)
    np.testing.assert_allclose(
        loss.item(), torch.nn.functional.cross_entropy(logits, target).item(), rtol=1e-6
    )
    y = lsm.log_softmax(logits)
    _same(
        lsm.nll_loss(y, target, reduction="none"), lsm.nll_loss(y.numpy(), target.numpy(), reduction="none")
    )
    g = torch.ones(4, 3)
    _same(lsm.log_softmax_backward(g, y), lsm.log_softmax_backward(g.numpy(), y.numpy()))
    _same(lsm.softmax_backward(g, y.exp()), lsm.softmax_backward(g.numpy(), y.exp().numpy()))


def test_bfloat16_tensors_stay_bfloat16():
    x = torch.from_numpy(RNG.standard_normal((2, 8)).astype(np.float32)).to(torch.bfloat16)
    expected = lsm.log_softmax(x.view(torch.int16).numpy().view(ml_dtypes.bfloat16))
    _same(lsm.log_softmax(x), expected.astype(np.float32), dtype=torch.bfloat16)


def test_a_tensor_that_requires_grad_is_refused():
    x = torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match=r"'x' is a torch tensor that requires grad.* x\.detach\(\)"):
        lsm.softmax(x)
    with pytest.raises(TypeError, match=r"'out' is a torch tensor that requires grad"):
        lsm.softmax(torch.zeros(3), out=x)


def test_lsm_special_on_tensors():
    a = torch.from_numpy(RNG.standard_normal((4, 1, 2)))
    b = torch.from_numpy(RNG.standard_normal((3, 1)))
    value, sign = lsm.special.logsumexp(a, b=b, axis=(0, 1), return_sign=True)
    expected = scipy.special.logsumexp(a.numpy(), b=b.numpy(), axis=(0, 1), return_sign=True)
    np.testing.assert_allclose(value.numpy(), expected[0], rtol=1e-13)
    _same(sign, expected[1], dtype=torch.float64)
    _same(lsm.special.softmax(a), lsm.softmax(a.numpy(), axis=None), dtype=torch.float64)
