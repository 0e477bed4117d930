"""Device arrays as metadata: pointer, shape, byte strides, dtype. Views never touch the GPU.

Every device operand is described once (:func:`read`, from its CUDA array interface) as a
:class:`Strided`; transposing, broadcasting and merging axes into the canonical
``(outer, n, inner)`` form are arithmetic on shapes and strides, as NumPy does for host arrays.
Only :meth:`Strided.device` turns a description into a kernel argument, and
:meth:`Strided.to_host` into a Numba device array to copy to the host.
"""

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from .. import _validate
from . import _numba


@dataclass(slots=True)
class Strided:
    """A strided view of device memory owned by ``owner`` (kept alive by the view).

    Treated as immutable: every view method returns a new one. (Not a frozen dataclass: a
    frozen one takes four times as long to make, and a call makes several.)
    """

    owner: object
    pointer: int
    shape: tuple
    strides: tuple  # in bytes
    dtype: np.dtype
    readonly: bool = False

    @property
    def size(self):
        return math.prod(self.shape)

    def with_layout(self, shape, strides):
        return Strided(self.owner, self.pointer, tuple(shape), tuple(strides), self.dtype, self.readonly)

    def shifted(self, offset):
        """The same layout starting ``offset`` bytes further."""
        return Strided(self.owner, self.pointer + offset, self.shape, self.strides, self.dtype, self.readonly)

    def transpose(self, perm):
        if perm is None:
            return self
        return self.with_layout([self.shape[a] for a in perm], [self.strides[a] for a in perm])

    def view_as(self, shape):
        """This memory as ``shape`` without copying, or None when the strides do not allow it."""
        strides = merged_strides(self.shape, self.strides, shape)
        return None if strides is None else self.with_layout(shape, strides)

    def extent(self):
        """The byte range ``[low, high)`` the view can touch (empty for an empty view)."""
        if self.size == 0:
            return self.pointer, self.pointer
        low = sum(min(0, (n - 1) * s) for n, s in zip(self.shape, self.strides, strict=True))
        high = sum(max(0, (n - 1) * s) for n, s in zip(self.shape, self.strides, strict=True))
        return self.pointer + low, self.pointer + high + self.dtype.itemsize

    def same_memory(self, other):
        return (self.pointer, self.shape, self.strides, self.dtype) == (
            other.pointer,
            other.shape,
            other.strides,
            other.dtype,
        )

    def overlaps(self, other):
        """Whether the byte ranges intersect (conservative: interleaved views count as overlapping)."""
        low, high = self.extent()
        other_low, other_high = other.extent()
        return low < other_high and other_low < high

    def device(self):
        """This view as a kernel argument (``_numba.kernel_array``)."""
        return _numba.kernel_array(self.owner, self.pointer, self.shape, self.strides, self.dtype)

    def device_leading(self, ndim):
        """The view of the first ``ndim`` axes (the others of length 1) as a kernel argument."""
        layout = self.shape[:ndim], self.strides[:ndim]
        return _numba.kernel_array(self.owner, self.pointer, *layout, self.dtype)

    def to_host(self, stream):
        """A new host array with this view's elements; waits for ``stream``."""
        array = _numba.as_device(self.owner, self.pointer, self.shape, self.strides, self.dtype)
        return _numba.to_host(array, stream)


@functools.lru_cache(maxsize=1024)
def contiguous_strides(shape, itemsize):
    """The byte strides of a C-contiguous array (remembered for the last 1,024 shapes: results
    are allocated C-contiguous on every call)."""
    strides, step = [], itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


@functools.lru_cache(maxsize=1024)
def merged_strides(shape, strides, target):
    """Strides viewing ``(shape, strides)`` as ``target`` without a copy, or None (tuples;
    remembered for the last 1,024 layouts, as a training loop repeats its shapes).

    ``target`` must group consecutive axes of ``shape`` (the only reshapes lsm needs): each of its
    sizes is the product of a run of source axes, and a run merges when its strides are nested
    (``stride[k] == stride[k + 1] * shape[k + 1]``). Axes of length 1 have no stride to respect.
    """
    if 0 in shape:  # nothing is ever read or written
        return (0,) * len(target)
    axes = [(n, s) for n, s in zip(shape, strides, strict=True) if n != 1]
    result, k = [], 0
    for size in target:
        if size == 1:
            result.append(0)
            continue
        product, run = 1, []
        while product < size and k < len(axes):
            run.append(axes[k])
            product *= axes[k][0]
            k += 1
        if product != size:
            return None
        for (_, outer_stride), (inner, inner_stride) in itertools.pairwise(run):
            if outer_stride != inner_stride * inner:
                return None
        result.append(run[-1][1])
    return tuple(result) if k == len(axes) else None


def broadcast(view, shape):
    """``view`` broadcast to ``shape`` (NumPy's rules; stride 0 along repeated axes), or None
    when it does not broadcast."""
    extra = len(shape) - len(view.shape)
    if extra < 0:
        return None
    strides = []
    for axis, size in enumerate(shape):
        source = axis - extra
        if source < 0 or (view.shape[source] == 1 and size != 1):
            strides.append(0)
        elif view.shape[source] == size:
            strides.append(view.strides[source])
        else:
            return None
    return Strided(view.owner, view.pointer, tuple(shape), tuple(strides), view.dtype, True)


def read(array, func, name):
    """``(view, stream)`` of device array ``array`` (argument ``name`` of ``func``) from one read
    of its interface: its :class:`Strided` description, and the raw stream handle its producer
    names (``__cuda_array_interface__`` version 3's ``stream``; None when it names none).

    Raises
    ------
    TypeError
        For an array that does not expose its memory, non-native byte order, or a type string
        of two opaque bytes (``<V2``) from an array whose own ``dtype`` does not say bfloat16.
        Other dtypes are the pipeline's to check, with the same messages as on the host.
    """
    try:
        description = _numba.interface(array)
    except RuntimeError as error:
        raise _validate.unreadable_interface(func, name, array, error) from error
    dtype = _dtype(description["typestr"])
    if dtype.kind == "V" and dtype.itemsize == 2:
        dtype = _bfloat16(array, func, name)
    if not dtype.isnative:
        raise _validate.gpu_byte_order(func, name)
    shape = tuple(description["shape"])
    strides = description.get("strides") or contiguous_strides(shape, dtype.itemsize)
    pointer, readonly = description["data"]
    view = Strided(array, pointer, shape, tuple(strides), dtype, bool(readonly))
    return view, description.get("stream")


@functools.lru_cache(maxsize=64)
def _dtype(typestr):
    """``np.dtype(typestr)``, remembered (each call reads one type string per operand)."""
    return np.dtype(typestr)


def _bfloat16(array, func, name):
    """The bfloat16 dtype for an array whose interface says ``<V2``, if the array says bfloat16.

    The interface has no type string for bfloat16: torch and JAX export it as ``<V2`` (two
    opaque bytes, ml_dtypes' ``dtype.str``), which any 2-byte record would also give. So it is
    read as bfloat16 only where the producer's own ``dtype`` says so (``torch.bfloat16``,
    ml_dtypes' ``bfloat16`` of JAX and Numba device arrays).
    """
    if str(getattr(array, "dtype", "")).removeprefix("torch.") != "bfloat16":
        raise _validate.unknown_gpu_void(func, name, array)
    return _validate.bfloat16_dtype()


def allocated(array, pointer, shape, dtype):
    """The description of ``array`` at ``pointer``, just allocated C-contiguous with ``shape`` and
    ``dtype`` by the caller's library."""
    return Strided(array, pointer, shape, contiguous_strides(shape, dtype.itemsize), dtype)
