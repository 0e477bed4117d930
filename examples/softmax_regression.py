"""Multinomial logistic regression on scikit-learn's digits, in plain NumPy with lsm.

The model is ``logits = X @ W + b``; training minimises the mean cross-entropy plus an L2
penalty by full-batch gradient descent with momentum. ``lsm.cross_entropy(..., return_grad=True)``
returns the loss and its gradient with respect to the logits in one fused pass, written over the
logits buffer (``grad_out=logits``), so the only gradient code left to write is the chain rule
through the linear layer: ``dW = X.T @ dlogits``, ``db = dlogits.sum(0)``.

The digits data set (1,797 8x8 images, 10 classes) ships with scikit-learn: nothing is
downloaded. Run::

    python examples/softmax_regression.py            # 97% test accuracy, a few seconds
    python examples/softmax_regression.py --steps 50 # fewer steps
"""

import argparse
import sys

import numpy as np

import lsm


def load_digits_split(seed=0, test_fraction=0.25):
    """Standardised digits features and labels, split into train and test sets."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    features, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8  # constant pixels: std 0
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def train(x, y, n_classes, steps=300, learning_rate=0.5, momentum=0.9, l2=1e-3, seed=0):
    """Fit ``W`` (features x classes) and ``b`` by gradient descent; returns ``(W, b, losses)``."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(scale=0.01, size=(x.shape[1], n_classes))
    bias = np.zeros(n_classes)
    velocity_w, velocity_b = np.zeros_like(weights), np.zeros_like(bias)
    logits = np.empty((x.shape[0], n_classes))
    losses = []
    for _ in range(steps):
        np.matmul(x, weights, out=logits)
        logits += bias
        # loss and d(loss)/d(logits) in one pass; the gradient overwrites the logits buffer
        loss, grad_logits = lsm.cross_entropy(logits, y, return_grad=True, grad_out=logits)
        losses.append(float(loss) + 0.5 * l2 * float(np.sum(weights**2)))
        grad_w = x.T @ grad_logits + l2 * weights
        grad_b = grad_logits.sum(axis=0)
        velocity_w = momentum * velocity_w - learning_rate * grad_w
        velocity_b = momentum * velocity_b - learning_rate * grad_b
        weights += velocity_w
        bias += velocity_b
    return weights, bias, losses


def accuracy(weights, bias, x, y):
    """Fraction of ``x`` whose most probable class is ``y``."""
    return float(np.mean(np.argmax(x @ weights + bias, axis=1) == y))


def run(steps=300, seed=0):
    """Train on the digits and return ``(train accuracy, test accuracy, losses)``."""
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    weights, bias, losses = train(x_train, y_train, n_classes=10, steps=steps, seed=seed)
    return accuracy(weights, bias, x_train, y_train), accuracy(weights, bias, x_test, y_test), losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="gradient descent steps (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="split and initialisation seed")
    arguments = parser.parse_args(argv)
    train_accuracy, test_accuracy, losses = run(arguments.steps, arguments.seed)
    print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f} after {arguments.steps} steps")
    print(f"train accuracy {train_accuracy:.2%}, test accuracy {test_accuracy:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
