"""The comparison table: each benchmarked function, how lsm and its peers compute it, its cases.

:data:`OPS` holds one :class:`Op` per public function of lsm, like numbagg's ``COMPARISONS``:
what its operands are, how many bytes it must move, and one callable per implementation
family; the ``numpy`` family (the textbook version) run in float64 on NumPy is the reference
every result is checked against. A backend (:mod:`lsm.bench.backends`) names the families it
runs and the library each gets; :func:`make_cases` crosses both with :data:`DTYPES`,
:data:`SHAPES` and :data:`AXES`. Benchmarking a new function is one row of :data:`OPS`.

Inputs are seeded standard normal logits times 4 (softmax outputs then span many orders of
magnitude), read-only, so every implementation reads the same unmodified array.
"""

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SEED = 20240601

DTYPES = ("float16", "float32", "float64")  # the default sweep
# every dtype a case may have: bfloat16 when asked for (it needs ml_dtypes; NumPy and SciPy have
# no bfloat16 arithmetic of their own, so its peers are torch and jax)
ALL_DTYPES = (*DTYPES, "bfloat16")

# (rows, cols) by nominal element count: row lengths from 32 to 1e6, sizes from 1e3 to 1e8.
SHAPES = {
    10**3: ((10, 100),),
    10**4: ((100, 100),),
    10**5: ((1000, 100), (100, 1000)),
    10**6: ((1000, 1000), (32768, 32)),
    10**7: ((10000, 1000), (100, 100000), (10, 1000000)),
    10**8: ((100000, 1000), (100, 1000000)),
}

# -1: the row case (reduce along contiguous rows); 0: the column case (a strided, non-last axis).
AXES = (-1, 0)

# The reduced lengths of the row-length sweep (``lsm bench --row-sweep``): 32 to 262,144, every
# power of two, so a kernel path's switch (warp, shared memory, block, split rows) shows as a
# step between neighbours.
ROW_LENGTHS = tuple(2**k for k in range(5, 19))
ROW_SWEEP_ELEMENTS = 2**24  # elements of every input of the sweep (64 MiB of float32)


