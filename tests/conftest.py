"""Shared fixtures: the backends every shared test body runs on.

A test that takes the ``backend`` fixture calls ``backend.log_softmax(x, ...)`` (and ``softmax``,
``logsumexp``, ``log_softmax_backward``, ``softmax_backward``, ``cross_entropy``, ``nll_loss``)
with NumPy arguments: the backend moves the first argument, ``out`` and the array keywords named
in ``ARRAY_ARGUMENTS`` to its own kind of array (keeping their memory layout and read-only flag;
``out=x`` and ``grad_out=x`` become the moved ``x`` itself), calls lsm, checks that every result
is of that kind (and that ``out`` is returned), and hands NumPy results back for comparison with
the references. Arguments that are already the backend's arrays pass through as they are: a test
that needs arrays sharing memory moves one buffer (``backend.move``), takes views of it, and reads
it back with ``backend.to_numpy``.

Backends:

- ``cpu``: NumPy arrays, the Numba CPU kernels. Always.
- ``cuda``: CuPy arrays on a real GPU, when CuPy is installed and ``numba.cuda.is_available()``.
- ``cuda-sim``: Numba device arrays under Numba's CUDA simulator. The simulator must be switched
  on before Numba is imported, so it is its own pytest run, which ``.ci/run`` makes::

      NUMBA_ENABLE_CUDASIM=1 python -m pytest -n 2 tests

  In that run only the shared test bodies (on ``cuda-sim``) and the tests marked ``cuda_sim`` are
  collected, every other test is deselected (it ran in the normal run), and the CUDA tunables are
  shrunk (``SIM_CONFIG``) so that tiny inputs take the multi-block, block-per-row and split-row
  paths. In the normal run the ``cuda_sim`` tests are deselected instead.
- ``dask-whole``, ``dask-halves``, ``dask-cluster`` (when Dask is installed): Dask arrays of
  NumPy chunks, with every axis in one chunk (the blockwise graphs), every axis cut in two (the
  tree reductions; the class axis of the losses stays whole, as lsm requires), and cut in two on
  a two-process ``dask.distributed`` cluster (the first case of each test only: it computes the
  graphs of ``dask-halves``, which runs every case). Dask results are lazy, so ``out=`` and
  ``grad_out=`` do not apply there: a test passing them is skipped on those backends only
  (test_dask.py checks the error they raise).

The simulator runs every CUDA thread as a Python thread, so a shared test body must stay tiny:
each backend has an element budget (``max_elements``) that a call may not exceed, and a backend
that cannot hold an input's dtype (non-native byte order on the GPU, bfloat16 in CuPy) deselects the
test cases with such inputs. Test cases marked ``heavy`` (comparisons with torch, the bulk of
the option-by-dtype matrices) are deselected for a backend with a budget, and for the cluster
(a tenth of a second a call; it computes the same graphs as ``dask-halves``, which runs them): the
simulator checks every kernel path on the rest (the gradient and loss bodies take about a minute
and a half there).
Cases marked ``heavy(dask=True)`` are deselected on the Dask backends as well: cases about the
host kernels' paths (sizes, tiles, memory orders), which Dask's blocks reach just as the ``cpu``
backend does, at a few milliseconds (on the cluster, a tenth of a second) a call.
"""

import importlib.util
import math
import os
import sys

import _simulator
import numpy as np
import pytest

import lsm

ARRAY_ARGUMENTS = ("where", "b", "y", "target", "weight")
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
# the simulator's blocks wait at their barriers instead of polling (tests/_simulator.py)
SIMULATOR_WAITS = SIMULATOR and _simulator.install()

# The CUDA tunables for the simulator run (see lsm/cuda/_config.py): one warp per block, rows up
# to 32 elements per warp, longer rows on one-warp blocks, rows of 40 or more split in chunks of
# 16 when there are fewer than 8 of them, rows of 33 to 64 kept in shared memory (longer ones
# take the block path), columns of 8 or more split between 2 warps (the forward column kernels),
# and 1 or 2 blocks per grid (grid-stride loops).
# (tests/test_cuda_sim.py runs every path with two-warp blocks as well.)
SIM_CONFIG = {
    "WARP_ROW_MAX": 32,
    "WARP_ROW_MAX_FLOAT64": 32,
    "WARPS_PER_BLOCK": 1,
    "BLOCK_THREADS": 32,
    "ITEM_THREADS": 32,
    "COLUMN_PARTS": 2,
    "COLUMN_PART_MIN": 4,
    "SPLIT_MIN_LENGTH": 40,
    "SPLIT_MAX_ROWS": 8,
    "SPLIT_CHUNK": 16,
    "SHARED_ROW_MAX": 64,
    "SHARED_ROW_MAX_FLOAT64": 64,
    "MAX_BLOCKS": 2,
    "MIN_BLOCKS": 1,
}


