"""Which in-memory backend owns the arrays of a call: host (``lsm.cpu``) or device (``lsm.cuda``).

Decided from the types alone, without importing any GPU module: an object is recognised by the
attributes and module names it carries. Host arrays (NumPy and anything ``np.asarray`` accepts)
go to the CPU backend; device arrays (``__cuda_array_interface__``, a CUDA ``__dlpack_device__``,
the CUDA simulator's arrays) go to the CUDA backend, which is imported the first time a device
array is seen. Host and device arguments are never mixed: lsm does not copy between them behind
the caller's back.

A call whose first array is a torch CPU tensor runs on the CPU backend through
:class:`TorchHost`: tensors are read and written through NumPy views of their memory (no copy),
and results are torch tensors (a 0-d result a 0-d tensor, as torch's reductions give), as a torch
CUDA tensor gives torch results on the GPU. These functions build no autograd graph, so a tensor
that requires grad is refused (``lsm.torch`` has the autograd-aware versions).
"""

import functools

import numpy as np

from . import _validate
from .cpu import BACKEND as HOST
from .cpu import CpuBackend

_DLPACK_CPU = 1  # kDLCPU in the DLPack spec


@functools.lru_cache(maxsize=256)
def package_of(cls):
    """The top-level package of the module defining ``cls`` ("numpy", "cupy", "torch", ...;
    remembered per type: every call asks it of each operand)."""
    return cls.__module__.partition(".")[0]


def _is_simulator_array(obj):
    return type(obj).__module__.startswith("numba.cuda.simulator")


def _has_interface(obj):
    # Not read when the type says enough: CuPy and torch define the interface as a property,
    # which builds its dict on every read (the call reads it once, later); torch defines it for
    # tensors on every device, so a tensor's own flag answers.
    cls = type(obj)
    if package_of(cls) == "torch":
        return bool(getattr(obj, "is_cuda", False))
    if hasattr(cls, "__cuda_array_interface__"):
        return True
    try:
        return hasattr(obj, "__cuda_array_interface__")
    except Exception:  # a property that raises (not AttributeError): a device array all the same
        return True


def _is_gpu_array(obj):
    return _has_interface(obj) or _is_simulator_array(obj) or _on_gpu_by_dlpack(obj)


def _on_gpu_by_dlpack(obj):
    """Whether ``obj``, which has no CUDA array interface, names a device other than the CPU
    through DLPack (an array lsm cannot read, to be refused by name)."""
    if _is_torch(obj) and obj.is_cpu:  # asking DLPack costs a torch tensor about 3 us
        return False
    if hasattr(obj, "__dlpack_device__") and not isinstance(obj, np.ndarray):
        try:
            device_type, _ = obj.__dlpack_device__()
        except Exception:  # a broken or CPU-only protocol implementation: not a GPU array
            return False
        return int(device_type) != _DLPACK_CPU
    return False


@functools.cache
def _cuda_backend():
    """``lsm.cuda.CudaBackend``, imported on the first call with a device array (an ImportError
    is not remembered: numba-cuda may be installed later in the session)."""
    try:
        from .cuda import CudaBackend
    except ImportError as error:
        raise ImportError(
            "lsm: GPU arrays need numba-cuda; install the extra with pip install 'lsm-kernels[cuda]' "
            "(CUDA 12) or 'lsm-kernels[cuda13]' (CUDA 13)"
        ) from error
    return CudaBackend


def _is_torch(obj):
    return package_of(type(obj)) == "torch"


def _numpy_view(tensor, func, name):
    """A NumPy view of the memory of the torch CPU tensor ``tensor`` (bfloat16 as ml_dtypes')."""
    if tensor.requires_grad:
        raise _validate.requires_grad(func, name)
    try:
        return torch_numpy(tensor)
    except (RuntimeError, TypeError) as error:  # a dtype NumPy lacks, a conjugate view, ...
        raise _validate.not_convertible(func, name, error) from error


def torch_numpy(tensor):
    """The torch CPU tensor ``tensor`` as a NumPy array over the same memory (bfloat16 as
    ml_dtypes')."""
    if str(tensor.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: view the bits
        import torch

        return tensor.view(torch.int16).numpy().view(_validate.bfloat16_dtype())
    return tensor.numpy()


def torch_tensor(array):
    """The NumPy array ``array`` as a torch tensor over the same memory."""
    import torch

    if _validate.dtype_name(array.dtype) == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


class TorchHost(CpuBackend):
    """The CPU backend for torch CPU tensors: the host backend's methods, with torch tensors read
    and written through NumPy views of their memory and results allocated as torch tensors (see
    the module docstring). A subclass, not a wrapper that forwards unknown attributes: each
    forwarded lookup fails first, and a call makes several (about a microsecond each)."""

    def describe(self, array, func, name):
        return super().describe(_numpy_view(array, func, name) if _is_torch(array) else array, func, name)

    def describe_out(self, out, func, name):
        return super().describe_out(_numpy_view(out, func, name) if _is_torch(out) else out, func, name)

    def empty(self, shape, dtype, like=None):
        _, array = super().empty(shape, dtype, like)
        return torch_tensor(array), array

    def finish(self, result):
        """A 0-d result stays a 0-d tensor, as torch's reductions return."""
        return result


TORCH_HOST = TorchHost()


def backend_for(func, operands):
    """The in-memory backend (``lsm._protocol.Backend``) that runs ``func`` on these operands.

    Parameters
    ----------
    func : str
        The public function's name, for messages.
    operands : dict
        The array arguments of the call by name (``None`` entries are skipped); the names
        appear in error messages. The first names the array whose kind results take (on the
        host: torch tensors for a torch tensor, else NumPy arrays).

    Raises
    ------
    TypeError
        If host and device arrays are mixed, a GPU array lacks ``__cuda_array_interface__``, an
        operand is a NumPy masked array (whose mask would be silently dropped), or a torch tensor
        requires grad.
    ImportError
        For a device array when numba-cuda is not installed.
    """
    first = None  # (name, operand) of the first array
    on_host, on_gpu, hidden = [], [], []  # names; hidden: GPU arrays without the interface
    for name, operand in operands.items():
        if operand is None:
            continue
        if first is None:
            first = name, operand
        if type(operand) is np.ndarray:  # the common case first
            on_host.append(name)
        elif isinstance(operand, np.ma.MaskedArray):
            raise _validate.masked_array(func, name)
        elif _has_interface(operand) or _is_simulator_array(operand):
            on_gpu.append(name)
        elif _on_gpu_by_dlpack(operand):
            on_gpu.append(name)
            hidden.append(name)
        else:
            on_host.append(name)
    if not on_gpu:
        return TORCH_HOST if first is not None and _is_torch(first[1]) else HOST
    if on_host:
        raise _validate.mixed_devices(func, on_gpu, on_host)
    if hidden:
        raise _validate.no_array_interface(func, hidden[0], operands[hidden[0]])
    return _cuda_backend()(func, *first)
