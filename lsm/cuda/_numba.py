"""The one module that imports ``numba.cuda``.

numba-cuda is in maintenance mode and a successor library exists; everything lsm takes from it
passes through here, so a switch touches this file only. The rest of ``lsm.cuda`` uses:

- ``cuda``: the kernel language (``cuda.jit`` for device functions, ``cuda.grid``,
  ``cuda.shared``, ``cuda.local``, ``cuda.syncthreads``, ``cuda.shfl_xor_sync``, ...);
- ``kernel`` and ``launch``: how every kernel of lsm is declared and launched (see the
  launcher's extensions :class:`AbsentOperand` and :class:`ArrayFields`);
- ``SIMULATOR``: whether Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) stands in for a GPU;
- ``interface`` / ``kernel_array`` / ``as_device``: read a device array's memory description,
  and pass a strided view of that memory to a kernel (:class:`KernelArray`) or wrap it as a
  Numba device array for a copy to the host (no copy of the memory; the simulator's arrays are
  host arrays in disguise, described by ``__array_interface__`` instead of
  ``__cuda_array_interface__``);
- ``device_array``, ``to_host``, ``is_available``;
- ``on_device``, ``stream``, ``wait``: devices and streams;
- on a GPU only, for ``_elements``' element conversions and ``_runs``' vector loads:
  ``libdevice``, ``cuda_types`` (numba-cuda's types, ``bfloat16`` among them), ``intrinsic``,
  ``overload`` and ``cgutils`` (LLVM code generation helpers).
"""

import contextlib
import functools
import math
import sys
import threading

import numba
import numpy as np
from numba import cuda, types
from numba.cuda import config as _config

SIMULATOR = bool(_config.ENABLE_CUDASIM)

if SIMULATOR:
    from numba.cuda.simulator import kernelapi as _kernelapi
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as _FakeCUDAArray

    _shared_lock = threading.Lock()

    def _shared_array(self, shape, dtype, alignment=None):
        """The simulator's ``cuda.shared.array``, made atomic.

        numba-cuda's simulator finds a block's shared array by the calling source line in a
        dict, with an unlocked check-then-insert: two threads starting together can each create
        their own "shared" array, and a reduction then silently loses the values written to the
        other one (seen here as sporadic wrong sums). Same lookup, under a lock.
        """
        if alignment is not None or shape == 0:  # the cases the simulator handles without the dict
            return _unlocked_shared_array(self, shape, dtype, alignment)
        if isinstance(dtype, numba.types.Type):
            dtype = numba.np.numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with _shared_lock:
            array = self._allocations.get(key)
            if array is None:
                array = self._allocations[key] = np.empty(shape, dtype)
        return array

    _unlocked_shared_array = _kernelapi.FakeCUDAShared.array
    _kernelapi.FakeCUDAShared.array = _shared_array

    _lanes_lock = threading.Lock()

    def _shfl_xor_sync(self, mask, value, offset):
        """A model of ``cuda.shfl_xor_sync`` for the simulator, which has none: every thread of
        the block posts its value, meets the others at a barrier, and reads the value of the
        thread whose index differs from its own by ``offset`` (exclusive or) within its warp.

        Successive shuffles post to two alternating boards: a thread posts to a board again only
        after the next shuffle's barrier, which every thread reaches after its read, so one
        barrier per shuffle suffices. As on a GPU for a full ``mask``, every thread of the warp
        must take part; here the whole block must, since the barrier is the block's (lsm reduces
        in block-uniform control flow).
        """
        thread = threading.current_thread()
        with _lanes_lock:
            boards = thread._manager.__dict__.setdefault("lsm_boards", ({}, {}))
        thread.lsm_shuffles = getattr(thread, "lsm_shuffles", 0) + 1
        board = boards[thread.lsm_shuffles % 2]
        board[thread.thread_id] = value
        thread.syncthreads()
        return board[thread.thread_id ^ offset]

    _kernelapi.FakeCUDAModule.shfl_xor_sync = _shfl_xor_sync
else:
    from numba.cuda import cgutils, libdevice
    from numba.cuda import types as cuda_types
    from numba.cuda.cudadrv.devicearray import is_cuda_ndarray
    from numba.cuda.extending import intrinsic, overload

__all__ = [
    "LAUNCH_EXTENSIONS",
    "SIMULATOR",
    "AbsentOperand",
    "as_device",
    "cuda",
    "device_array",
    "interface",
    "is_available",
    "is_numba_device_array",
    "kernel",
    "kernel_array",
    "launch",
    "on_device",
    "stream",
    "to_host",
    "wait",
]
if not SIMULATOR:
    __all__ += ["cgutils", "cuda_types", "intrinsic", "libdevice", "overload"]