def row_sweep(elements=ROW_SWEEP_ELEMENTS, axes=AXES):
    """The ``(shape, axis)`` inputs of the row-length sweep: for each ``n`` of
    :data:`ROW_LENGTHS` up to ``elements``, ``elements / n`` groups of ``n``: rows
    ``(elements // n, n)`` reduced along -1, columns ``(n, elements // n)`` along 0. Every input
    has the same number of elements, so the throughputs of neighbouring ``n`` compare directly
    (``lsm.bench.report.cliffs``)."""
    inputs = []
    for axis in axes:
        for n in ROW_LENGTHS:
            if n <= elements:
                inputs.append(((elements // n, n) if axis == -1 else (n, elements // n), axis))
    return inputs


# Tolerance of the result check per dtype, relative to max(1, largest |result|). It checks that a
# case computes the op along the right axis, not accuracy (tests/ does that): peers sum in the
# input's precision, and NumPy sums a non-last axis sequentially, so a float32 column of 32768
# elements is off by ~1e-3 there.
CHECK_TOLERANCE = {"float16": 5e-2, "bfloat16": 1e-1, "float32": 1e-2, "float64": 1e-6}


def dtype_of(name):
    """The NumPy dtype named ``name`` (bfloat16: ml_dtypes')."""
    if name == "bfloat16":
        from .._validate import bfloat16_dtype

        return bfloat16_dtype()
    return np.dtype(name)


def _single(x, axis):
    return (x,)


@dataclass(frozen=True)
class Op:
    """One benchmarked function of lsm.

    Attributes
    ----------
    passes : int
        Input-sized arrays the function must read or write: it moves
        ``passes * elements * itemsize`` bytes (log_softmax reads x and writes its result: 2).
    reduces : bool
        Whether the result drops the reduced axis (it has the input's shape otherwise).
    impls : dict
        ``{family: f(module, operands, axis, out)}`` returning the result. ``module`` is the
        library the backend hands in: ``lsm`` for ``lsm`` (writing into ``out``), ``lsm_alloc``
        and ``lsm_in_place`` (over its first operand); NumPy or CuPy for ``numpy``, the textbook
        version; ``scipy.special`` or ``cupyx.scipy.special`` for ``scipy``; ``torch`` for
        ``torch`` (its public, allocating function) and ``torch_out`` (its kernels writing into
        ``out``); ``jax`` for ``jax`` (jitted). ``operands`` are on the backend's device (torch
        tensors and jax arrays for those families); families that allocate ignore ``out``.
    inputs : callable
        ``inputs(x, axis)``: the operands made from the seeded input ``x`` (NumPy).
    """

    passes: int
    reduces: bool
    impls: dict
    inputs: Callable = field(default=_single)

    def result_shape(self, shape, axis):
        return tuple(np.delete(shape, axis)) if self.reduces else tuple(shape)


def _naive_log_softmax(xp, x, axis, out):
    xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    total = xp.exp(out).sum(axis=axis, keepdims=True)
    xp.subtract(out, xp.log(total), out=out)
    return out


def _naive_softmax(xp, x, axis, out):
    xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


def _naive_logsumexp(xp, x, axis, out):
    peak = x.max(axis=axis, keepdims=True)
    xp.log(xp.exp(x - peak).sum(axis=axis), out=out)
    out += xp.squeeze(peak, axis=axis)
    return out


def _naive_log_softmax_backward(xp, grad, y, axis, out):
    xp.exp(y, out=out)
    out *= grad.sum(axis=axis, keepdims=True)
    xp.subtract(grad, out, out=out)
    return out


def _naive_softmax_backward(xp, grad, y, axis, out):
    xp.multiply(grad, y, out=out)
    xp.subtract(grad, out.sum(axis=axis, keepdims=True), out=out)
    out *= y
    return out


def _naive_cross_entropy_grad(xp, logits, target, axis, out):
    """The gradient of the mean cross-entropy: ``(softmax(logits) - onehot(target)) / items``."""
    _naive_softmax(xp, logits, axis, out)
    picked = xp.expand_dims(target, axis)
    xp.put_along_axis(out, picked, xp.take_along_axis(out, picked, axis) - 1, axis)
    out /= target.size
    return out


def _backward_inputs(log):
    """``inputs`` of a backward op: ``(grad, y)``, y the forward output rounded to x's dtype."""

    def inputs(x, axis):
        wide = x.astype(np.float64)
        log_p = _naive_log_softmax(np, wide, axis, np.empty_like(wide))
        y = log_p if log else np.exp(log_p)
        return (x / 4).astype(x.dtype), y.astype(x.dtype)

    return inputs


def _class_targets(x, axis):
    """``(logits, target)`` for cross_entropy: deterministic, well spread class indices."""
    kept = np.delete(x.shape, axis)
    target = np.arange(int(np.prod(kept)), dtype=np.int64) * 7919 % x.shape[axis]
    return x, target.reshape(kept)


def _lsm_cross_entropy_grad(lsm, args, axis, **grad_out):
    """lsm's fused mean cross-entropy and its gradient; the gradient is the result."""
    return lsm.cross_entropy(*args, axis=axis, return_grad=True, **grad_out)[1]


def _torch_cross_entropy_grad(torch, args, axis, out):
    """torch's forward and backward (autograd), the classes moved to dim 1 as torch expects."""
    logits, target = args
    leaf = logits.detach().requires_grad_(True)
    torch.nn.functional.cross_entropy(leaf.movedim(axis, 1), target).backward()
    return leaf.grad


@functools.cache
def _jitted(path):
    """The jax function at ``path`` (``"jax.nn.softmax"``) under ``jax.jit``, its ``axis`` static."""
    import jax

    module, _, name = path.rpartition(".")
    return jax.jit(getattr(importlib.import_module(module), name), static_argnames="axis")


def _jax(path):
    # jax dispatches asynchronously: the call waits for its result, or a timing would see only the
    # dispatch. jax.jit caches a compiled version per input shape, dtype and axis.
    return lambda jax, args, axis, out: _jitted(path)(*args, axis=axis).block_until_ready()


# torch's out= kernels: torch._log_softmax(x, dim, half_to_float, out=) and torch._softmax are
# what the public functions call; torch.logsumexp takes out= itself.
OPS = {
    "log_softmax": Op(
        passes=2,
        reduces=False,
        impls={
            "lsm": lambda lsm, args, axis, out: lsm.log_softmax(*args, axis=axis, out=out),
            "lsm_alloc": lambda lsm, args, axis, out: lsm.log_softmax(*args, axis=axis),
            "numpy": lambda xp, args, axis, out: _naive_log_softmax(xp, *args, axis, out),
            "scipy": lambda special, args, axis, out: special.log_softmax(*args, axis=axis),
            "torch": lambda torch, args, axis, out: torch.log_softmax(*args, axis),
            "torch_out": lambda torch, args, axis, out: torch._log_softmax(*args, axis, False, out=out),
            "jax": _jax("jax.nn.log_softmax"),
        },
    ),
    "softmax": Op(
        passes=2,
        reduces=False,
        impls={
            "lsm": lambda lsm, args, axis, out: lsm.softmax(*args, axis=axis, out=out),
            "lsm_alloc": lambda lsm, args, axis, out: lsm.softmax(*args, axis=axis),
            "numpy": lambda xp, args, axis, out: _naive_softmax(xp, *args, axis, out),
            "scipy": lambda special, args, axis, out: special.softmax(*args, axis=axis),
            "torch": lambda torch, args, axis, out: torch.softmax(*args, axis),
            "torch_out": lambda torch, args, axis, out: torch._softmax(*args, axis, False, out=out),
            "jax": _jax("jax.nn.softmax"),
        },
    ),
    "logsumexp": Op(
        passes=1,  # reads x; the result is one value per row
        reduces=True,
        impls={
            "lsm": lambda lsm, args, axis, out: lsm.logsumexp(*args, axis=axis, out=out),
            "numpy": lambda xp, args, axis, out: _naive_logsumexp(xp, *args, axis, out),
            "scipy": lambda special, args, axis, out: special.logsumexp(*args, axis=axis),
            "torch": lambda torch, args, axis, out: torch.logsumexp(*args, axis),
            "torch_out": lambda torch, args, axis, out: torch.logsumexp(*args, axis, out=out),
            "jax": _jax("jax.scipy.special.logsumexp"),
        },
    ),
    "log_softmax_backward": Op(
        passes=3,  # reads grad and y, writes the result
        reduces=False,
        impls={
            "lsm": lambda lsm, args, axis, out: lsm.log_softmax_backward(*args, axis=axis, out=out),
            "lsm_alloc": lambda lsm, args, axis, out: lsm.log_softmax_backward(*args, axis=axis),
            "lsm_in_place": lambda lsm, args, axis, out: lsm.log_softmax_backward(
                *args, axis=axis, out=args[0]
            ),
            "numpy": lambda xp, args, axis, out: _naive_log_softmax_backward(xp, *args, axis, out),
            "torch_out": lambda torch, args, axis, out: torch._log_softmax_backward_data(
                *args, axis, args[1].dtype, out=out
            ),
        },
        inputs=_backward_inputs(log=True),
    ),
    "softmax_backward": Op(
        passes=3,
        reduces=False,
        impls={
            "lsm": lambda lsm, args, axis, out: lsm.softmax_backward(*args, axis=axis, out=out),
            "lsm_alloc": lambda lsm, args, axis, out: lsm.softmax_backward(*args, axis=axis),
            "lsm_in_place": lambda lsm, args, axis, out: lsm.softmax_backward(*args, axis=axis, out=args[0]),
            "numpy": lambda xp, args, axis, out: _naive_softmax_backward(xp, *args, axis, out),
            "torch_out": lambda torch, args, axis, out: torch._softmax_backward_data(
                *args, axis, args[1].dtype, grad_input=out
            ),
        },
        inputs=_backward_inputs(log=False),
    ),
    # The fused loss and gradient; its result (checked, written to out) is the gradient.
    "cross_entropy": Op(
        passes=2,  # reads the logits, writes their gradient (the targets are one per row)
        reduces=False,
        impls={
            "lsm": lambda lsm, args, axis, out: _lsm_cross_entropy_grad(lsm, args, axis, grad_out=out),
            "lsm_alloc": lambda lsm, args, axis, out: _lsm_cross_entropy_grad(lsm, args, axis),
            # the gradient over the logits: nothing of their size is allocated
            "lsm_in_place": lambda lsm, args, axis, out: _lsm_cross_entropy_grad(
                lsm, args, axis, grad_out=args[0]
            ),
            "numpy": lambda xp, args, axis, out: _naive_cross_entropy_grad(xp, *args, axis, out),
            "torch": _torch_cross_entropy_grad,
        },
        inputs=_class_targets,
    ),
}


def shape_id(shape):
    return "x".join(map(str, shape))


def case_key(info):
    """The identity of a case from its ``extra_info``: what matches cases across runs."""
    shape = shape_id(info["shape"])
    return f"{info['op']}-{info['backend']}-{info['dtype']}-{shape}-axis{info['axis']}-{info['impl']}"


@dataclass(frozen=True)
class Case:
    """One benchmark: an implementation of an op on one input array and axis, on one backend."""

    op: str
    backend: str
    dtype: str
    shape: tuple
    axis: int
    impl: str

    @property
    def elements(self):
        return int(np.prod(self.shape))

    @property
    def bytes_moved(self):
        return OPS[self.op].passes * self.elements * np.dtype(self.dtype).itemsize

    @property
    def group(self):
        """The implementations of one op on one input and axis: timed together, tabled in a row."""
        return f"{self.op} {self.backend} {self.dtype} {shape_id(self.shape)} axis={self.axis}"

    def describe(self):
        """The case's fields as its ``extra_info`` records them."""
        return {
            "op": self.op,
            "impl": self.impl,
            "backend": self.backend,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "axis": self.axis,
            "elements": self.elements,
            "bytes_moved": self.bytes_moved,
        }

    @property
    def id(self):
        return case_key(self.describe())


def shapes_of(sizes):
    """The shapes of :data:`SHAPES` for the given nominal sizes, smallest first."""
    return [shape for size in sorted(SHAPES) if size in sizes for shape in SHAPES[size]]


def make_cases(backend, ops=None, dtypes=None, shapes=None, axes=None, impls=None, inputs=None):
    """The cases of ``backend`` (a :class:`lsm.bench.backends.Backend`) within the given choices.

    Each argument is a collection of allowed values (None: all; ``shapes`` defaults to every
    shape of :data:`SHAPES`, each reduced along every axis of :data:`AXES`). ``inputs``,
    ``(shape, axis)`` pairs, replaces ``shapes`` and ``axes`` where a shape has axes of its own
    (the middle axis of a 3-d array). Cases come input by input (shape, then dtype), and within
    an input group by group (op, then axis), so one input array serves a run of groups.
    """
    ops = [name for name in OPS if ops is None or name in ops]
    if inputs is None:
        shapes = shapes_of(SHAPES) if shapes is None else shapes
        inputs = [(shape, axis) for shape in shapes for axis in AXES if axes is None or axis in axes]
    axes_of = {}  # shape -> its axes, in first-seen order
    for shape, axis in inputs:
        axes_of.setdefault(tuple(shape), {})[axis] = None
    return [
        Case(op, backend.name, dtype, shape, axis, impl.name)
        for shape, shape_axes in axes_of.items()
        for dtype in ALL_DTYPES
        if (dtype in DTYPES if dtypes is None else dtype in dtypes)
        for op in ops
        for axis in shape_axes
        for impl in backend.implementations
        if (impls is None or impl.name in impls) and impl.family in OPS[op].impls
    ]


def make_input(shape, dtype):
    """The seeded, read-only benchmark input of ``shape`` and ``dtype`` (NumPy)."""
    dtype = dtype_of(dtype)
    itemsize = dtype.itemsize
    rng = np.random.default_rng([SEED, *shape, itemsize])
    array = rng.standard_normal(shape, dtype=np.float32 if itemsize < 4 else dtype).astype(dtype)
    array *= 4
    array.flags.writeable = False
    return array


def reference(op, x, axis):
    """``op`` (a name) on ``x`` along ``axis`` by the textbook version in float64 on NumPy."""
    row = OPS[op]
    floats = ("f", "V")  # bfloat16's kind is "V"
    operands = tuple(a.astype(np.float64) if a.dtype.kind in floats else a for a in row.inputs(x, axis))
    return row.impls["numpy"](np, operands, axis, np.empty(row.result_shape(x.shape, axis)))


def check_result(dtype, result, expected):
    """Raise AssertionError unless ``result`` (NumPy) has ``dtype``, and ``expected``'s shape and values."""
    if result.dtype != dtype_of(dtype) or result.shape != expected.shape:
        raise AssertionError(f"got {result.dtype} {result.shape}, expected {dtype} {expected.shape}")
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    with np.errstate(invalid="ignore"):  # inf - inf where both are -inf: equal, so no error
        error = np.where(result == expected, 0.0, np.abs(result.astype(np.float64) - expected))
    worst = float(np.max(error, initial=0.0)) / scale
    if not worst <= CHECK_TOLERANCE[dtype]:  # also catches NaN
        raise AssertionError(f"largest error {worst:.3g} x max(1, |result|) > {CHECK_TOLERANCE[dtype]:g}")