class Backend:
    """One way of running lsm: how inputs get there, what results must be, how they come back."""

    def __init__(
        self,
        name,
        to_backend,
        to_numpy,
        result_types,
        accepts=None,
        max_elements=None,
        sweeps=True,
        lazy=False,
        gpu=False,
    ):
        self.name = name
        self.sweeps = sweeps  # whether the long generator sweeps run here (see sweep_backend)
        self.lazy = lazy  # lazy results: no out= or grad_out=
        self.gpu = gpu  # device arrays: numbers only (no objects, strings or dates)
        self._to_backend = to_backend  # (array, axes to keep in one chunk) -> backend array
        self._to_numpy = to_numpy
        self._result_types = result_types
        self._accepts = accepts
        self.max_elements = max_elements

    def accepts(self, dtype):
        """Whether this backend's arrays can hold ``dtype``."""
        return self._accepts is None or self._accepts(np.dtype(dtype))

    def move(self, array, whole=()):
        """``array`` as this backend's array, with its layout (``whole``: axes kept in one chunk)."""
        if self.max_elements is not None:
            assert array.size <= self.max_elements, (
                f"{self.name}: a shared test body passed {array.size} elements; keep them within "
                f"{self.max_elements} (write a dedicated test for big inputs)"
            )
        return self._to_backend(array, whole)

    def to_numpy(self, array):
        """This backend's ``array`` (computed, if lazy) as NumPy."""
        return self._to_numpy(array)

    def _call(self, func, x, whole=(), **kwargs):
        if self.lazy and (kwargs.get("out") is not None or kwargs.get("grad_out") is not None):
            pytest.skip(f"{self.name}: results are lazy, out= and grad_out= do not apply")
        for key in ARRAY_ARGUMENTS:  # NumPy scalars too (a 0-d forward result as ``y``)
            if isinstance(kwargs.get(key), (np.ndarray, np.generic)):
                kwargs[key] = self.move(np.asarray(kwargs[key]), whole)
        # NumPy scalars too: a 0-d array on the backend
        moved = self.move(np.asarray(x), whole) if isinstance(x, (np.ndarray, np.generic)) else x
        for key in ("out", "grad_out"):  # the result written over the input
            if kwargs.get(key) is x and x is not None:
                kwargs[key] = moved
        if isinstance(kwargs.get("out"), np.ndarray) and kwargs["out"] is not x:
            kwargs["out"] = self.move(kwargs["out"], whole)
        result = func(moved, **kwargs)
        parts = result if isinstance(result, tuple) else (result,)
        for part in parts:
            assert isinstance(part, self._result_types), f"{self.name}: got {type(part)}"
        assert kwargs.get("out") is None or parts[0] is kwargs["out"], f"{self.name}: out= not returned"
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
    """Device arrays hold native-order numbers, bfloat16 included (Numba device arrays hold it)."""
    return dtype.isnative and (dtype.kind in "biuf" or dtype.name == "bfloat16")


def _cupy_dtype(dtype):
    """CuPy arrays hold native-order numbers but no bfloat16."""
    return _gpu_dtype(dtype) and dtype.name != "bfloat16"