class AbsentOperand:
    """A launcher extension of numba-cuda: an absent optional operand travels as a null pointer.

    lsm's kernels take their optional operands (``where``, ``b``, ``sign``, class weights, targets,
    a gradient) as ``None`` when absent: Numba types the argument ``none`` and compiles that
    kernel without the operand's code. numba-cuda's launcher, though, marshals only arrays,
    numbers, booleans, records, tuples, enum members and pointers, and raises
    ``NotImplementedError`` for ``None``. In the kernel's ABI a ``none`` parameter is an opaque
    pointer that the compiled code never reads, so a null pointer is its exact value. (The CUDA
    simulator calls kernels as Python functions and needs no marshalling.)
    """

    def prepare_args(self, ty, val, stream, retr):
        if isinstance(ty, types.NoneType):
            return types.CPointer(types.uint8), 0
        return ty, val


class KernelArray:
    """A strided view of device memory as a kernel argument, without a Numba device array.

    A Numba ``DeviceNDArray`` takes several microseconds to make from an interface description
    (its shape and strides go through a model of the array, its flags are computed, its memory
    wrapped), and a launch reads five of its attributes. An array argument of a compiled kernel
    is no more than its fields in the order of Numba's array data model, each pointer-sized: a
    meminfo and a parent pointer (null: lsm's memory is owned by the caller's array), the element
    count, the item size, the data pointer, the shape and the byte strides. A ``KernelArray``
    holds those fields, made once, and ``_numba_type_``, the type the dispatcher gives the
    argument (the one a Numba device array of the same layout has, so the same compiled kernels
    run); the launcher extension :class:`ArrayFields` hands the fields to numba-cuda's
    marshalling as a tuple of pointers, which it passes as they are. ``owner`` keeps the memory alive.
    ``tests/test_cuda_launcher.py`` checks, against numba-cuda's own marshalling of its device
    arrays, that both give the same type and the same kernel arguments.
    """

    __slots__ = ("_numba_type_", "fields", "owner")

    def __init__(self, owner, pointer, shape, strides, dtype):
        self.owner = owner
        self._numba_type_, size, itemsize, layout = _array_layout(shape, strides, dtype)
        # an empty view points nowhere, as numba-cuda's empty arrays
        self.fields = (0, 0, size, itemsize, pointer if size else 0, *layout)


class ArrayFields:
    """A launcher extension of numba-cuda: a :class:`KernelArray` travels as its fields."""

    def prepare_args(self, ty, val, stream, retr):
        if type(val) is KernelArray:
            return _pointers(len(val.fields)), val.fields
        return ty, val


@functools.lru_cache(maxsize=1024)
def _array_layout(shape, strides, dtype):
    """``(type, size, itemsize, shape + strides)`` of a device array of this layout: its Numba
    type and the fields of a kernel argument that do not depend on its address (remembered for
    the last 1,024 layouts, as a training loop repeats its shapes)."""
    from numba.cuda.np.numpy_support import from_dtype  # bfloat16 as numba-cuda's bfloat16

    array_type = types.Array(from_dtype(dtype), len(shape), _layout(shape, strides, dtype.itemsize))
    return array_type, math.prod(shape), dtype.itemsize, (*shape, *strides)


@functools.cache
def _pointers(count):
    return types.UniTuple(types.CPointer(types.uint8), count)


def _layout(shape, strides, itemsize):
    """Numba's layout letter of a device array (NumPy's contiguity rules as numba-cuda applies
    them): 'C' or 'F' when contiguous that way (an empty array counts as both, 'C' preferred),
    'A' otherwise, and for any zero stride of a non-empty array (even of an axis of length 1)."""
    if 0 in shape:
        return "C"
    if 0 in strides:
        return "A"
    for order, layout in ((reversed(range(len(shape))), "C"), (range(len(shape)), "F")):
        expected = itemsize
        for axis in order:
            if shape[axis] != 1:
                if strides[axis] != expected:
                    break
                expected *= shape[axis]
        else:
            return layout
    return "A"


LAUNCH_EXTENSIONS = (AbsentOperand(), ArrayFields())


def kernel(func, launch_bounds=None):
    """``cuda.jit`` for a kernel that lsm launches (with :data:`LAUNCH_EXTENSIONS`).

    ``launch_bounds``, ``(threads, blocks)``: the kernel is launched with at most ``threads``
    threads per block, and ptxas keeps its registers low enough for ``blocks`` such blocks per
    SM (a launch with more threads fails). The simulator has no registers and ignores them.
    """
    if SIMULATOR:
        return cuda.jit(func)
    if launch_bounds is None:
        return cuda.jit(extensions=list(LAUNCH_EXTENSIONS))(func)
    return cuda.jit(extensions=list(LAUNCH_EXTENSIONS), launch_bounds=launch_bounds)(func)


