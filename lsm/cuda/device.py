r"""lsm's row math as device functions for a user's ``@cuda.jit`` kernels.

Not imported by ``import lsm`` (it imports numba-cuda): ``from lsm.cuda import device``.

Two families, over a 1-d array (a row of global, shared or local memory, a slice of one):

- **one thread holds the row**: :func:`logsumexp`, :func:`log_softmax`, :func:`softmax`. The
  calling thread reads the whole row; nothing is shared with other threads.
- **a warp holds the row**: :func:`warp_logsumexp`, :func:`warp_log_softmax`,
  :func:`warp_softmax`. *Cooperative*: all 32 lanes of a warp must call the function together,
  from converged control flow, with the same ``x`` (and ``out``), as they would a warp shuffle.
  Lane ``l`` reads (and writes) the elements ``l, l + 32, l + 64, ...``; the maximum and the sums
  are combined with register shuffles (``shfl_xor_sync``, a butterfly), so **every lane**
  returns the logsumexp. The softmax functions return nothing: each lane has written its own
  elements of ``out``, and a lane that reads elements others wrote must first call
  ``cuda.syncwarp()``.

The math is the GPU kernels' (``lsm.cuda._group``): with :math:`m = \max_j x_j`,

.. math::

    S = \sum_j e^{x_j} = e^m (A + R), \qquad A = \#\{j : x_j = m\}, \qquad
    R = \sum_{x_j < m} e^{x_j - m},

:math:`\log S = m + \log A + \log1p(R / A)` and
:math:`\operatorname{log\_softmax}(x)_j = x_j - m - \log(A + R)`, :math:`R` summed with Neumaier
compensation. A row holding NaN gives NaN (every output), one holding +inf gives +inf
(logsumexp) and NaN (softmax outputs), an empty row or one of only -inf gives -inf (logsumexp)
and NaN (softmax outputs), as lsm's public functions.

Elements may be float16, float32 or float64; float16 and float32 are accumulated in float32,
float64 in float64 (``lsm._plan.accumulation_dtype``'s rule), and ``out`` receives the results
rounded to its own type. An element (or a constant of the row's type) is widened by multiplying
it by a float32 one, which is exact and gives the promotion of its type with float32, so the
float32 helpers of ``lsm.cuda._group`` and ``lsm.cuda._reduce`` serve all three types: in float64
their float32 constants (0, 1, infinities, NaN) promote exactly. The accumulators start from
constants of the row's own type (``x.dtype.type``), not from float32 ones: the simulator runs
the code as Python, where a float32 scalar times a Python float stays float32.

Under Numba's CUDA simulator the warp functions must be called by every thread of the block
(its model of ``shfl_xor_sync`` meets at block barriers): use blocks of one warp there.
"""

import numpy as np

from . import _group, _reduce
from ._numba import cuda
from ._reduce import WARP

_g = _group.build(np.float32)
_r = _reduce.build(np.float32)
_add_term, _compensated_total = _g["add_term"], _g["compensated_total"]
_normaliser, _softmax_value, _logsumexp_value = _g["normaliser"], _g["softmax_value"], _g["logsumexp_value"]
_warp_max, _warp_sum = _r["warp_max"], _r["warp_sum"]

_ONE = np.float32(1)
_ZERO = np.float32(0)
_LOWEST = np.float32(-np.inf)

__all__ = ["log_softmax", "logsumexp", "softmax", "warp_log_softmax", "warp_logsumexp", "warp_softmax"]


@cuda.jit(device=True)
def _widen(value):
    """``value`` in its accumulation type: float16 and float32 as float32, float64 as float64."""
    return value * _ONE


@cuda.jit(device=True)
def _constant(x, value):
    """``value`` in the accumulation type of the row ``x``."""
    return _widen(x.dtype.type(value))


