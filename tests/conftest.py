"""Shared fixtures: the backends every shared test body runs on.

A test that takes the ``backend`` fixture calls ``backend.log_softmax(x, ...)`` (and ``softmax``,
``logsumexp``, ``log_softmax_backward``, ``softmax_backward``, ``cross_entropy``, ``nll_loss``)
with NumPy arguments: the backend moves the first argument and the array keywords named in
``ARRAY_ARGUMENTS`` to its own kind of array (``grad_out=x`` becomes the moved ``x`` itself),
calls lsm, checks that every result is of that kind, and hands NumPy results back for comparison
with the references. Today the only backend is the NumPy one (Numba CPU kernels); GPU
and Dask backends join the list when lsm supports them.
"""

import numpy as np
import pytest

import lsm

ARRAY_ARGUMENTS = ("where", "b", "y", "target", "weight")


class Backend:
    """One way of running lsm: how inputs get there, what results must be, how they come back."""

    def __init__(self, name, to_backend, to_numpy, result_types):
        self.name = name
        self._to_backend = to_backend
        self._to_numpy = to_numpy
        self._result_types = result_types

    def _call(self, func, x, **kwargs):
        for key in ARRAY_ARGUMENTS:
            if isinstance(kwargs.get(key), np.ndarray):
                kwargs[key] = self._to_backend(kwargs[key])
        moved = self._to_backend(x) if isinstance(x, np.ndarray) else x
        if kwargs.get("grad_out") is x and x is not None:  # the gradient written over the logits
            kwargs["grad_out"] = moved
        result = func(moved, **kwargs)
        parts = result if isinstance(result, tuple) else (result,)
        for part in parts:
            assert isinstance(part, self._result_types), f"{self.name}: got {type(part)}"
        converted = tuple(self._to_numpy(part) for part in parts)
        return converted if isinstance(result, tuple) else converted[0]

    def log_softmax(self, x, **kwargs):
        return self._call(lsm.log_softmax, x, **kwargs)

    def softmax(self, x, **kwargs):
        return self._call(lsm.softmax, x, **kwargs)

    def logsumexp(self, x, **kwargs):
        return self._call(lsm.logsumexp, x, **kwargs)

    def log_softmax_backward(self, grad, **kwargs):
        return self._call(lsm.log_softmax_backward, grad, **kwargs)

    def softmax_backward(self, grad, **kwargs):
        return self._call(lsm.softmax_backward, grad, **kwargs)

    def cross_entropy(self, logits, **kwargs):
        return self._call(lsm.cross_entropy, logits, **kwargs)

    def nll_loss(self, logp, **kwargs):
        return self._call(lsm.nll_loss, logp, **kwargs)

    def __repr__(self):
        return self.name


def _identity(array):
    return array


BACKENDS = [Backend("cpu", _identity, _identity, (np.ndarray, np.generic))]


@pytest.fixture(params=BACKENDS, ids=repr)
def backend(request):
    """Each backend lsm supports (see the module docstring)."""
    return request.param