def launch(kernel_, blocks, threads, stream_, *args, shared=0):
    """Queue ``kernel_`` on ``stream_`` with ``blocks`` blocks of ``threads`` threads and
    ``shared`` bytes of dynamic shared memory per block (``cuda.shared.array(0, dtype)`` in the
    kernel; the simulator gives each launch the same): every launch of lsm goes through here."""
    kernel_[blocks, threads, stream_, int(shared)](*args)


@functools.cache
def is_available():
    """Whether a CUDA GPU (or the simulator) can run kernels in this process (asked once)."""
    return cuda.is_available()


def is_numba_device_array(array):
    """Whether ``array`` is a Numba device array (the simulator's included). Not
    ``cuda.is_cuda_array``, which answers yes for anything with ``__cuda_array_interface__``."""
    return is_cuda_ndarray(array) if not SIMULATOR else isinstance(array, _FakeCUDAArray)


class _Described:
    """Exposes a memory description as ``__array_interface__`` (simulator) and keeps its owner."""

    def __init__(self, description, owner):
        self.__array_interface__ = description
        self.owner = owner


def interface(array):
    """The CUDA array interface dict of ``array`` (the simulator: its host array's interface)."""
    if SIMULATOR and isinstance(array, _FakeCUDAArray):
        return array._ary.__array_interface__
    return array.__cuda_array_interface__


def as_device(owner, pointer, shape, strides, dtype):
    """A Numba device array over existing memory: ``shape`` and byte ``strides`` from ``pointer``
    (to copy to the host; kernels take a :func:`kernel_array`).

    ``owner`` keeps the memory alive. Nothing is copied or synchronised: the caller launches on
    the stream the memory belongs to. A bfloat16 ``dtype`` (whose interface type string, ``<V2``,
    says only "two bytes") is given to the array after it is made, so the kernels see numba-cuda's
    bfloat16 type.
    """
    description = {
        "shape": tuple(shape),
        "strides": tuple(strides),
        "typestr": dtype.str,
        "data": (pointer, False),
        "version": 3,
    }
    if SIMULATOR:
        array = _FakeCUDAArray(np.asarray(_Described(description, owner)))
    else:
        description["stream"] = None
        array = cuda.from_cuda_array_interface(description, owner=owner, sync=False)
    return array if array.dtype == dtype else array.view(dtype)


# ``kernel_array(owner, pointer, shape, strides, dtype)``: a kernel argument over existing memory,
# ``shape`` and byte ``strides`` from ``pointer``. A :class:`KernelArray`, made by the class itself
# (a call makes up to nine, and a wrapper would cost a function call each); in the simulator, which
# calls kernels as Python functions, a device array from :func:`as_device`.
kernel_array = as_device if SIMULATOR else KernelArray


def device_array(shape, dtype, stream_):
    """A new C-contiguous Numba device array, allocated in stream order on ``stream_``."""
    return cuda.device_array(shape, dtype=dtype, stream=stream_)


def to_host(array, stream_):
    """The Numba device array ``array`` copied to a new host array; waits for ``stream_``."""
    host = array.copy_to_host(stream=stream_)
    stream_.synchronize()
    return host


_CURRENT_DEVICE = contextlib.nullcontext()


def on_device(device):
    """A context manager that makes device ``device`` (an index) current for its block; None:
    leaves the current one (every call passes here, so that case makes no generator)."""
    if device is None or SIMULATOR:
        return _CURRENT_DEVICE
    return cuda.gpus[device]


_streams = {}
_streams_lock = threading.Lock()


def stream(handle):
    """The Numba stream for ``handle`` in the current device's context.

    ``handle`` is a Numba stream (returned as is), None (Numba's default stream: an array that
    names no stream), or a raw stream pointer as CuPy, torch and ``__cuda_array_interface__``
    give it: 0 (their null stream) and 1 are the legacy default stream, 2 the per-thread default
    stream, whatever Numba's own default is (``NUMBA_CUDA_PER_THREAD_DEFAULT_STREAM``); other
    pointers are wrapped with ``cuda.external_stream``. Each is made once per device and cached,
    so one handle always gives the same stream object.
    """
    if handle is None:
        return cuda.default_stream()
    if not isinstance(handle, int):
        return handle
    handle = handle or 1
    key = handle if SIMULATOR else (cuda.get_current_device().id, handle)
    cached = _streams.get(key)
    if cached is None:
        with _streams_lock:
            cached = _streams.get(key)
            if cached is None:
                cached = _streams[key] = _new_stream(handle)
    return cached


def _new_stream(handle):
    if handle == 1:
        return cuda.legacy_default_stream()
    if handle == 2:
        return cuda.per_thread_default_stream()
    return cuda.external_stream(handle)


def wait(producer, consumer):
    """Make the work queued on ``consumer`` from now on wait for the work queued on ``producer``
    so far (an event, no host synchronisation)."""
    event = cuda.event(timing=False)
    event.record(producer)
    event.wait(consumer)
