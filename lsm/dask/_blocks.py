"""What every Dask graph of lsm shares: its blocks' in-memory pipeline and thread share, and the
preparation of its operands.
"""

import contextlib
import threading

import dask.array as da
import numba
import numpy as np

from .. import _devices, _validate
from .._pipeline import Pipeline


def in_memory(func, block):
    """The in-memory pipeline for a block (NumPy or None: the CPU backend; CuPy: the CUDA one)."""
    return Pipeline(_devices.backend_for(func, {"x": block}))


# --- threads ----------------------------------------------------------------------------------


class _ThreadShare:
    """Count the block tasks running in this process and give each its share of Numba's threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._active = 0

    @contextlib.contextmanager
    def __call__(self):
        with self._lock:
            self._active += 1
            share = max(1, numba.config.NUMBA_NUM_THREADS // self._active)
        previous = numba.get_num_threads()
        numba.set_num_threads(share)
        try:
            yield
        finally:
            numba.set_num_threads(previous)
            with self._lock:
                self._active -= 1


thread_share = _ThreadShare()


# --- arguments --------------------------------------------------------------------------------


def operand(func, array, x, name, dtype=None):
    """``where`` or ``b`` as a Dask array in ``dtype``, broadcast to ``x`` and chunked like it."""
    if array is None:
        return None
    array = da.asarray(array)
    if name == "where":
        _validate.where_dtype(func, array.dtype)
    else:
        _validate.input_dtype(func, array.dtype, name)
    try:
        broadcast = da.broadcast_to(array, x.shape)
    except ValueError as error:
        raise _validate.broadcast_error(func, name, array.shape, x.shape) from error
    return broadcast.astype(dtype or array.dtype).rechunk(x.chunks)


def as_input(func, x, name="x"):
    x = da.asarray(x)
    _validate.input_dtype(func, x.dtype, name)
    return x


def axes_in_one_chunk(x, axes):
    return all(x.numblocks[axis] == 1 for axis in axes if axis < x.ndim)


def meta(x, dtype, ndim):
    """A block of the input's array type (NumPy or CuPy) with the given dtype and ndim, empty
    unless 0-d."""
    return np.empty_like(x._meta, dtype=dtype, shape=(0,) * ndim)


def pack(real, imag):
    packed = np.empty_like(real, dtype=np.complex128)  # NumPy or CuPy, like the block
    packed.real = real
    packed.imag = imag
    return packed
