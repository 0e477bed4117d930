"""The CPU backend: NumPy arrays, Numba kernels, and a launch that is safe from any thread.

:data:`BACKEND` implements ``lsm._protocol.Backend`` for host memory: a view is a NumPy array,
and every kernel method picks the serial or parallel Numba kernel for its canonical view.

float16 and bfloat16 arrays travel into the kernels as their bits (uint16 and int16: Numba's CPU
target has no 16-bit floats, see ``_scalar``); the kernel methods make that view themselves, so
the pipeline sees real dtypes only.

Numba's ``workqueue`` threading layer aborts the process when two Python threads enter parallel
kernels at the same time. lsm does not change the user's Numba configuration; instead the first
parallel launch runs under a lock, which tells us which layer Numba picked (``tbb`` or ``omp``
when available, else ``workqueue``). Under ``workqueue`` every parallel launch keeps taking the
lock; under the thread-safe layers the lock is dropped.
"""

import contextlib
import functools
import math
import threading

import numba
import numpy as np

from .._plan import accumulation_dtype
from .._validate import dtype_name, not_convertible, out_kind
from . import _backward, _forward, _losses
from ._config import EXPS_BUFFER_BYTES, PARALLEL_MIN_ELEMENTS
from ._orient import oriented

# The element type each 16-bit float travels as inside a kernel.
_BITS = {"float16": np.dtype(np.uint16), "bfloat16": np.dtype(np.int16)}
_ACCUMULATION_TYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _bits(array):
    """``array`` as the kernels read it: 16-bit floats as their bits, None stays None."""
    if array is None:
        return None
    bits = _BITS.get(dtype_name(array.dtype))
    return array if bits is None else array.view(bits)


def _read(array):
    """An operand the kernels only read, as they read it (``_bits``) and always read-only.

    Numba compiles a kernel once per argument type, and the write flag is part of an array's
    type: without this, a read-only input (a broadcast mask, a memory-mapped file, the user's
    frozen array) would compile every kernel a second time, for the same machine code.
    """
    if array is None:
        return None
    view = _bits(array).view()
    view.flags.writeable = False
    return view


def _c_order(view):
    """A full-size operand the kernels only read, C-contiguous: a view whose strides ``oriented``
    could not straighten (a slice with a step, a reversed axis) is copied once, read-only.

    The kernels are compiled for C-contiguous data, as torch's CPU kernels ask ``.contiguous()``
    of theirs: strided views would compile every kernel again (a second or more per signature,
    on a user's first such call) into machine code without vector loads, to read the same
    elements as the copy does once. Masks and weights keep their layout: a broadcast mask or
    weight row would otherwise grow to the input's size.
    """
    if view is None or view.flags.c_contiguous:
        return view
    return _read(np.ascontiguousarray(view))  # read-only: the type the kernels are compiled for


def _c_order_output(view):
    """A C-contiguous stand-in for the output ``view`` (``_c_order``'s counterpart): ``view``
    itself when it is C-contiguous, else a temporary, which ``_copy_back`` copies into it when the
    kernel has run. (Two plain calls: a context manager costs several microseconds a call.)"""
    if view is None or view.flags.c_contiguous:
        return view
    return np.empty(view.shape, view.dtype)


def _copy_back(view, stand_in):
    """Copy the stand-in ``_c_order_output`` gave for ``view`` into it, if it was one."""
    if stand_in is not view:
        view[...] = stand_in


@functools.lru_cache(maxsize=16)
def _unit_weights(n_classes, dtype):
    """A read-only array of ``n_classes`` ones of ``dtype``: the class weights of an unweighted
    loss, made once per class count (a training loop repeats it) instead of once a call."""
    ones = np.ones(n_classes, dtype=dtype)
    ones.flags.writeable = False
    return ones


