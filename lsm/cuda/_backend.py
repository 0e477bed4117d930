"""The CUDA backend: device arrays described by strides, numba-cuda kernels on the caller's stream.

A :class:`CudaBackend` is made for each call (by ``lsm._devices``) from the call's first device
array: results are that kind of array (CuPy in, CuPy out; torch in, torch out; anything else
gives Numba device arrays), allocated by that library's allocator and computed on its current
stream. A view is a :class:`~lsm.cuda._layout.Strided` description: the canonical
``(outer, n, inner)`` view is a change of strides, and where a dtype conversion or an unviewable
layout needs a copy, a kernel makes it on the device. Nothing is copied to the host and no call
synchronises, except a loss call's check of its class indices and weights (see
:meth:`CudaBackend.check_classes`). A 0-d result is a 0-d device array (as CuPy's reductions
return), not a host scalar.
"""

import numpy as np

from .. import _validate
from . import _launch, _numba
from ._kinds import kind_of
from ._layout import allocated, broadcast, read


class CudaBackend:
    """Device memory and the numba-cuda kernels (see ``lsm._protocol.Backend``)."""

    name = "cuda"

    def __init__(self, func, name, array):
        if not _numba.is_available():
            raise _validate.no_gpu(func, array)
        # an array that cannot describe itself gets lsm's TypeError here
        view, handle = read(array, func, name)
        self.kind = kind_of(array, handle)
        self.stream = self.kind.stream
        self._waited = set()  # the producer streams this call's stream already waits for
        # id -> (array, view, handle): each operand's interface is read once a call (CuPy
        # builds the dict on every read); the array is kept so that its id stays its own
        self._read = {id(array): (array, view, handle)}

    def active(self):
        """The array's device made current for the call (allocations, launches, copies)."""
        return _numba.on_device(self.kind.device)

    def _wait_for_producer(self, handle):
        """Order the call after the work still queued on the producer stream ``handle`` of an
        operand (the consumer's duty under ``__cuda_array_interface__`` version 3)."""
        if handle is None or handle in self._waited:
            return
        self._waited.add(handle)
        producer = _numba.stream(handle)
        if producer is not self.stream:
            _numba.wait(producer, self.stream)

    # --- array handling -----------------------------------------------------------------------

    def describe(self, array, func, name):
        known = self._read.get(id(array))
        if known is None or known[0] is not array:
            known = self._read[id(array)] = (array, *read(array, func, name))
        _, view, handle = known
        self._wait_for_producer(handle)
        return view

    def describe_out(self, out, func, name):
        return self.describe(out, func, name)

    def check_dtype(self, func, dtype):
        if dtype.kind == "V" and self.kind.name == "cupy":  # bfloat16: CuPy cannot allocate it
            raise _validate.no_cupy_bfloat16(func)

    def readonly(self, view):
        return view.readonly

    def empty(self, shape, dtype, like=None):
        # always C-contiguous: the array kinds' allocators differ in what layouts they take
        shape = tuple(shape)
        array, pointer = self.kind.empty(shape, dtype)
        return array, allocated(array, pointer, shape, dtype)

    def _scratch(self, shape, dtype):
        """A new scratch array as a kernel argument (the split-row kernels' partial results)."""
        return self.empty(shape, dtype)[1].device()

    def reshape(self, view, shape):
        return view.view_as(tuple(shape))

    def transpose(self, view, perm):
        return view.transpose(perm)

    def broadcast(self, view, shape):
        return broadcast(view, shape)

    def canonical(self, view, dtype, perm, shape):
        permuted = view.transpose(perm)
        if view.dtype == dtype:
            direct = permuted.view_as(shape)
            if direct is not None:
                return direct
        _, copy = self.empty(permuted.shape, dtype)
        _launch.copy(permuted, copy, self.stream)
        return copy.view_as(shape)

    def index_targets(self, view, shape):
        return self.canonical(view, view.dtype, None, shape)  # the kernels take any integer type

    def class_weight(self, view, n_classes, dtype):
        # Without weights the kernels count 1 per class (a None operand compiles that case).
        return None if view is None else self.canonical(view, dtype, None, (n_classes,)).device()

    def copy(self, source, target):
        _launch.copy(source, target, self.stream)

    def overlaps(self, a, b):
        return a.overlaps(b)

    def same_memory(self, a, b):
        return a.same_memory(b)

    def item(self, view, index):
        offset = sum(i * stride for i, stride in zip(index, view.strides, strict=True))
        element = view.with_layout((1,), (view.dtype.itemsize,)).shifted(offset)
        return element.to_host(self.stream)[0].item()

    def finish(self, result):
        return result

    # --- kernels ------------------------------------------------------------------------------

    def softmax(self, x, where, out, log):
        _launch.softmax(x, where, out, log, self.stream, self._scratch)

    def logsumexp(self, x, where, b, lse, sign):
        _launch.logsumexp(x, where, b, lse, sign, self.stream, self._scratch)

    def softmax_backward(self, grad, y, where, out, log):
        _launch.softmax_backward(grad, y, where, out, log, self.stream)

    def check_classes(self, target, n_classes, ignore_index, class_weight):
        """Checked on the device, into one 24-byte verdict from the caller's allocator; copying
        it back waits for the caller's stream. That is how an out-of-range target raises
        ``IndexError`` naming its value and position, as on the CPU, instead of giving a silent
        NaN; the total weight is also the mean's denominator, which scales the gradient."""
        if target is None and class_weight is None:
            return -1, 0, 0.0
        items = 0 if target is None else target.size
        _, verdict = self.empty((3,), np.dtype(np.float64))
        _launch.check_classes(target, n_classes, ignore_index, class_weight, verdict, self.stream)
        position, bad_weights, total = verdict.to_host(self.stream).tolist()
        return (int(position) if position < items else -1), int(bad_weights), total

    def cross_entropy(self, x, target, probs, class_weight, options, loss, grad):
        _launch.cross_entropy(x, target, probs, class_weight, options, loss, grad, self.stream)

    def nll_loss(self, logp, target, class_weight, ignore_index, loss):
        _launch.nll_loss(logp, target, class_weight, ignore_index, loss, self.stream)

    def reduce_loss(self, loss, denominator, result):
        flat = loss.with_layout((loss.size,), (loss.dtype.itemsize,)).device()
        one = result.with_layout((1,), (result.dtype.itemsize,)).device()
        _launch.reduce_loss(flat, 1.0 if denominator is None else denominator, one, self.stream)
