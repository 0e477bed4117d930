"""The contract between the pipeline (``lsm._pipeline``) and an in-memory backend.

Two backends honour it: ``lsm.cpu`` (host memory, NumPy arrays) and ``lsm.cuda`` (device
memory, any ``__cuda_array_interface__`` array). The Dask backend (``lsm.dask``) is of another
kind: it builds task graphs whose blocks run the pipeline on one of these two.
"""

from typing import Protocol


class Backend(Protocol):
    """Array handling and kernels over one kind of memory.

    A *view* is the backend's description of an array: a NumPy array on the CPU, a strided
    description of device memory on the GPU. Every view has ``shape`` and ``dtype``. Views of
    16-bit floats keep their real dtype; a backend that stores them differently converts inside
    its kernel methods.

    *Canonical* views are 3-d ``(outer, n, inner)`` views of the operands (see ``lsm._plan``), or
    2-d ``(outer, inner)`` views of per-group results. Kernel methods read and write only
    canonical views, and never allocate results (scratch space is their own business).

    A backend owns its allocator, its device and its stream: results are allocated, copies made
    and kernels queued where the caller's arrays live; describing an operand that another stream
    may still be writing orders the call after that work. Nothing here validates arguments: that is
    ``lsm._validate``'s job, done before a backend is asked anything.
    """

    name: str

    # --- array handling -------------------------------------------------------------------------

    def describe(self, array, func, name):
        """The view of the input argument ``name`` of ``func`` (``np.asarray`` on the CPU)."""

    def describe_out(self, out, func, name):
        """The view of the output argument ``name`` (TypeError when it is not this backend's kind
        of array)."""

    def check_dtype(self, func, dtype):
        """Raise TypeError when this backend cannot compute in result dtype ``dtype``."""

    def active(self):
        """A context manager around a whole call: the GPU backend makes the array's device
        current (its allocations, copies and launches happen there)."""

    def readonly(self, view):
        """Whether the view's memory must not be written."""

    def empty(self, shape, dtype, like=None):
        """``(array, view)``: a new array of the caller's kind, and its view: C-contiguous, or,
        given the view ``like`` of the same shape, laid out in ``like``'s memory order where the
        backend can (the host: NumPy's ``order="K"``, as NumPy's element-wise functions do)."""

    def reshape(self, view, shape):
        """``view`` as ``shape`` without copying, or None when its strides do not allow it."""

    def transpose(self, view, perm):
        """``view`` with its axes permuted (``perm`` None: unchanged)."""

    def broadcast(self, view, shape):
        """``view`` broadcast to ``shape`` (NumPy's rules), or None when it does not broadcast."""

    def canonical(self, view, dtype, perm, shape):
        """``view`` in ``dtype``, transposed by ``perm`` and viewed as ``shape``: a view where the
        dtype and strides allow it, else one converted copy."""

    def index_targets(self, view, shape):
        """Class-index targets as the ``(outer, inner)`` view ``shape`` of an integer type the
        kernels take."""

    def class_weight(self, view, n_classes, dtype):
        """Class weights (a 1-d view, or None for none) as the kernels' 1-d weight operand."""

    def copy(self, source, target):
        """Write ``source`` into ``target`` (same shape), converting to ``target``'s dtype."""

    def overlaps(self, a, b):
        """Whether two views may touch the same memory (True when it cannot be ruled out)."""

    def same_memory(self, a, b):
        """Whether two views are exactly the same memory: pointer, shape, strides and dtype."""

    def item(self, view, index):
        """The element ``view[index]`` (an index tuple) as a Python scalar."""

    def finish(self, result):
        """A result as the caller gets it (the CPU turns 0-d arrays into NumPy scalars)."""

    # --- kernels over canonical views -----------------------------------------------------------

    def softmax(self, x, where, out, log):
        """``out = log_softmax(x)`` (``log``) or ``softmax(x)`` along axis 1; ``where`` a bool
        mask or None."""

    def logsumexp(self, x, where, b, lse, sign):
        """``lse`` (and ``sign`` unless None), ``(outer, inner)``, from ``x`` and the optional
        mask ``where`` and weights ``b`` (in the accumulation dtype)."""

    def softmax_backward(self, grad, y, where, out, log):
        """The gradient of (log_)softmax into ``out`` from the upstream ``grad`` and the forward
        output ``y``; ``out`` may be exactly ``grad`` or ``y``."""

    def check_classes(self, target, n_classes, ignore_index, class_weight):
        """``(position, bad_weights, total)``: the flat position of the first class index that is
        neither ``ignore_index`` nor in ``[0, n_classes)`` (-1 if none), the number of weights
        that are negative or not finite, and the total weight of the counted targets (0.0 when
        anything is bad). ``target`` may be None (probability targets: weights only)."""

    def cross_entropy(self, x, target, probs, class_weight, options, loss, grad):
        """Per-item cross-entropy into ``loss`` (float64, ``(outer, inner)``) and its gradient
        times the scale into ``grad`` unless None (``grad`` may be ``x`` itself). Exactly one of
        ``target`` (class indices) and ``probs`` (like ``x``) is given; ``options`` is
        ``(ignore_index, keep, spread, scale)`` (see ``lsm.cpu._losses``)."""

    def nll_loss(self, logp, target, class_weight, ignore_index, loss):
        """``loss = -w[t] logp[t]`` per item (``loss`` float64, ``(outer, inner)``)."""

    def reduce_loss(self, loss, denominator, result):
        """``result[()] = sum(loss) / denominator`` (just the sum when ``denominator`` is None),
        summed in float64 and rounded once to ``result``'s dtype."""