def _divide(total, denominator):
    """``total / denominator`` as IEEE float64 division gives it (a mean over nothing counted:
    0 / 0 = NaN, as torch gives), in Python floats, which warn about nothing; ``denominator`` is
    a total weight, never negative."""
    if denominator:
        return total / denominator
    return math.copysign(math.inf, total) if total and total == total else math.nan


class _ParallelGate:
    """Serialise parallel launches only when the active threading layer is not thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._needs_lock = True  # until the first launch has shown which layer is active

    def run(self, kernel, *args):
        if not self._needs_lock:
            return kernel(*args)
        with self._lock:
            result = kernel(*args)
            self._needs_lock = numba.threading_layer() == "workqueue"
        return result


_gate = _ParallelGate()


def _serial(size):
    # A thread limited to one Numba thread (numba.set_num_threads(1), as lsm's Dask tasks may be)
    # runs the serial kernel: same result, and no trip through the launch gate.
    return size < PARALLEL_MIN_ELEMENTS or numba.get_num_threads() == 1


def _run(serial, parallel, size, *args):
    return serial(*args) if _serial(size) else _gate.run(parallel, *args)


def _run_columns(serial, parallel, split, x, *args):
    """``_run`` for the column drivers of ``_forward`` and ``_backward``: a parallel call with too
    few tiles to go round takes the ``split`` driver (blocks spread over the threads)."""
    if _serial(x.size):
        return serial(x, *args)
    tiles, _, blocks = _forward._column_plan(x)
    return _gate.run(split if _forward._split(x, tiles, blocks) else parallel, x, *args)


def _rows(array):
    """Drop the unit inner axis: row kernels index ``(outer, n)``, so LLVM sees unit strides."""
    return None if array is None else array[..., 0]


def _chunk_rows(x):
    """Rows per chunk for the short-row kernels on the 2-d row view ``x``."""
    return _forward.chunk_rows(x.shape[0], x.shape[1], numba.get_num_threads())


def _keeps_exps(x, where, out, log):
    """Whether softmax may keep its exponentials in ``out`` and rescale them there: no mask, an
    output in the accumulation type (so nothing is rounded twice), and not in place (writing
    into the input would force the sum loop onto its scalar, alias-safe version)."""
    return not log and where is None and out.dtype in _ACCUMULATION_TYPES and not np.may_share_memory(x, out)


def _workers(size):
    return 1 if size < PARALLEL_MIN_ELEMENTS else numba.get_num_threads()


def _exps_buffers(x):
    """One scratch row per worker for softmax's exponentials when ``out`` cannot hold them (a
    16-bit output, or in place), unless those rows would take more than ``EXPS_BUFFER_BYTES``."""
    workers = _workers(x.size)
    dtype = accumulation_dtype(x.dtype)  # a 16-bit view (uint16/int16) accumulates in float32
    if workers * x.shape[1] * dtype.itemsize > EXPS_BUFFER_BYTES:
        return None
    return np.empty((workers, x.shape[1]), dtype=dtype)


def _staging_buffers(source, out):
    """One staging row per thread when ``out`` shares memory with ``source`` (see ``_staging``)."""
    if out is None or not np.may_share_memory(source, out):
        return None
    return np.empty((_workers(source.size), out.shape[1]), dtype=out.dtype)


# --- the kernel choice for C-contiguous canonical views (``CpuBackend`` orients them first) ---


def _softmax(x, where, out, log):
    if x.shape[2] == 1:
        x, where, out = _rows(x), _rows(where), _rows(out)
        if x.shape[1] <= _forward.SHORT_ROW:
            kernels = _forward.softmax_short_rows_serial, _forward.softmax_short_rows_parallel
            _run(*kernels, x.size, x, where, out, log, _chunk_rows(x))
            return
        keep = _keeps_exps(x, where, out, log)
        buffers = None if keep or log or where is not None else _exps_buffers(x)
        kernels = _forward.softmax_rows_serial, _forward.softmax_rows_parallel
        _run(*kernels, x.size, x, where, out, keep, buffers, log)
    else:
        kernels = (
            _forward.softmax_columns_serial,
            _forward.softmax_columns_parallel,
            _forward.softmax_columns_split,
        )
        _run_columns(*kernels, x, where, out, log)


def _logsumexp(x, where, b, lse, sign):
    if x.shape[2] == 1:
        x, where, b = _rows(x), _rows(where), _rows(b)
        lse, sign = lse[:, 0], None if sign is None else sign[:, 0]
        if x.shape[1] <= _forward.SHORT_ROW:
            kernels = _forward.logsumexp_short_rows_serial, _forward.logsumexp_short_rows_parallel
            _run(*kernels, x.size, x, where, b, lse, sign, _chunk_rows(x))
            return
        kernels = _forward.logsumexp_rows_serial, _forward.logsumexp_rows_parallel
        _run(*kernels, x.size, x, where, b, lse, sign)
    else:
        kernels = (
            _forward.logsumexp_columns_serial,
            _forward.logsumexp_columns_parallel,
            _forward.logsumexp_columns_split,
        )
        _run_columns(*kernels, x, where, b, lse, sign)


def _softmax_backward(grad, y, where, out, log):
    if grad.shape[2] == 1:
        grad, y, where, out = _rows(grad), _rows(y), _rows(where), _rows(out)
        buffers = _staging_buffers(grad, out)
        if buffers is None:
            buffers = _staging_buffers(y, out)
        kernels = _backward.backward_rows_serial, _backward.backward_rows_parallel
        _run(*kernels, grad.size, grad, y, where, out, buffers, log)
    else:
        kernels = (
            _backward.backward_columns_serial,
            _backward.backward_columns_parallel,
            _backward.backward_columns_split,
        )
        _run_columns(*kernels, grad, y, where, out, log)


def _cross_entropy(x, target, probs, class_weight, options, loss, grad):
    if x.shape[2] == 1:
        x, probs, grad = _rows(x), _rows(probs), _rows(grad)
        loss, target = loss[:, 0], None if target is None else target[:, 0]
        buffers = _staging_buffers(x, grad)
        kernels = _losses.cross_entropy_rows_serial, _losses.cross_entropy_rows_parallel
        _run(*kernels, x.size, x, target, probs, class_weight, options, loss, grad, buffers)
    else:
        kernels = _losses.cross_entropy_columns_serial, _losses.cross_entropy_columns_parallel
        threads = numba.get_num_threads()
        _run(*kernels, x.size, x, target, probs, class_weight, options, loss, grad, threads)


class CpuBackend:
    """Host memory and the Numba CPU kernels (see ``lsm._protocol.Backend``)."""

    name = "cpu"

    # --- array handling -----------------------------------------------------------------------

    def describe(self, array, func, name):
        try:
            return np.asarray(array)
        except Exception as error:
            raise not_convertible(func, name, error) from error

    def describe_out(self, out, func, name):
        if not isinstance(out, np.ndarray):
            raise out_kind(func, out, "numpy.ndarray", name)
        return out

    def check_dtype(self, func, dtype):
        """Every result dtype runs on the CPU."""

    def active(self):
        """Nothing to select on the host."""
        return contextlib.nullcontext()

    def readonly(self, view):
        return not view.flags.writeable

    def empty(self, shape, dtype, like=None):
        # A result in the input's memory order lets the kernels read and write both in the same
        # order (``_orient``): a Fortran-ordered input gets a Fortran-ordered result.
        array = np.empty(shape, dtype=dtype) if like is None else np.empty_like(like, dtype=dtype)
        return array, array

    def reshape(self, view, shape):
        try:
            return view.reshape(shape, copy=False)
        except ValueError:
            return None

    def transpose(self, view, perm):
        return view if perm is None else view.transpose(perm)

    def broadcast(self, view, shape):
        try:
            return np.broadcast_to(view, shape)
        except ValueError:
            return None

    def canonical(self, view, dtype, perm, shape):
        if view.dtype != dtype:  # also turns a byte-swapped input into native order
            view = view.astype(dtype)
        view = self.transpose(view, perm)
        canonical = self.reshape(view, shape)
        if canonical is None:  # strides that cannot merge: one contiguous copy
            canonical = np.ascontiguousarray(view).reshape(shape)
        return canonical

    def index_targets(self, view, shape):
        # One compiled kernel for every integer type: int64 (a copy only for other types).
        return np.ascontiguousarray(view, dtype=np.int64).reshape(shape)

    def class_weight(self, view, n_classes, dtype):
        # The kernels are compiled for weighted classes only: ones stand in for no weights (the
        # cost of reading a cached weight row is negligible).
        if view is None:
            return _unit_weights(n_classes, dtype)
        return np.ascontiguousarray(view, dtype=dtype)

    def copy(self, source, target):
        target[...] = source

    def overlaps(self, a, b):
        if not np.may_share_memory(a, b):
            return False
        try:
            return np.shares_memory(a, b, max_work=10_000)
        except np.exceptions.TooHardError:  # cannot prove them disjoint: refuse
            return True

    def same_memory(self, a, b):
        return (
            a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape
            and a.strides == b.strides
            and a.dtype == b.dtype
        )

    def item(self, view, index):
        return view[index].item()

    def finish(self, result):
        """NumPy reductions return scalars for 0-d results."""
        return result[()] if result.ndim == 0 else result

    # --- kernels ------------------------------------------------------------------------------

    def softmax(self, x, where, out, log):
        (x, where, out), _ = oriented(x, (_read(x), _read(where), _bits(out)))
        written = _c_order_output(out)
        _softmax(_c_order(x), where, written, log)
        _copy_back(out, written)

    def logsumexp(self, x, where, b, lse, sign):
        operands, results = (_read(x), _read(where), _read(b)), (_bits(lse), _bits(sign))
        (x, where, b), (lse, sign) = oriented(x, operands, results)
        lse_written, sign_written = _c_order_output(lse), _c_order_output(sign)
        _logsumexp(_c_order(x), where, b, lse_written, sign_written)
        _copy_back(lse, lse_written)
        _copy_back(sign, sign_written)

    def softmax_backward(self, grad, y, where, out, log):
        (grad, y, where, out), _ = oriented(grad, (_read(grad), _read(y), _read(where), _bits(out)))
        written = _c_order_output(out)
        _softmax_backward(_c_order(grad), _c_order(y), where, written, log)
        _copy_back(out, written)

    def check_classes(self, target, n_classes, ignore_index, class_weight):
        return _losses.check_classes(_read(target), n_classes, ignore_index, _read(class_weight))

    def cross_entropy(self, x, target, probs, class_weight, options, loss, grad):
        # class-index targets are a per-group input: (outer, inner), like the loss
        operands, results = (_read(x), _read(probs), _bits(grad)), (loss, _read(target))
        (x, probs, grad), (loss, target) = oriented(x, operands, results)
        ignore_index, keep, spread, scale = options
        options = (np.int64(ignore_index), float(keep), float(spread), float(scale))
        grad_written, loss_written = _c_order_output(grad), _c_order_output(loss)
        x, target, probs = _c_order(x), _c_order(target), _c_order(probs)
        _cross_entropy(x, target, probs, _read(class_weight), options, loss_written, grad_written)
        _copy_back(grad, grad_written)
        _copy_back(loss, loss_written)

    def nll_loss(self, logp, target, class_weight, ignore_index, loss):
        _losses.nll_gather(_read(logp), _read(target), _read(class_weight), ignore_index, loss)

    def reduce_loss(self, loss, denominator, result):
        total = float(loss.sum())  # pairwise, in float64
        if denominator is not None:
            total = _divide(total, float(denominator))
        result[...] = total


BACKEND = CpuBackend()
