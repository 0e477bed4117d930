"""Shared fixtures: the backends every shared test body runs on.

A test that takes the ``backend`` fixture calls ``backend.log_softmax(x, ...)`` (and ``softmax``,
``logsumexp``) with NumPy arguments: the backend moves ``x``, ``where`` and ``b`` to its own kind
of array, calls lsm, checks that every result is of that kind, and hands NumPy results back for
comparison with the references. Backends: NumPy (Numba CPU kernels) and, when Dask is installed,
Dask arrays of NumPy chunks, with every axis in one chunk (the blockwise graphs), every axis cut
in two (the tree reductions), and cut in two on a two-process ``dask.distributed`` cluster.
"""

import importlib.util
import math

import numpy as np
import pytest

import lsm

ARRAY_ARGUMENTS = ("where", "b")


class Backend:
    """One way of running lsm: how inputs get there, what results must be, how they come back."""

    def __init__(self, name, to_backend, to_numpy, result_types, sweeps=True):
        self.name = name
        self.sweeps = sweeps  # whether the long generator sweeps run here (see sweep_backend)
        self._to_backend = to_backend
        self._to_numpy = to_numpy
        self._result_types = result_types

    def _call(self, func, x, **kwargs):
        for key in ARRAY_ARGUMENTS:
            if isinstance(kwargs.get(key), np.ndarray):
                kwargs[key] = self._to_backend(kwargs[key])
        if isinstance(x, (np.ndarray, np.generic)):
            x = self._to_backend(np.asarray(x))
        result = func(x, **kwargs)
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

    def __repr__(self):
        return self.name


def _identity(array):
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
        return cls.client.compute(collection).result()

    @classmethod
    def close(cls):
        if cls.client is not None:
            cls.client.cluster.close()
            cls.client.close()
            cls.client = None


def _halves(array):
    """Chunks cutting every axis in two (the reduced axis too)."""
    return tuple(max(1, math.ceil(size / 2)) for size in array.shape)


if importlib.util.find_spec("dask") is not None:
    import dask.array as da

    BACKENDS += [
        Backend("dask-whole", lambda a: da.from_array(a, chunks=-1), np.asarray, da.Array),
        Backend("dask-halves", lambda a: da.from_array(a, chunks=_halves(a)), np.asarray, da.Array),
    ]
    if importlib.util.find_spec("distributed") is not None:
        BACKENDS.append(
            Backend(
                "dask-cluster",
                lambda a: da.from_array(a, chunks=_halves(a)),
                _Cluster.compute,
                da.Array,
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
