"""Which backend owns an array.

Decided from the type alone, without importing any GPU or Dask module: an object is recognised
by the attributes and module names it carries. Today the NumPy backend (``lsm.cpu``) runs the
kernels; GPU arrays get a clear ``NotImplementedError`` naming their type instead of a silent
copy to the host. Dask arrays never reach :func:`backend_for`: the public functions hand them to
``lsm._dask`` first (see :func:`uses_dask`), whose block tasks call lsm on each chunk.
"""

import numpy as np

from .cpu import _launch as cpu_backend


def _type_name(obj):
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _is_gpu_array(obj):
    if hasattr(obj, "__cuda_array_interface__"):
        return True
    if hasattr(obj, "__dlpack_device__") and not isinstance(obj, np.ndarray):
        try:
            device_type, _ = obj.__dlpack_device__()
        except Exception:  # a broken or CPU-only protocol implementation: not a GPU array
            return False
        return int(device_type) != 1  # 1 is kDLCPU in the DLPack spec
    return False


def uses_dask(*operands):
    """Whether any operand is a Dask collection: such calls build a lazy graph (``lsm._dask``)."""
    return any(type(operand).__module__.split(".")[0] == "dask" for operand in operands)


def backend_for(*operands):
    """The backend that runs a call on these operands: a module with ``softmax`` and ``logsumexp``.

    Parameters
    ----------
    *operands
        The array arguments of the call (``None`` entries are skipped).

    Returns
    -------
    module
        ``lsm.cpu._launch`` for NumPy arrays and anything ``np.asarray`` accepts.

    Raises
    ------
    NotImplementedError
        If an operand is a GPU array: that backend is not available yet.
    TypeError
        If an operand is a NumPy masked array, whose mask would be silently dropped.
    """
    for operand in operands:
        if operand is None:
            continue
        if isinstance(operand, np.ma.MaskedArray):
            raise TypeError(
                "lsm does not accept numpy.ma.MaskedArray (its mask would be ignored); "
                "pass the data and where=~mask instead"
            )
        if _is_gpu_array(operand):
            raise NotImplementedError(
                f"lsm has no GPU backend yet: got {_type_name(operand)}; "
                "copy the array to the host explicitly (for example with .get()) to use the CPU kernels"
            )
    return cpu_backend
