"""Where benchmarks run: the CPU (NumPy arrays) and CUDA (CuPy arrays, or torch tensors) backends.

A backend lists the implementations it runs (which family of :data:`lsm.bench.table.OPS` each
uses, with which library), moves the seeded NumPy inputs to its device, allocates outputs there,
converts operands for torch and jax, waits for queued device work, and makes the memory copies of
an input (the fastest of them is the copy every throughput is a fraction of). Adding a backend is
one class and one entry in :data:`BACKENDS`.

Nothing here imports CuPy, torch or jax until a benchmark on them is prepared (or, for torch when
installed, until the first copy of a CPU input: its ``copy_`` is one of the copies).
"""

import importlib
import importlib.util
import warnings
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from .._devices import torch_numpy, torch_tensor
from .._info import first_line
from ..cpu._cache import njit


class Implementation(NamedTuple):
    """An implementation: the family of :attr:`lsm.bench.table.Op.impls` it runs, and its library."""

    name: str
    family: str
    module: str
    description: str

    def installed(self):
        return importlib.util.find_spec(self.module.split(".")[0]) is not None


def _torch_implementations(device):
    return (
        Implementation("torch", "torch", "torch", f"torch.<op> on a {device} tensor (allocates)"),
        Implementation("torch_out", "torch_out", "torch", f"torch's out= kernels on a {device} tensor"),
    )


class Backend:
    """What every backend provides; see the module docstring."""

    name = ""
    implementations_table = ()  # every implementation this backend knows, installed or not
    traces_memory = False  # whether tracemalloc sees its arrays

    @property
    def implementations(self):
        """The implementations whose library is installed, in table order."""
        return tuple(impl for impl in self.implementations_table if impl.installed())

    def unavailable(self):
        """Why this backend cannot run here (one line), or None when it can."""
        return None

    def load(self, implementation):
        """The implementation's library, configured for a fair comparison."""
        return importlib.import_module(implementation.module)

    def operands(self, implementation, operands, out):
        """``(operands, out)`` as the implementation's library takes them (on the device).

        torch gets tensors sharing their memory; jax gets its own arrays (made here, outside the
        timed call) and no ``out``, its arrays being immutable.
        """
        if implementation.module == "torch":
            return tuple(map(self.to_torch, operands)), self.to_torch(out)
        if implementation.module == "jax":
            import jax

            return tuple(map(jax.device_put, operands)), None
        return operands, out

    def synchronise(self):
        """Wait for the device's queued work (nothing to wait for on the CPU)."""


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
        Implementation("numpy", "numpy", "numpy", "textbook NumPy: max, subtract, exp, sum, log"),
        Implementation("scipy", "scipy", "scipy.special", "scipy.special.<op> (allocates)"),
        *_torch_implementations("CPU"),
        Implementation("jax", "jax", "jax", "jax.jit(jax.nn.<op> / jax.scipy.special.<op>), axis static"),
    )

    def load(self, implementation):
        module = super().load(implementation)
        if implementation.module == "torch":
            module.set_num_threads(numba.get_num_threads())  # both libraries on the same threads
        if implementation.module == "jax":
            # jax rounds float64 arrays to float32 unless 64-bit types are enabled
            module.config.update("jax_enable_x64", True)
        return module

    def to_device(self, array):
        return array

    def to_host(self, result):
        return torch_numpy(result) if hasattr(result, "numpy") else np.asarray(result)

    def to_torch(self, array):
        return torch_tensor(array if array.flags.writeable else array.copy())

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def copy_calls(self, x, dst=None):
        """No-argument calls copying ``x`` into ``dst`` (preallocated when None), by name: Numba's
        ``parallel=True`` loop on lsm's threads, ``np.copyto`` (one thread, but the C library's
        ``memcpy``, with non-temporal stores for large blocks) and, when installed, torch's
        ``copy_`` on as many threads; the engine takes the fastest as the copy of the run."""
        # Unsigned integers of the same width copy the same bytes, also for float16 (which Numba lacks).
        src = np.ascontiguousarray(x).reshape(-1).view(f"u{x.dtype.itemsize}")
        dst = np.empty_like(x) if dst is None else dst
        dst = dst.reshape(-1).view(src.dtype)  # a view: the calls write into the caller's array
        calls = {"numba": lambda: parallel_copy(src, dst), "numpy": lambda: np.copyto(dst, src)}
        if importlib.util.find_spec("torch") is not None:
            import torch

            torch.set_num_threads(numba.get_num_threads())
            # torch has no uint32 or uint64 arithmetic, but copies them as bytes all the same; the
            # source may be read-only (torch warns about that, and only reads it here)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
                src_t = torch.from_numpy(src.view(np.uint8))
            dst_t = torch.from_numpy(dst.view(np.uint8))
            calls["torch"] = lambda: dst_t.copy_(src_t)
        return calls

    def info(self):
        """Backend facts for the results' ``machine_info``."""
        return {"numba_num_threads": numba.get_num_threads()}


