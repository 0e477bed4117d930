"""A small torch classifier on scikit-learn's digits, its loss ``lsm.torch.CrossEntropyLoss``.

A two-layer perceptron (64 -> 64 -> 10, ReLU) trained with Adam on mini-batches, label
smoothing 0.05. The only line that differs from plain torch is the criterion:
``lsm.torch.CrossEntropyLoss`` is a ``torch.nn.CrossEntropyLoss`` whose forward pass computes
the loss and its gradient with respect to the logits in one fused lsm pass; ``loss.backward()``
hands that gradient to autograd, which carries it through the layers as usual.

``--criterion torch`` trains with ``torch.nn.CrossEntropyLoss`` instead, from the same seed:
the losses agree to rounding. The digits data set ships with scikit-learn: nothing is
downloaded. Needs torch and scikit-learn. Run::

    python examples/torch_training.py                  # about 97% test accuracy, a few seconds
    python examples/torch_training.py --criterion torch
"""

import argparse
import sys

import numpy as np
import torch

import lsm.torch

CRITERIA = {"lsm": lsm.torch.CrossEntropyLoss, "torch": torch.nn.CrossEntropyLoss}


def load_digits_split(seed=0, test_fraction=0.25):
    """Standardised float32 digits features and int64 labels as tensors, train and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    features, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8  # constant pixels: std 0
    arrays = (x_train - mean) / std, (x_test - mean) / std
    x_train, x_test = (torch.from_numpy(array.astype(np.float32)) for array in arrays)
    return x_train, x_test, torch.from_numpy(y_train), torch.from_numpy(y_test)


def train(x, y, criterion, epochs=30, batch_size=64, seed=0):
    """Fit the perceptron by Adam over shuffled mini-batches; returns ``(model, losses)``, the
    losses one per step."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(epochs):
        for batch in torch.randperm(x.shape[0]).split(batch_size):
            optimiser.zero_grad()
            loss = criterion(model(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    return model, losses


def accuracy(model, x, y):
    """Fraction of ``x`` whose most probable class is ``y``."""
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def run(epochs=30, seed=0, criterion="lsm"):
    """Train on the digits; ``(train accuracy, test accuracy, losses)``."""
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    model, losses = train(x_train, y_train, CRITERIA[criterion](label_smoothing=0.05), epochs, seed=seed)
    return accuracy(model, x_train, y_train), accuracy(model, x_test, y_test), losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training set (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="split, initialisation and shuffling seed")
    parser.add_argument(
        "--criterion", choices=sorted(CRITERIA), default="lsm", help="whose loss (default lsm)"
    )
    arguments = parser.parse_args(argv)
    train_accuracy, test_accuracy, losses = run(arguments.epochs, arguments.seed, arguments.criterion)
    print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f} after {len(losses)} steps ({arguments.criterion})")
    print(f"train accuracy {train_accuracy:.2%}, test accuracy {test_accuracy:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
