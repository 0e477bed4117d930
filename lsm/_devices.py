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

import numpy as np

from . import _validate
from .cpu import BACKEND as HOST

_DLPACK_CPU = 1  # kDLCPU in the DLPack spec


def _is_simulator_array(obj):
    return type(obj).__module__.startswith("numba.cuda.simulator")


def _has_interface(obj):
    # Not read when the type says enough: CuPy and torch define the interface as a property,
    # which builds its dict on every read (the call reads it once, later); torch defines it for
    # tensors on every device, so a tensor's own flag answers.
    if _is_torch(obj):
        return bool(getattr(obj, "is_cuda", False))
    if hasattr(type(obj), "__cuda_array_interface__"):
        return True
    try:
        return hasattr(obj, "__cuda_array_interface__")
    except Exception:  # a property that raises (not AttributeError): a device array all the same
        return True


def _is_gpu_array(obj):
    if _has_interface(obj) or _is_simulator_array(obj):
        return True
    if hasattr(obj, "__dlpack_device__") and not isinstance(obj, np.ndarray):
        try:
            device_type, _ = obj.__dlpack_device__()
        except Exception:  # a broken or CPU-only protocol implementation: not a GPU array
            return False
        return int(device_type) != _DLPACK_CPU
    return False


def _gpu_backend(func, operands, on_gpu):
    """The CUDA backend of a call whose operands (by name) are on the GPU where ``on_gpu`` says."""
    if not all(on_gpu):
        on_host = [name for name, gpu in zip(operands, on_gpu, strict=True) if not gpu]
        raise _validate.mixed_devices(func, [name for name in operands if name not in on_host], on_host)
    for name, operand in operands.items():
        if not _has_interface(operand) and not _is_simulator_array(operand):
            raise _validate.no_array_interface(func, name, operand)
    try:
        from .cuda import CudaBackend
    except ImportError as error:
        raise ImportError(
            "lsm: GPU arrays need numba-cuda; install the extra with pip install 'lsm-kernels[cuda]' "
            "(CUDA 12) or 'lsm-kernels[cuda13]' (CUDA 13)"
        ) from error
    return CudaBackend(func, *next(iter(operands.items())))


def _is_torch(obj):
    return type(obj).__module__.split(".")[0] == "torch"


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

    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


class TorchHost:
    """The CPU backend for torch CPU tensors: the host backend's methods, with torch tensors read
    and written through NumPy views of their memory and results allocated as torch tensors (see
    the module docstring)."""

    def __getattr__(self, name):
        return getattr(HOST, name)

    def describe(self, array, func, name):
        return HOST.describe(_numpy_view(array, func, name) if _is_torch(array) else array, func, name)

    def describe_out(self, out, func, name):
        return HOST.describe_out(_numpy_view(out, func, name) if _is_torch(out) else out, func, name)

    def empty(self, shape, dtype, like=None):
        _, array = HOST.empty(shape, dtype, like)
        return torch_tensor(array), array

    def finish(self, result):
        """A 0-d result stays a 0-d tensor, as torch's reductions return."""
        return result


TORCH_HOST = TorchHost()


def backend_for(func, **operands):
    """The in-memory backend (``lsm._protocol.Backend``) that runs ``func`` on these operands.

    Parameters
    ----------
    func : str
        The public function's name, for messages.
    **operands
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
    operands = {name: operand for name, operand in operands.items() if operand is not None}
    on_gpu = []
    for name, operand in operands.items():
        if isinstance(operand, np.ma.MaskedArray):
            raise _validate.masked_array(func, name)
        on_gpu.append(_is_gpu_array(operand))
    if any(on_gpu):
        return _gpu_backend(func, operands, on_gpu)
    return TORCH_HOST if operands and _is_torch(next(iter(operands.values()))) else HOST
