"""The caller's kind of device array: its device, how to allocate results like it, and its stream.

Results are the same kind of array as the input: CuPy in, CuPy out (allocated from CuPy's memory
pool on the array's device, computed on CuPy's current stream of that device); torch in, torch
out (torch's caching allocator and current CUDA stream of the tensor's device); a Numba device
array (the simulator's included), or any other object with ``__cuda_array_interface__``, gives a
Numba device array on the current device and on the stream the interface names (or the array is
bound to). Kinds are told apart by module name, so nothing is imported for a kind the caller
does not use. A kind is made inside ``_numba.on_device(device)``, so its stream belongs to the
array's device.
"""

from .._validate import dtype_name
from . import _numba


class _CupyKind:
    name = "cupy"

    def __init__(self, array):
        import cupy

        self._cupy = cupy
        self.device = array.device.id

    def start(self):
        with self._cupy.cuda.Device(self.device):
            self.stream = _numba.stream(self._cupy.cuda.get_current_stream().ptr)

    def empty(self, shape, dtype):
        with self._cupy.cuda.Device(self.device):
            array = self._cupy.empty(shape, dtype=dtype)
        return array, array.data.ptr


class _TorchKind:
    name = "torch"

    def __init__(self, array):
        import torch

        self._torch = torch
        self._device = array.device
        self.device = array.device.index

    def start(self):
        self.stream = _numba.stream(self._torch.cuda.current_stream(self._device).cuda_stream)

    def empty(self, shape, dtype):
        array = self._torch.empty(shape, dtype=getattr(self._torch, dtype_name(dtype)), device=self._device)
        return array, array.data_ptr()


class _NumbaKind:
    name = "numba"
    device = None  # the current device: the interface does not say which device memory is on

    def __init__(self, array, handle):
        if _numba.is_numba_device_array(array):
            self._handle = getattr(array, "stream", 0) or None  # 0: not bound to a stream
        else:
            self._handle = handle

    def start(self):
        self.stream = _numba.stream(self._handle)

    def empty(self, shape, dtype):
        array = _numba.device_array(shape, dtype, self.stream)
        return array, _numba.interface(array)["data"][0]


def kind_of(array, handle=None):
    """The kind of the device array ``array``: an object with ``device`` (an index, or None for
    the current device), ``stream`` and ``empty(shape, dtype)``, which gives a new C-contiguous
    array and its device pointer (read the library's own way: torch's
    ``__cuda_array_interface__`` is a Python property that builds a dict, several times the cost
    of ``data_ptr()``). ``handle`` is the stream its interface names
    (see ``_layout.read``), the stream of an array of no library lsm knows."""
    root = type(array).__module__.split(".")[0]
    if root == "cupy":
        kind = _CupyKind(array)
    elif root == "torch":
        kind = _TorchKind(array)
    else:
        kind = _NumbaKind(array, handle)
    with _numba.on_device(kind.device):
        kind.start()
    return kind
