"""Where benchmarks run: the CPU (NumPy arrays) and CUDA (CuPy arrays) backends.

A backend moves the seeded NumPy inputs to its device, allocates outputs there, converts arrays
for torch, waits for queued device work (:meth:`Backend.synchronise`), and times a memory copy of
an input, the same-run normaliser of every throughput. Each lists its implementations: the
:class:`Implementation` rows below name the :class:`lsm.bench.cases.Op` family they use and the
library that provides it. Adding a backend is one class and one entry in :data:`BACKENDS`.

Nothing here imports CuPy, torch or jax until a benchmark on them is prepared.
"""

import importlib
import importlib.util
import os
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from .._info import first_line


@dataclass(frozen=True)
class Implementation:
    """One implementation: a family of :class:`lsm.bench.cases.Op` provided by ``module``."""

    name: str
    family: str  # the Op attribute: lsm, lsm_alloc, lsm_in_place, naive, special, torch, torch_out, jax
    module: str  # what is imported and handed to the family's callable
    description: str

    @property
    def uses_torch(self):
        return self.module == "torch"

    @property
    def uses_jax(self):
        return self.module == "jax"

    @property
    def in_place(self):
        """Whether each call overwrites its first operand (which then must be its own copy)."""
        return self.family == "lsm_in_place"

    def supports(self, op):
        return getattr(op, self.family) is not None

    def installed(self):
        return importlib.util.find_spec(self.module.split(".")[0]) is not None


def _torch_implementations(device):
    return (
        Implementation("torch", "torch", "torch", f"torch.<op> on a {device} tensor (allocates)"),
        Implementation("torch_out", "torch_out", "torch", f"torch's out= kernels on a {device} tensor"),
    )


class Backend:
    """The interface of a backend (see the module docstring); subclasses fill it in."""

    name = ""
    implementations_table = ()  # every implementation this backend knows, installed or not
    traces_memory = False  # whether tracemalloc sees its arrays (lsm.bench.runner.traced_peak)

    def unavailable(self):
        """Why this backend cannot run here (one line), or None when it can."""
        raise NotImplementedError

    @property
    def implementations(self):
        """The implementations whose library is installed, in table order."""
        return tuple(impl for impl in self.implementations_table if impl.installed())

    def load(self, implementation):
        """Import the implementation's library, configured for a fair comparison."""
        return importlib.import_module(implementation.module)

    def to_device(self, array):
        raise NotImplementedError

    def to_host(self, result):
        """A NumPy copy of a result (of any implementation)."""
        raise NotImplementedError

    def to_torch(self, array):
        """A torch tensor sharing ``array``'s memory (or a writeable copy of a read-only input)."""
        raise NotImplementedError

    def to_jax(self, array):
        """A jax array on this backend's device holding ``array``'s values."""
        raise NotImplementedError

    def peer_arrays(self, implementation, operands, out):
        """``(operands, out)`` as the implementation's library takes them.

        torch gets tensors; jax gets jax arrays (made here, outside the timed call) and no
        ``out``, since its arrays are immutable; the others take the backend's arrays.
        """
        if implementation.uses_torch:
            return tuple(map(self.to_torch, operands)), self.to_torch(out)
        if implementation.uses_jax:
            return tuple(map(self.to_jax, operands)), None
        return operands, out

    def implementation_info(self, implementation, module):
        """Facts about a loaded implementation's library for ``extra_info``: its threads."""
        if implementation.uses_torch:
            return {"torch_threads": module.get_num_threads()}
        if implementation.uses_jax:
            # XLA has no thread-count setting once loaded; XLA_FLAGS, set before the run, is what
            # limits it ("--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1": one).
            return {"xla_flags": os.environ.get("XLA_FLAGS", "")}
        return {}

    def empty(self, shape, dtype):
        raise NotImplementedError

    def synchronise(self):
        """Wait for the device's queued work (nothing to wait for on the CPU)."""

    def synchronised(self, call):
        """``call`` followed by :meth:`synchronise`, for timers that time each call on its own."""
        return call

    def copy_calls(self, x):
        """``{name: no-argument call}`` copying ``x`` (on the device) into a preallocated array.

        The first name is the normaliser ``fraction_of_copy`` refers to.
        """
        raise NotImplementedError

    def info(self):
        """Backend facts for ``extra_info`` (threads, device)."""
        return {}


@njit(parallel=True, cache=True)
def parallel_copy(src, dst):
    """``dst[:] = src`` for contiguous 1-d arrays, spread over Numba's threads like lsm's kernels."""
    for i in prange(src.shape[0]):
        dst[i] = src[i]


