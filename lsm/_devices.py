"""Which in-memory backend owns the arrays of a call: host (``lsm.cpu``) or device (``lsm.cuda``).

Decided from the types alone, without importing any GPU module: an object is recognised by the
attributes and module names it carries. Host arrays (NumPy and anything ``np.asarray`` accepts)
go to the CPU backend; device arrays (``__cuda_array_interface__``, a CUDA ``__dlpack_device__``,
the CUDA simulator's arrays) go to the CUDA backend, which is imported the first time a device
array is seen. Host and device arguments are never mixed: lsm does not copy between them behind
the caller's back.
"""

import numpy as np

from . import _validate
from .cpu import BACKEND as HOST

_DLPACK_CPU = 1  # kDLCPU in the DLPack spec


def _is_simulator_array(obj):
    return type(obj).__module__.startswith("numba.cuda.simulator")


def _has_interface(obj):
    # torch raises RuntimeError (not AttributeError) from the property for a tensor that requires
    # grad: such a tensor is a device array all the same, and lsm's own check names the problem.
    try:
        return hasattr(obj, "__cuda_array_interface__")
    except Exception:
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


def _gpu_backend(func, operands):
    on_host = [name for name, operand in operands.items() if not _is_gpu_array(operand)]
    if on_host:
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


def backend_for(func, **operands):
    """The in-memory backend (``lsm._protocol.Backend``) that runs ``func`` on these operands.

    Parameters
    ----------
    func : str
        The public function's name, for messages.
    **operands
        The array arguments of the call by name (``None`` entries are skipped); the names
        appear in error messages. The first names the array whose kind results take.

    Raises
    ------
    TypeError
        If host and device arrays are mixed, a GPU array lacks ``__cuda_array_interface__``, or
        an operand is a NumPy masked array (whose mask would be silently dropped).
    ImportError
        For a device array when numba-cuda is not installed.
    """
    operands = {name: operand for name, operand in operands.items() if operand is not None}
    on_gpu = False
    for name, operand in operands.items():
        if isinstance(operand, np.ma.MaskedArray):
            raise _validate.masked_array(func, name)
        on_gpu = on_gpu or _is_gpu_array(operand)
    return _gpu_backend(func, operands) if on_gpu else HOST
