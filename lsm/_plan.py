"""The canonical plan of a call: which axes it reduces, seen as one ``(outer, n, inner)`` view.

Every kernel of every backend sees its operands in one canonical form: a 3-d view whose middle
axis combines the reduced axes. ``inner == 1`` is the row case, ``inner > 1`` the column case. A
single axis, or a run of adjacent axes, is a change of strides (no copy); separated axes are
first moved behind the kept ones (``perm``), which may cost one copy when the strides cannot be
merged. A plan is arithmetic on shapes only: it never touches array memory.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np


def accumulation_dtype(dtype):
    """The float type the kernels accumulate a result of dtype ``dtype`` in: float64 for float64,
    float32 for every narrower float (float32, float16, bfloat16)."""
    return np.dtype(np.float64 if dtype == np.float64 else np.float32)


def canonical_layout(shape, axes):
    """``(perm, (outer, n, inner))`` for reducing ``axes`` (sorted) of an array of ``shape``.

    Adjacent axes keep the array's order (``perm`` is None) and split it into the sizes before,
    of and after the run; separated axes are moved behind the kept ones and ``inner`` is 1.
    """
    if not axes or axes[-1] - axes[0] == len(axes) - 1:  # sorted and distinct: adjacent
        first, last = (axes[0], axes[-1] + 1) if axes else (len(shape), len(shape))
        return None, (math.prod(shape[:first]), math.prod(shape[first:last]), math.prod(shape[last:]))
    kept = tuple(axis for axis in range(len(shape)) if axis not in axes)
    return kept + axes, (math.prod(shape[axis] for axis in kept), math.prod(shape[axis] for axis in axes), 1)


@dataclass(frozen=True, slots=True)
class Plan:
    """Reducing ``axes`` of an input of ``shape``.

    Attributes
    ----------
    shape : tuple of int
        The shape of the (possibly 0-d) input the caller passed.
    axes : tuple of int
        The reduced axes, sorted (of the input seen as 1-d when it is 0-d).
    perm : tuple of int or None
        The transpose applied before the reshape to ``(outer, n, inner)``.
    shape3 : tuple of int
        ``(outer, n, inner)``.
    shape2 : tuple of int
        ``(outer, inner)``: the kernels' view of a reduction's result.
    kept_shape : tuple of int
        The shape of a reduction's result without ``keepdims`` (the input's shape without the
        reduced axes).

    ``shape2`` and ``kept_shape`` follow from the others; they are fields, worked out once per
    remembered plan, because a loss call asks for them several times.
    """

    shape: tuple
    axes: tuple
    perm: tuple | None
    shape3: tuple
    shape2: tuple
    kept_shape: tuple

    @classmethod
    def of(cls, shape, axes):
        """The plan of reducing ``axes`` (sorted) of an input of ``shape`` (plans are immutable,
        the last 1,024 are remembered: a training loop repeats its shapes)."""
        return _plan_of(cls, tuple(shape), tuple(axes))

    def reduced_shape(self, keepdims):
        """The shape of a reduction's result (a 0-d input always reduces to a 0-d result)."""
        if not self.shape:
            return ()
        if keepdims:
            return tuple(1 if axis in self.axes else size for axis, size in enumerate(self.shape))
        return self.kept_shape


@functools.lru_cache(maxsize=1024)
def _plan_of(cls, shape, axes):
    work_shape = shape if shape else (1,)  # the kernels see a 0-d input as one element
    perm, shape3 = canonical_layout(work_shape, axes)
    kept_shape = tuple(size for axis, size in enumerate(work_shape) if axis not in axes)
    return cls(shape, axes, perm, shape3, (shape3[0], shape3[2]), kept_shape)
