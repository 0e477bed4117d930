"""The comparison table: op x dtype x shape x axis x backend x implementation.

One table drives ``lsm bench`` and the pytest-benchmark suite under ``benchmarks/`` alike.

- An :class:`Op` row says how every implementation family computes one function and how many
  bytes the function must move. Adding a function to the benchmarks is one row in :data:`OPS`.
- A backend (``lsm.bench.backends``) lists the implementations it runs: which family of the row
  each uses and which library provides it. Adding a backend is one entry in its table there.
- :func:`make_cases` crosses them with :data:`DTYPES`, :data:`SHAPES` and :data:`AXES`.

Inputs are seeded standard normal logits times 4 (softmax outputs then span many orders of
magnitude), read-only, so every implementation reads the same unmodified array.
"""

import functools
import importlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SEED = 20240601

DTYPES = ("float16", "float32", "float64")

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


def _single_input(x, axis):
    return (x,)


@dataclass(frozen=True)
class Op:
    """One benchmarked function and how each implementation family computes it.

    Every family is a callable ``f(module, operands, axis, out)`` returning the result, or None
    where the family has no version of this op. ``module`` is the library the backend hands in
    (``lsm``; ``numpy`` or ``cupy`` for ``naive``; ``scipy.special`` or ``cupyx.scipy.special``
    for ``special``; ``torch`` for ``torch`` and ``torch_out``), ``operands`` the arrays from
    :attr:`inputs` on the backend's device (torch tensors for the torch families), ``out`` a
    preallocated result that families which cannot write into it ignore.

    Attributes
    ----------
    name : str
        The function's name (``lsm.<name>``).
    passes : int
        Input-sized arrays the function must read or write: it moves
        ``passes * elements * itemsize`` bytes (log_softmax reads x and writes the result: 2).
    reduces : bool
        Whether the result drops the reduced axis (its ``out`` has the input's shape otherwise).
    naive : callable
        The textbook version written against an array module (NumPy or CuPy), into ``out``
        where the module allows it. In float64 on NumPy it is also the oracle that every
        implementation's result is checked against.
    lsm, lsm_alloc, lsm_in_place, special, torch, torch_out, jax : callable or None
        lsm writing into ``out``; lsm allocating; lsm writing over its first operand;
        ``scipy.special``-style; torch's public (allocating) function; torch writing into
        ``out``; jax's function, jitted.
    inputs : callable
        ``inputs(x, axis)``: the operand tuple built from the seeded input ``x`` (NumPy).
    """

    name: str
    passes: int
    reduces: bool
    naive: Callable
    lsm: Callable | None = None
    lsm_alloc: Callable | None = None
    lsm_in_place: Callable | None = None
    special: Callable | None = None
    torch: Callable | None = None
    torch_out: Callable | None = None
    jax: Callable | None = None
    inputs: Callable = field(default=_single_input)

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