class CpuBackend(Backend):
    """NumPy arrays; the copy is a Numba ``parallel=True`` loop on as many threads as lsm uses."""

    name = "cpu"
    traces_memory = True
    implementations_table = (
        Implementation("lsm", "lsm", "lsm", "lsm.<op>(x, out=...)"),
        Implementation("lsm_alloc", "lsm_alloc", "lsm", "lsm.<op>(x), allocating its result"),
        Implementation("lsm_in_place", "lsm_in_place", "lsm", "lsm.<op>(x, out=x): over its first operand"),
        Implementation("numpy", "naive", "numpy", "textbook NumPy: max, subtract, exp, sum, log"),
        Implementation("scipy", "special", "scipy.special", "scipy.special.<op> (allocates)"),
        *_torch_implementations("CPU"),
        Implementation("jax", "jax", "jax", "jax.jit(jax.nn.<op> / jax.scipy.special.<op>), axis static"),
    )

    def unavailable(self):
        return None

    def load(self, implementation):
        module = super().load(implementation)
        if implementation.uses_torch:
            module.set_num_threads(numba.get_num_threads())  # both libraries on the same threads
        if implementation.uses_jax:
            # jax rounds float64 arrays to float32 unless 64-bit types are enabled
            module.config.update("jax_enable_x64", True)
        return module

    def to_device(self, array):
        return array

    def to_host(self, result):
        if hasattr(result, "numpy"):
            return result.numpy()
        return np.asarray(result)

    def to_torch(self, array):
        import torch

        return torch.from_numpy(array if array.flags.writeable else array.copy())

    def to_jax(self, array):
        import jax

        return jax.device_put(array)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def copy_calls(self, x):
        # Unsigned integers of the same width copy the same bytes, also for float16 (which Numba lacks).
        src = np.ascontiguousarray(x).reshape(-1).view(f"u{x.dtype.itemsize}")
        dst = np.empty_like(src)
        return {
            "copy": lambda: parallel_copy(src, dst),
            "serial_copy": lambda: np.copyto(dst, src),
        }

    def info(self):
        return {"numba_threads": numba.get_num_threads()}


class CudaBackend(Backend):
    """CuPy arrays on the current CUDA device; the copy is ``cupy.copyto`` of the input."""

    name = "cuda"
    implementations_table = (
        Implementation("lsm", "lsm", "lsm", "lsm.<op>(x, out=...) on a CuPy array"),
        Implementation("lsm_alloc", "lsm_alloc", "lsm", "lsm.<op>(x) on a CuPy array, allocating"),
        Implementation("cupy", "naive", "cupy", "textbook CuPy: max, subtract, exp, sum, log"),
        Implementation("cupyx", "special", "cupyx.scipy.special", "cupyx.scipy.special.<op> (allocates)"),
        *_torch_implementations("CUDA"),
    )

    def unavailable(self):
        try:
            import cupy
        except Exception as error:  # ImportError, or a broken install failing as it loads
            return (
                f"CuPy is not installed or does not import ({first_line(error)}); install CuPy for your CUDA"
            )
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as error:  # no driver: CUDARuntimeError, or a missing library
            return f"CuPy finds no CUDA GPU ({first_line(error)})"
        return None if count > 0 else "CuPy finds no CUDA GPU (0 devices)"

    @property
    def implementations(self):
        found = super().implementations
        if any(impl.uses_torch for impl in found):
            import torch

            if not torch.cuda.is_available():
                found = tuple(impl for impl in found if not impl.uses_torch)
        return found

    def to_device(self, array):
        import cupy

        return cupy.asarray(array)

    def to_host(self, result):
        if hasattr(result, "get"):
            return result.get()
        if hasattr(result, "cpu"):
            return result.cpu().numpy()
        return np.asarray(result)

    def to_torch(self, array):
        import torch

        return torch.from_dlpack(array)

    def empty(self, shape, dtype):
        import cupy

        return cupy.empty(shape, dtype=dtype)

    def synchronise(self):
        import cupy

        cupy.cuda.Device().synchronize()

    def synchronised(self, call):
        def call_and_wait():
            call()
            self.synchronise()

        return call_and_wait

    def copy_calls(self, x):
        import cupy

        dst = cupy.empty_like(x)
        return {"copy": lambda: cupy.copyto(dst, x)}

    def info(self):
        import cupy

        properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = properties["name"]
        return {"device": name.decode() if isinstance(name, bytes) else name}


BACKENDS = {backend.name: backend for backend in (CpuBackend(), CudaBackend())}