class CudaBackend(Backend):
    """CuPy arrays on the current CUDA device; the copy is ``cupy.copyto`` of the input."""

    name = "cuda"
    implementations_table = (
        Implementation("lsm", "lsm", "lsm", "lsm.<op>(x, out=...) on a CuPy array"),
        Implementation("lsm_alloc", "lsm_alloc", "lsm", "lsm.<op>(x) on a CuPy array, allocating"),
        Implementation("cupy", "numpy", "cupy", "textbook CuPy: max, subtract, exp, sum, log"),
        Implementation("cupyx", "scipy", "cupyx.scipy.special", "cupyx.scipy.special.<op> (allocates)"),
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
        if any(impl.module == "torch" for impl in found):
            import torch

            if not torch.cuda.is_available():  # a CPU-only build of torch
                found = tuple(impl for impl in found if impl.module != "torch")
        return found

    def to_device(self, array):
        import cupy

        return cupy.asarray(array)

    def to_host(self, result):
        if hasattr(result, "get"):
            return result.get()
        return torch_numpy(result.cpu()) if hasattr(result, "cpu") else np.asarray(result)

    def to_torch(self, array):
        import torch

        return torch.from_dlpack(array)

    def empty(self, shape, dtype):
        import cupy

        return cupy.empty(shape, dtype=dtype)

    def synchronise(self):
        import cupy

        cupy.cuda.Device().synchronize()

    def copy_calls(self, x, dst=None):
        import cupy

        dst = cupy.empty_like(x) if dst is None else dst
        return {"cupy": lambda: cupy.copyto(dst, x)}

    def info(self):
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
        return {"gpu": name.decode() if isinstance(name, bytes) else name}


class TorchBackend(Backend):
    """torch tensors on ``device`` (``"cuda"``: the current CUDA device), lsm beside torch's own
    functions; the copy is torch's ``copy_``. On a GPU this is how bfloat16 is measured (CuPy
    has none); on ``"cpu"`` the same cases run on lsm's host kernels through torch CPU tensors."""

    implementations_table = (
        Implementation("lsm", "lsm", "lsm", "lsm.<op>(x, out=...) on a torch tensor"),
        Implementation("lsm_alloc", "lsm_alloc", "lsm", "lsm.<op>(x) on a torch tensor, allocating"),
        Implementation("torch", "torch", "torch", "torch.<op> (allocates)"),
        Implementation("torch_out", "torch_out", "torch", "torch's out= kernels"),
    )

    def __init__(self, device):
        self.device = device
        self.name = "torch" if device == "cpu" else f"{device}-torch"

    def unavailable(self):
        try:
            import torch
        except Exception as error:
            return f"torch is not installed or does not import ({first_line(error)})"
        if self.device == "cuda" and not torch.cuda.is_available():
            return "torch finds no CUDA GPU (or is a CPU-only build)"
        return None

    def to_device(self, array):
        return torch_tensor(np.ascontiguousarray(array)).to(self.device)

    def to_host(self, result):
        return torch_numpy(result.cpu()) if hasattr(result, "cpu") else np.asarray(result)

    def to_torch(self, array):
        return array

    def empty(self, shape, dtype):
        import torch

        return torch.empty(shape, dtype=getattr(torch, np.dtype(dtype).name), device=self.device)

    def synchronise(self):
        if self.device != "cpu":
            import torch

            torch.cuda.synchronize()

    def copy_calls(self, x, dst=None):
        dst = x.clone() if dst is None else dst
        return {"torch": lambda: dst.copy_(x)}

    def info(self):
        import torch

        if self.device == "cpu":
            return {"torch_num_threads": torch.get_num_threads()}
        return {"gpu": torch.cuda.get_device_name()}


BACKENDS = {backend.name: backend for backend in (CpuBackend(), CudaBackend(), TorchBackend("cuda"))}