def _simulator_backend():
    from numba import cuda
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    def to_device(array, whole=()):
        if array.size == 0:
            return cuda.to_device(np.ascontiguousarray(array))
        buffer, start = same_layout_bytes(array)
        first = buffer[start : start + array.dtype.itemsize].view(array.dtype)
        view = np.lib.stride_tricks.as_strided(first, array.shape, array.strides)
        if not array.flags.writeable:  # a read-only out= stays read-only
            view.flags.writeable = False
        return FakeCUDAArray(view)

    return Backend(
        "cuda-sim",
        to_device,
        lambda part: part.copy_to_host(),
        (FakeCUDAArray,),
        accepts=_gpu_dtype,
        max_elements=2048,
        gpu=True,
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

    def to_device(array, whole=()):
        buffer, start = same_layout_bytes(array)
        device = cupy.asarray(buffer)
        return cupy.ndarray(array.shape, array.dtype, device.data + start, array.strides)

    return Backend("cuda", to_device, cupy.asnumpy, (cupy.ndarray,), accepts=_cupy_dtype, gpu=True)


if SIMULATOR:
    BACKENDS = [_simulator_backend()]
else:
    BACKENDS = [Backend("cpu", _identity, _identity, (np.ndarray, np.generic))]
    if (gpu := _cupy_backend()) is not None:
        BACKENDS.append(gpu)


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
                dashboard_address=":0",  # a free port: None still takes 8787, where two clusters collide
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


if not SIMULATOR and importlib.util.find_spec("dask") is not None:
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


# The environment variable naming a folder that every worker of one ``pytest -n`` run shares: the
# base temporary folder of the run (a worker's own is a subfolder of it), which pytest removes
# with old runs. Set in the workers only (tests/test_cuda_compile.py keeps machine code there).
RUN_FOLDER = "LSM_TESTS_RUN_FOLDER"


@pytest.fixture(autouse=True, scope="session")
def _run_folder(tmp_path_factory):
    if "PYTEST_XDIST_WORKER" in os.environ:
        os.environ[RUN_FOLDER] = str(tmp_path_factory.getbasetemp().parent)


@pytest.fixture(params=BACKENDS, ids=repr)
def backend(request):
    """Each backend lsm supports (see the module docstring)."""
    return request.param


@pytest.fixture(params=[backend for backend in BACKENDS if backend.sweeps], ids=repr)
def sweep_backend(request):
    """The backends that run the long adversarial-generator sweeps: every backend but those
    whose per-call cost would make a sweep take minutes (they run every other shared test)."""
    return request.param


def _input_dtypes(item):
    """The dtypes of the array parameters of a collected test (its ``dtype`` and ``x``)."""
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    found = [params["dtype"]] if "dtype" in params else []
    found += [value.dtype for value in params.values() if isinstance(value, np.ndarray)]
    return [np.dtype(d) for d in found]


def _runs_here(item):
    params = item.callspec.params if hasattr(item, "callspec") else {}
    backend = params.get("backend", params.get("sweep_backend"))
    if backend is not None:
        for heavy in item.iter_markers("heavy"):
            slow = backend.max_elements is not None or not backend.sweeps
            if slow or (backend.lazy and heavy.kwargs.get("dask")):
                return False
        return all(backend.accepts(dtype) for dtype in _input_dtypes(item))
    return item.get_closest_marker("cuda_sim") is not None if SIMULATOR else True


def _first_on_the_cluster(item, seen):
    """Whether ``item`` is the first kept case of its test function on the Dask cluster (each
    test runs there once: the cluster computes the graphs that ``dask-halves`` computes for every
    case, at a tenth of a second a call; what it adds is running them on worker processes)."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    if getattr(params.get("backend"), "name", None) != "dask-cluster":
        return True
    function = (item.path, item.originalname)
    if function in seen:
        return False
    seen.add(function)
    return True


def pytest_collection_modifyitems(config, items):
    """Keep the tests of this run (see the module docstring); report the others as deselected."""
    kept, dropped, on_the_cluster = [], [], set()
    for item in items:
        marked = item.get_closest_marker("cuda_sim") is not None
        keep = _runs_here(item) and (SIMULATOR or not marked)
        keep = keep and _first_on_the_cluster(item, on_the_cluster)
        (kept if keep else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=SIMULATOR)
def simulator_config(monkeypatch):
    """Shrink the CUDA tunables for the simulator run (see ``SIM_CONFIG``).

    Where ``tests/_simulator.py`` could not replace the simulator's polling barrier, the threads
    meet at barriers that wait for the interpreter's thread switch interval: a short interval
    makes the stock simulator about ten times faster (and the waiting barrier twice slower).
    """
    from lsm.cuda import _config

    for name, value in SIM_CONFIG.items():
        monkeypatch.setattr(_config, name, value)
    interval = sys.getswitchinterval()
    if not SIMULATOR_WAITS:
        sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)
