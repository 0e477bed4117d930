"""The examples and the gradient demonstration work as documented."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from lsm._gradient_demo import EXAMPLES, first_entry_gradients, gradient_demo_lines

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_softmax_regression_reaches_95_percent_on_digits(capsys):
    pytest.importorskip("sklearn")
    example = _load_example("softmax_regression")
    train_accuracy, test_accuracy, losses = example.run(steps=300)
    assert test_accuracy >= 0.95, test_accuracy
    assert train_accuracy >= test_accuracy - 0.01
    assert losses[-1] < 0.2 * losses[0]
    assert example.main(["--steps", "20"]) == 0
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("x", EXAMPLES, ids=["seed", "second"])
def test_gradient_demo_numbers(x):
    results = first_entry_gradients(x)
    (naive_loss, naive_grad), (guarded_loss, guarded_grad), (loss, grad) = results.values()
    assert naive_loss == math.inf and math.isnan(naive_grad)
    assert guarded_loss == pytest.approx(-math.log(1e-30)) and guarded_grad == 0  # the guard hides it
    exact_loss = np.logaddexp.reduce(x) - x[0]
    assert loss == pytest.approx(exact_loss, rel=1e-15)
    p0 = math.exp(x[0] - np.logaddexp.reduce(x))
    assert grad == p0 - 1.0 == -1.0


def test_gradient_demo_lines():
    lines = gradient_demo_lines()
    text = "\n".join(lines)
    assert "x = [-999.0, 1.0, 2.0, 5.0, 6.0]" in text and "x = [-990.0, 1.5, 2.1, 5.6, 6.8]" in text
    assert text.count("dL/dx[0] = nan") == 2
    assert text.count("dL/dx[0] = -1") == 2
    assert "L = 1005.33" in text and "-0" not in text.replace("-0.", "")


def test_torch_training_with_lsms_criterion_follows_torchs(capsys):
    """The same seed trains the same model with lsm.torch.CrossEntropyLoss as with torch's own:
    the per-step losses agree to float32 rounding (accumulated over the steps), and the model
    learns the digits."""
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    example = _load_example("torch_training")
    train_accuracy, test_accuracy, losses = example.run(epochs=8)
    _, _, torch_losses = example.run(epochs=8, criterion="torch")
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-5, atol=1e-6)
    assert test_accuracy >= 0.94 and train_accuracy >= test_accuracy
    assert np.mean(losses[-22:]) < 0.25 * losses[0]  # the last epoch's 22 steps
    assert example.main(["--epochs", "1"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_hmm_forward_three_ways_agree(capsys):
    """examples/hmm_forward.py: lsm.logsumexp inside @njit gives the likelihood of the NumPy and
    scipy loops, and its command runs."""
    example = _load_example("hmm_forward")
    model = example.random_hmm(48, 6, 30, seed=3)
    value = example.forward_lsm(*model)
    assert math.isclose(value, example.forward_numpy(*model), rel_tol=1e-12)
    pytest.importorskip("scipy")
    assert math.isclose(value, example.forward_scipy(*model), rel_tol=1e-12)
    assert example.main(["--states", "16", "--steps", "10"]) == 0
    assert capsys.readouterr().out.count("log P(obs)") == 3
