"""Shared fixtures: the backends every shared test body runs on.

A test that takes the ``backend`` fixture calls ``backend.log_softmax(x, ...)`` (and ``softmax``,
``logsumexp``) with NumPy arguments: the backend moves ``x``, ``where`` and ``b`` to its own kind
of array (keeping their memory layout), calls lsm, checks that every result is of that kind, and
hands NumPy results back for comparison with the references.

Backends:

- ``cpu``: NumPy arrays, the Numba CPU kernels. Always.
- ``cuda``: CuPy arrays on a real GPU, when CuPy is installed and ``numba.cuda.is_available()``.
- ``cuda-sim``: Numba device arrays under Numba's CUDA simulator. The simulator must be switched
  on before Numba is imported, so it is its own pytest run, which ``.ci/run`` makes::

      NUMBA_ENABLE_CUDASIM=1 python -m pytest tests

  In that run only the shared test bodies (on ``cuda-sim``) and the tests marked ``cuda_sim`` are
  collected, every other test is deselected (it ran in the normal run), and the CUDA tunables are
  shrunk (``SIM_CONFIG``) so that tiny inputs take the multi-block, block-per-row and split-row
  paths. In the normal run the ``cuda_sim`` tests are deselected instead.

The simulator runs every CUDA thread as a Python thread, so a shared test body must stay tiny:
each backend has an element budget (``max_elements``) that a call may not exceed, and a backend
that cannot hold an input's dtype (bfloat16, non-native byte order on the GPU) deselects the
test cases with such inputs.
"""

import os
import sys

import numpy as np
import pytest

import lsm

ARRAY_ARGUMENTS = ("where", "b")
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# The CUDA tunables for the simulator run (see lsm/cuda/_config.py): one warp per block, rows up
# to 32 elements per warp, longer rows on one-warp blocks, rows of 40 or more split in chunks of
# 16 when there are fewer than 8 of them, and 1 or 2 blocks per grid (grid-stride loops).
# (tests/test_cuda_sim.py runs every path with two-warp blocks as well.)
SIM_CONFIG = {
    "WARP_ROW_MAX": 32,
    "WARPS_PER_BLOCK": 1,
    "BLOCK_THREADS": 32,
    "COLUMN_THREADS": 32,
    "SPLIT_MIN_LENGTH": 40,
    "SPLIT_MAX_ROWS": 8,
    "SPLIT_CHUNK": 16,
    "MAX_BLOCKS": 2,
    "MIN_BLOCKS": 1,
}


class Backend:
    """One way of running lsm: how inputs get there, what results must be, how they come back."""

    def __init__(self, name, to_backend, to_numpy, result_types, accepts=None, max_elements=None):
        self.name = name
        self._to_backend = to_backend
        self._to_numpy = to_numpy
        self._result_types = result_types
        self._accepts = accepts
        self.max_elements = max_elements

    def accepts(self, dtype):
        """Whether this backend's arrays can hold ``dtype``."""
        return self._accepts is None or self._accepts(np.dtype(dtype))

    def _move(self, array):
        if self.max_elements is not None:
            assert array.size <= self.max_elements, (
                f"{self.name}: a shared test body passed {array.size} elements; keep them within "
                f"{self.max_elements} (write a dedicated test for big inputs)"
            )
        return self._to_backend(array)

    def _call(self, func, x, **kwargs):
        for key in ARRAY_ARGUMENTS:
            if isinstance(kwargs.get(key), np.ndarray):
                kwargs[key] = self._move(kwargs[key])
        if isinstance(x, (np.ndarray, np.generic)):  # NumPy scalars too: a 0-d array on the backend
            x = self._move(np.asarray(x))
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


def same_layout_bytes(array):
    """``(buffer, start)``: a host byte buffer holding ``array`` with its exact strides, the
    array's first element at byte ``start`` (so negative and gapped strides survive a copy)."""
    low = sum(min(0, (n - 1) * s) for n, s in zip(array.shape, array.strides, strict=True))
    high = sum(max(0, (n - 1) * s) for n, s in zip(array.shape, array.strides, strict=True))
    buffer = np.zeros(high - low + array.dtype.itemsize, dtype=np.uint8)
    start = -low
    if array.size:
        first = buffer[start : start + array.dtype.itemsize].view(array.dtype)
        np.lib.stride_tricks.as_strided(first, array.shape, array.strides)[...] = array
    return buffer, start


def _gpu_dtype(dtype):
    """Device arrays hold native-order numbers; no GPU array library lsm accepts has bfloat16."""
    return dtype.isnative and dtype.kind in "biuf" and dtype.name != "bfloat16"


def _simulator_backend():
    from numba import cuda
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    def to_device(array):
        if array.size == 0:
            return cuda.to_device(np.ascontiguousarray(array))
        buffer, start = same_layout_bytes(array)
        first = buffer[start : start + array.dtype.itemsize].view(array.dtype)
        return FakeCUDAArray(np.lib.stride_tricks.as_strided(first, array.shape, array.strides))

    return Backend(
        "cuda-sim",
        to_device,
        lambda part: part.copy_to_host(),
        (FakeCUDAArray,),
        accepts=_gpu_dtype,
        max_elements=2048,
    )


def _cupy_backend():
    """CuPy on a real GPU, or None where there is none (or no CuPy)."""
    try:
        from numba import cuda

        if not cuda.is_available():
            return None
        import cupy
    except ImportError:
        return None

    def to_device(array):
        buffer, start = same_layout_bytes(array)
        device = cupy.asarray(buffer)
        return cupy.ndarray(array.shape, array.dtype, device.data + start, array.strides)

    return Backend("cuda", to_device, cupy.asnumpy, (cupy.ndarray,), accepts=_gpu_dtype)


if SIMULATOR:
    BACKENDS = [_simulator_backend()]
else:
    BACKENDS = [Backend("cpu", _identity, _identity, (np.ndarray, np.generic))]
    if (gpu := _cupy_backend()) is not None:
        BACKENDS.append(gpu)


@pytest.fixture(params=BACKENDS, ids=repr)
def backend(request):
    """Each backend lsm supports (see the module docstring)."""
    return request.param


def _input_dtypes(item):
    """The dtypes of the array parameters of a collected test (its ``dtype`` and ``x``)."""
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    found = [params["dtype"]] if "dtype" in params else []
    found += [value.dtype for value in params.values() if isinstance(value, np.ndarray)]
    return [np.dtype(d) for d in found]


def _runs_here(item):
    backend = item.callspec.params.get("backend") if hasattr(item, "callspec") else None
    if backend is not None:
        return all(backend.accepts(dtype) for dtype in _input_dtypes(item))
    return item.get_closest_marker("cuda_sim") is not None if SIMULATOR else True


def pytest_collection_modifyitems(config, items):
    """Keep the tests of this run (see the module docstring); report the others as deselected."""
    kept, dropped = [], []
    for item in items:
        marked = item.get_closest_marker("cuda_sim") is not None
        keep = _runs_here(item) and (SIMULATOR or not marked)
        (kept if keep else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=SIMULATOR)
def simulator_config(monkeypatch):
    """Shrink the CUDA tunables for the simulator run (see ``SIM_CONFIG``).

    The simulator's threads meet at barriers that wait for the interpreter's thread switch
    interval; a short interval makes them about ten times faster.
    """
    from lsm.cuda import _config

    for name, value in SIM_CONFIG.items():
        monkeypatch.setattr(_config, name, value)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)
