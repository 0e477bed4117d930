"""Which backend owns the arrays of a call.

Decided from the types alone, without importing any GPU or Dask module: an object is recognised
by the attributes and module names it carries. Host arrays (NumPy and anything ``np.asarray``
accepts) go to the CPU kernels (``lsm.cpu``); device arrays (``__cuda_array_interface__``, a CUDA
``__dlpack_device__``, the CUDA simulator's arrays) go to the CUDA backend (``lsm.cuda``), which
is imported the first time a device array is seen. Host and device arguments are never mixed:
lsm does not copy between them behind the caller's back. Dask arrays never reach
:func:`backend_for`: the public functions hand them to ``lsm._dask`` first (see
:func:`uses_dask`), whose block tasks call lsm on each chunk.
"""

import numpy as np

from .cpu import _launch as cpu_backend

HOST = cpu_backend  # the backend of host arrays
_DLPACK_CPU = 1  # kDLCPU in the DLPack spec


def _type_name(obj):
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _is_simulator_array(obj):
    return type(obj).__module__.startswith("numba.cuda.simulator")


def _is_gpu_array(obj):
    if hasattr(obj, "__cuda_array_interface__") or _is_simulator_array(obj):
        return True
    if hasattr(obj, "__dlpack_device__") and not isinstance(obj, np.ndarray):
        try:
            device_type, _ = obj.__dlpack_device__()
        except Exception:  # a broken or CPU-only protocol implementation: not a GPU array
            return False
        return int(device_type) != _DLPACK_CPU
    return False


def uses_dask(*operands):
    """Whether any operand is a Dask collection: such calls build a lazy graph (``lsm._dask``)."""
    return any(type(operand).__module__.split(".")[0] == "dask" for operand in operands)


def _gpu_backend(operands):
    on_host = [name for name, operand in operands.items() if not _is_gpu_array(operand)]
    if on_host:
        on_device = [name for name in operands if name not in on_host]
        raise TypeError(
            f"lsm: {', '.join(map(repr, on_device))} on the GPU but {', '.join(map(repr, on_host))} on the "
            "host; pass every array argument on the same side (lsm never copies between host and device)"
        )
    for name, operand in operands.items():
        if not hasattr(operand, "__cuda_array_interface__") and not _is_simulator_array(operand):
            raise TypeError(
                f"lsm: {name!r} ({_type_name(operand)}) is a GPU array without __cuda_array_interface__; "
                "lsm reads device memory through that interface (wrap it with cupy.from_dlpack, for example)"
            )
    try:
        from .cuda import _call
    except ImportError as error:
        raise ImportError(
            "lsm: GPU arrays need numba-cuda; install the extra with pip install 'lsm[cuda]'"
        ) from error
    return _call


def backend_for(**operands):
    """The backend that runs a call on these operands.

    Parameters
    ----------
    **operands
        The array arguments of the call by name (``None`` entries are skipped); the names
        appear in error messages.

    Returns
    -------
    module
        :data:`HOST` (``lsm.cpu._launch``) for host arrays, whose functions take the canonical
        NumPy views; ``lsm.cuda._call`` for device arrays, whose ``softmax_family`` and
        ``logsumexp`` take the public call's arguments (the gradients and losses on device
        arrays are in ``lsm.cuda._call_losses``, imported once this has succeeded).

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
    for operand in operands.values():
        if isinstance(operand, np.ma.MaskedArray):
            raise TypeError(
                "lsm does not accept numpy.ma.MaskedArray (its mask would be ignored); "
                "pass the data and where=~mask instead"
            )
        on_gpu = on_gpu or _is_gpu_array(operand)
    return _gpu_backend(operands) if on_gpu else HOST
