"""Shared fixtures: the backends every shared test body runs on.

A test that takes the ``backend`` fixture calls ``backend.log_softmax(x, ...)`` (and ``softmax``,
``logsumexp``, ``log_softmax_backward``, ``softmax_backward``, ``cross_entropy``, ``nll_loss``)
with NumPy arguments: the backend moves the first argument and the array keywords named in
``ARRAY_ARGUMENTS`` to its own kind of array (``grad_out=x`` becomes the moved ``x`` itself),
calls lsm, checks that every result is of that kind, and hands NumPy results back for comparison
with the references.

Backends: NumPy (Numba CPU kernels) and, when Dask is installed, Dask arrays of NumPy chunks,
with every axis in one chunk (the blockwise graphs), every axis cut in two (the tree
reductions; the class axis of the losses stays whole, as lsm requires), and cut in two on a
two-process ``dask.distributed`` cluster. Dask results are lazy, so ``out=`` and ``grad_out=``
do not apply there: a test passing them is skipped on those backends only (test_dask.py checks
the error they raise).
"""

import importlib.util
import math

import numpy as np
import pytest

import lsm

ARRAY_ARGUMENTS = ("where", "b", "y", "target", "weight")


class Backend:
    """One way of running lsm: how inputs get there, what results must be, how they come back."""

    def __init__(self, name, to_backend, to_numpy, result_types, sweeps=True, lazy=False):
        self.name = name
        self.sweeps = sweeps  # whether the long generator sweeps run here (see sweep_backend)
        self.lazy = lazy  # lazy results: no out= or grad_out=
        self._to_backend = to_backend  # (array, axes to keep in one chunk) -> backend array
        self._to_numpy = to_numpy
        self._result_types = result_types

    def _call(self, func, x, whole=(), **kwargs):
        if self.lazy and (kwargs.get("out") is not None or kwargs.get("grad_out") is not None):
            pytest.skip(f"{self.name}: results are lazy, out= and grad_out= do not apply")
        for key in ARRAY_ARGUMENTS:
            if isinstance(kwargs.get(key), np.ndarray):
                kwargs[key] = self._to_backend(kwargs[key], whole)
        moved = self._to_backend(np.asarray(x), whole) if isinstance(x, (np.ndarray, np.generic)) else x
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
        return self._call(lsm.cross_entropy, logits, whole=(kwargs.get("axis", -1),), **kwargs)

    def nll_loss(self, logp, **kwargs):
        return self._call(lsm.nll_loss, logp, whole=(kwargs.get("axis", -1),), **kwargs)

    def __repr__(self):
        return self.name


def _identity(array, whole=()):
    return array


BACKENDS = [Backend("cpu", _identity, _identity, (np.ndarray, np.generic))]


class _Cluster:
    """A ``LocalCluster(n_workers=2, threads_per_worker=1)`` of processes on loopback, started on
    first use and closed at the end of the session."""

    client = None

    @classmethod
    def compute(cls, collection):
        if cls.client is None:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                env={"NUMBA_NUM_THREADS": "1"},  # one core per worker, as the README advises
            )
            cls.client = Client(cluster, set_as_default=False)
        return _computed(cls.client.compute(collection).result())

    @classmethod
    def close(cls):
        if cls.client is not None:
            cls.client.cluster.close()
            cls.client.close()
            cls.client = None


def _computed(result):
    """A computed Dask result as NumPy returns it: 0-d results as NumPy scalars."""
    array = np.asarray(result)
    return array[()] if array.ndim == 0 else array


def _halves(array, whole=()):
    """Dask chunks cutting every axis in two (reduced axes too) but those in ``whole``."""
    whole = {axis % array.ndim for axis in whole} if array.ndim else set()
    return tuple(
        -1 if axis in whole else max(1, math.ceil(size / 2)) for axis, size in enumerate(array.shape)
    )


if importlib.util.find_spec("dask") is not None:
    import dask.array as da

    BACKENDS += [
        Backend(
            "dask-whole", lambda a, whole=(): da.from_array(a, chunks=-1), _computed, da.Array, lazy=True
        ),
        Backend(
            "dask-halves",
            lambda a, whole=(): da.from_array(a, chunks=_halves(a, whole)),
            _computed,
            da.Array,
            lazy=True,
        ),
    ]
    if importlib.util.find_spec("distributed") is not None:
        BACKENDS.append(
            Backend(
                "dask-cluster",
                lambda a, whole=(): da.from_array(a, chunks=_halves(a, whole)),
                _Cluster.compute,
                da.Array,
                lazy=True,
                sweeps=False,  # ~0.1 s a call; computes the same graphs as dask-halves
            )
        )


def pytest_sessionfinish(session, exitstatus):
    _Cluster.close()


@pytest.fixture(params=BACKENDS, ids=repr)
def backend(request):
    """Each backend lsm supports (see the module docstring)."""
    return request.param


@pytest.fixture(params=[backend for backend in BACKENDS if backend.sweeps], ids=repr)
def sweep_backend(request):
    """The backends that run the long adversarial-generator sweeps: every backend but those
    whose per-call cost would make a sweep take minutes (they run every other shared test)."""
    return request.param