def _forward_output(x, axis, log):
    """log_softmax or softmax of ``x`` in float64, rounded to ``x``'s dtype (the backward's ``y``)."""
    wide = x.astype(np.float64)
    shifted = wide - wide.max(axis=axis, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return (log_p if log else np.exp(log_p)).astype(x.dtype)


def _backward_inputs(log):
    """``(grad, y)`` for the backward ops: an upstream gradient and the forward output."""

    def inputs(x, axis):
        grad = (x / 4).astype(x.dtype)
        return grad, _forward_output(x, axis, log)

    return inputs


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


def _class_targets(x, axis):
    """``(logits, target)`` for cross_entropy: seeded-looking, deterministic class indices."""
    kept = np.delete(x.shape, axis)
    classes = x.shape[axis]
    target = (np.arange(int(np.prod(kept)), dtype=np.int64) * 7919 % classes).reshape(kept)
    return x, target


def _naive_cross_entropy_grad(xp, logits, target, axis, out):
    """The gradient of the mean cross-entropy: ``(softmax(logits) - onehot(target)) / items``."""
    _naive_softmax(xp, logits, axis, out)
    picked = xp.expand_dims(target, axis)
    xp.put_along_axis(out, picked, xp.take_along_axis(out, picked, axis) - 1, axis)
    out /= target.size
    return out


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
    """The ``jax`` family calling the jitted function at ``path``.

    jax dispatches asynchronously: the call waits for its result, or a timing would see only the
    dispatch. Compiled versions are cached per input shape, dtype and axis by ``jax.jit`` itself.
    """
    return lambda jax, args, axis, out: _jitted(path)(*args, axis=axis).block_until_ready()


# torch's out= variants: ``torch._log_softmax(x, dim, half_to_float, out=)`` and ``torch._softmax``
# are the kernels behind the public functions; ``torch.logsumexp`` takes ``out=`` itself.
OPS = {
    op.name: op
    for op in (
        Op(
            "log_softmax",
            passes=2,
            reduces=False,
            naive=lambda xp, args, axis, out: _naive_log_softmax(xp, *args, axis, out),
            lsm=lambda lsm, args, axis, out: lsm.log_softmax(*args, axis=axis, out=out),
            lsm_alloc=lambda lsm, args, axis, out: lsm.log_softmax(*args, axis=axis),
            special=lambda special, args, axis, out: special.log_softmax(*args, axis=axis),
            torch=lambda torch, args, axis, out: torch.log_softmax(*args, axis),
            torch_out=lambda torch, args, axis, out: torch._log_softmax(*args, axis, False, out=out),
            jax=_jax("jax.nn.log_softmax"),
        ),
        Op(
            "softmax",
            passes=2,
            reduces=False,
            naive=lambda xp, args, axis, out: _naive_softmax(xp, *args, axis, out),
            lsm=lambda lsm, args, axis, out: lsm.softmax(*args, axis=axis, out=out),
            lsm_alloc=lambda lsm, args, axis, out: lsm.softmax(*args, axis=axis),
            special=lambda special, args, axis, out: special.softmax(*args, axis=axis),
            torch=lambda torch, args, axis, out: torch.softmax(*args, axis),
            torch_out=lambda torch, args, axis, out: torch._softmax(*args, axis, False, out=out),
            jax=_jax("jax.nn.softmax"),
        ),
        Op(
            "logsumexp",
            passes=1,  # reads x; the result is one value per row
            reduces=True,
            naive=lambda xp, args, axis, out: _naive_logsumexp(xp, *args, axis, out),
            lsm=lambda lsm, args, axis, out: lsm.logsumexp(*args, axis=axis, out=out),
            special=lambda special, args, axis, out: special.logsumexp(*args, axis=axis),
            torch=lambda torch, args, axis, out: torch.logsumexp(*args, axis),
            torch_out=lambda torch, args, axis, out: torch.logsumexp(*args, axis, out=out),
            jax=_jax("jax.scipy.special.logsumexp"),
        ),
        Op(
            "log_softmax_backward",
            passes=3,  # reads grad and y, writes the result
            reduces=False,
            naive=lambda xp, args, axis, out: _naive_log_softmax_backward(xp, *args, axis, out),
            lsm=lambda lsm, args, axis, out: lsm.log_softmax_backward(*args, axis=axis, out=out),
            lsm_alloc=lambda lsm, args, axis, out: lsm.log_softmax_backward(*args, axis=axis),
            lsm_in_place=lambda lsm, args, axis, out: lsm.log_softmax_backward(*args, axis=axis, out=args[0]),
            torch_out=lambda torch, args, axis, out: torch._log_softmax_backward_data(
                *args, axis, args[1].dtype, out=out
            ),
            inputs=_backward_inputs(log=True),
        ),
        Op(
            "softmax_backward",
            passes=3,
            reduces=False,
            naive=lambda xp, args, axis, out: _naive_softmax_backward(xp, *args, axis, out),
            lsm=lambda lsm, args, axis, out: lsm.softmax_backward(*args, axis=axis, out=out),
            lsm_alloc=lambda lsm, args, axis, out: lsm.softmax_backward(*args, axis=axis),
            lsm_in_place=lambda lsm, args, axis, out: lsm.softmax_backward(*args, axis=axis, out=args[0]),
            torch_out=lambda torch, args, axis, out: torch._softmax_backward_data(
                *args, axis, args[1].dtype, grad_input=out
            ),
            inputs=_backward_inputs(log=False),
        ),
        Op(
            # the fused loss and gradient; the gradient is the result checked and written to out
            "cross_entropy",
            passes=2,  # reads the logits, writes their gradient (the targets are one per row)
            reduces=False,
            naive=lambda xp, args, axis, out: _naive_cross_entropy_grad(xp, *args, axis, out),
            lsm=lambda lsm, args, axis, out: lsm.cross_entropy(
                *args, axis=axis, return_grad=True, grad_out=out
            )[1],
            lsm_alloc=lambda lsm, args, axis, out: lsm.cross_entropy(*args, axis=axis, return_grad=True)[1],
            # the gradient over the logits: nothing of their size is allocated
            lsm_in_place=lambda lsm, args, axis, out: lsm.cross_entropy(
                *args, axis=axis, return_grad=True, grad_out=args[0]
            )[1],
            torch=_torch_cross_entropy_grad,
            inputs=_class_targets,
        ),
    )
}


def shape_id(shape):
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class Case:
    """One benchmark: an implementation of an op on one input array, on one backend."""

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
    def id(self):
        return f"{self.op}-{self.backend}-{self.dtype}-{shape_id(self.shape)}-axis{self.axis}-{self.impl}"

    @property
    def group(self):
        """The implementations of one op on one input share a group, so tables put them side by side."""
        return f"{self.op} {self.backend} {self.dtype} {shape_id(self.shape)} axis={self.axis}"

    def describe(self):
        """The case's fields as stored in a result's ``extra_info``."""
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


def case_key(info):
    """The identity of a case from a result's ``extra_info``: what compares across runs."""
    shape = shape_id(info["shape"])
    return (
        f"{info['op']}-{info.get('backend', 'cpu')}-{info['dtype']}-{shape}-axis{info['axis']}-{info['impl']}"
    )


def shapes_of(sizes):
    """The shapes of :data:`SHAPES` for the given nominal sizes, smallest first."""
    return [shape for size in sorted(SHAPES) if size in sizes for shape in SHAPES[size]]


def make_cases(backend, ops=None, dtypes=None, shapes=None, axes=None, impls=None, inputs=None):
    """The cases of ``backend`` (a :class:`lsm.bench.backends.Backend`) within the given choices.

    Each argument is a collection of allowed values (None: all; ``shapes`` defaults to every
    shape of :data:`SHAPES`, in the order given, each reduced along every axis of :data:`AXES`).
    ``inputs``, ``(shape, axis)`` pairs, replaces ``shapes`` and ``axes`` where a shape has axes
    of its own (the middle axis of a 3-d array, axis 0 of one shape only). Cases are ordered
    input by input (shape, then dtype), so one input array serves every case of a shape and
    dtype in a row.
    """
    ops = list(OPS) if ops is None else [name for name in OPS if name in ops]
    if inputs is None:
        shapes = shapes_of(SHAPES) if shapes is None else shapes
        inputs = [(shape, axis) for shape in shapes for axis in AXES if axes is None or axis in axes]
    axes_of = {}  # shape -> its axes, in first-seen order: a shape's cases stay together
    for shape, axis in inputs:
        axes_of.setdefault(tuple(shape), {})[axis] = None
    return [
        Case(op, backend.name, dtype, shape, axis, implementation.name)
        for shape, shape_axes in axes_of.items()
        for dtype in DTYPES
        if dtypes is None or dtype in dtypes
        for op in ops
        for axis in shape_axes
        for implementation in backend.implementations
        if (impls is None or implementation.name in impls) and implementation.supports(OPS[op])
    ]


def make_input(shape, dtype):
    """The seeded, read-only benchmark input of ``shape`` and ``dtype`` (NumPy)."""
    itemsize = np.dtype(dtype).itemsize
    rng = np.random.default_rng([SEED, *shape, itemsize])
    array = rng.standard_normal(shape, dtype=np.float32 if itemsize < 4 else dtype).astype(dtype)
    array *= 4
    array.flags.writeable = False
    return array


class InputCache:
    """Inputs by ``(shape, dtype)``, keeping the last ``keep`` alive (cases come input by input)."""

    def __init__(self, keep=2):
        self._keep = keep
        self._arrays = OrderedDict()

    def get(self, shape, dtype):
        key = (tuple(shape), np.dtype(dtype).name)
        if key not in self._arrays:
            while len(self._arrays) >= self._keep:
                self._arrays.popitem(last=False)
            self._arrays[key] = make_input(shape, dtype)
        self._arrays.move_to_end(key)
        return self._arrays[key]


# Tolerance of the result check per dtype, relative to max(1, largest |result|). It checks that a
# case computes the op along the right axis, not accuracy (tests/ does that): peers sum in the
# input's precision, and NumPy sums a non-last axis sequentially, so a float32 column of 32768
# elements is off by ~1e-3 there.
CHECK_TOLERANCE = {"float16": 5e-2, "float32": 1e-2, "float64": 1e-6}


def reference(case, x):
    """The case's result computed by the naive version in float64 on NumPy: the oracle."""
    op = OPS[case.op]
    operands = tuple(a.astype(np.float64) if a.dtype.kind == "f" else a for a in op.inputs(x, case.axis))
    out = np.empty(op.result_shape(x.shape, case.axis))
    return op.naive(np, operands, case.axis, out)


def check_result(case, result, expected):
    """Raise AssertionError unless ``result`` (NumPy) has the case's dtype, shape and values."""
    if result.dtype != np.dtype(case.dtype) or result.shape != expected.shape:
        raise AssertionError(f"got {result.dtype} {result.shape}, expected {case.dtype} {expected.shape}")
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    with np.errstate(invalid="ignore"):  # inf - inf where both are -inf: equal, so no error
        error = np.where(result == expected, 0.0, np.abs(result.astype(np.float64) - expected))
    worst = float(np.max(error, initial=0.0)) / scale
    if not worst <= CHECK_TOLERANCE[case.dtype]:  # also catches NaN
        raise AssertionError(
            f"largest error {worst:.3g} x max(1, |result|) > {CHECK_TOLERANCE[case.dtype]:g}"
        )
