"""The caller's kind of device array: how to allocate results like it, and which stream it uses.

Results are the same kind of array as the input: CuPy in, CuPy out (allocated from CuPy's memory
pool, computed on CuPy's current stream); torch in, torch out (torch's caching allocator and
current CUDA stream); a Numba device array (the simulator's included), or any other object with
``__cuda_array_interface__``, gives a Numba device array on the stream the interface names (or
the array is bound to). Kinds are told apart by module name, so nothing is imported for a kind
the caller does not use.
"""

from . import _numba


class _CupyKind:
    def __init__(self):
        import cupy

        self._cupy = cupy
        self.stream = _numba.stream(cupy.cuda.get_current_stream().ptr)

    def empty(self, shape, dtype):
        return self._cupy.empty(shape, dtype=dtype)


class _TorchKind:
    def __init__(self, array):
        import torch

        self._torch = torch
        self._device = array.device
        self.stream = _numba.stream(torch.cuda.current_stream(array.device).cuda_stream)

    def empty(self, shape, dtype):
        return self._torch.empty(shape, dtype=getattr(self._torch, dtype.name), device=self._device)


class _NumbaKind:
    def __init__(self, array):
        if _numba.is_numba_device_array(array):
            handle = getattr(array, "stream", 0)
        else:
            handle = array.__cuda_array_interface__.get("stream")
        self.stream = _numba.stream(handle)

    def empty(self, shape, dtype):
        return _numba.device_array(shape, dtype, self.stream)


def kind_of(array):
    """The kind of the device array ``array`` (an object with ``stream`` and ``empty``)."""
    root = type(array).__module__.split(".")[0]
    if root == "cupy":
        return _CupyKind()
    if root == "torch":
        return _TorchKind(array)
    return _NumbaKind(array)