@cuda.jit(device=True)
def _summary(x, first, step):
    """``(m, A, R)`` of the elements ``x[first::step]`` (see the module docstring)."""
    m = _constant(x, _LOWEST)
    for j in range(first, x.shape[0], step):
        value = _widen(x[j])
        m = value if value > m else m  # NaN never wins: it lands in R, which makes R NaN
    at_max, rest = _sums(x, first, step, m)
    return m, at_max, rest


@cuda.jit(device=True)
def _sums(x, first, step, m):
    zero, one = _constant(x, _ZERO), _constant(x, _ONE)
    at_max, total, compensation = zero, zero, zero
    for j in range(first, x.shape[0], step):
        at_max, total, compensation = _add_term(_widen(x[j]), one, m, at_max, total, compensation)
    return at_max, _compensated_total(total, compensation)


@cuda.jit(device=True)
def _write(x, out, first, step, m, at_max, rest, log):
    shift, log_norm, inv_norm = _normaliser(m, at_max, rest)
    for j in range(first, x.shape[0], step):
        out[j] = _softmax_value(_widen(x[j]), shift, log_norm, inv_norm, log)


# --- one thread per row ---------------------------------------------------------------------------


@cuda.jit(device=True)
def logsumexp(x):
    """:math:`\\log \\sum_j e^{x_j}` of the 1-d array ``x``, by the calling thread alone.

    Returns the value in the accumulation type (float32 for float16 and float32 rows, float64
    for float64 rows).
    """
    m, at_max, rest = _summary(x, 0, 1)
    value, _ = _logsumexp_value(m, at_max, rest)
    return value


@cuda.jit(device=True)
def log_softmax(x, out):
    """Write ``log_softmax(x)`` of the 1-d array ``x`` into ``out`` (same length; may be ``x``),
    by the calling thread alone."""
    m, at_max, rest = _summary(x, 0, 1)
    _write(x, out, 0, 1, m, at_max, rest, True)


@cuda.jit(device=True)
def softmax(x, out):
    """Write ``softmax(x)`` of the 1-d array ``x`` into ``out`` (same length; may be ``x``), by
    the calling thread alone."""
    m, at_max, rest = _summary(x, 0, 1)
    _write(x, out, 0, 1, m, at_max, rest, False)


# --- one warp per row -----------------------------------------------------------------------------


@cuda.jit(device=True)
def _warp_summary(x, lane):
    m = _constant(x, _LOWEST)
    for j in range(lane, x.shape[0], WARP):
        value = _widen(x[j])
        m = value if value > m else m
    m = _warp_max(m)
    at_max, rest = _sums(x, lane, WARP, m)
    return m, _warp_sum(at_max), _warp_sum(rest)


@cuda.jit(device=True)
def warp_logsumexp(x):
    """:math:`\\log \\sum_j e^{x_j}` of the 1-d array ``x``, by a whole warp.

    All 32 lanes must call it with the same ``x`` (see the module docstring); every lane
    returns the result, in the accumulation type.
    """
    m, at_max, rest = _warp_summary(x, cuda.laneid)
    value, _ = _logsumexp_value(m, at_max, rest)
    return value


@cuda.jit(device=True)
def warp_log_softmax(x, out):
    """Write ``log_softmax(x)`` into ``out``, by a whole warp: all 32 lanes call it with the same
    ``x`` and ``out``; lane ``l`` writes ``out[l::32]`` (see the module docstring)."""
    lane = cuda.laneid
    m, at_max, rest = _warp_summary(x, lane)
    _write(x, out, lane, WARP, m, at_max, rest, True)


@cuda.jit(device=True)
def warp_softmax(x, out):
    """Write ``softmax(x)`` into ``out``, by a whole warp: all 32 lanes call it with the same
    ``x`` and ``out``; lane ``l`` writes ``out[l::32]`` (see the module docstring)."""
    lane = cuda.laneid
    m, at_max, rest = _warp_summary(x, lane)
    _write(x, out, lane, WARP, m, at_max, rest, False)
