"""Rows taken by a block each or by a warp each: the kernels that come both ways share one body.

A kernel body written against a *group* (``cross_entropy_rows`` and ``cross_entropy_rows_warp``,
``backward_rows_shared`` and ``backward_rows_warp``) asks it for its rows and its thread's place
(``rows()``) and for sums over the group's threads (``total(value, scratch)``); :func:`of` gives
the block's or the warp's. Every thread of a block takes every step of a group's row loop, so a
block's reductions and barriers stay legal when its warps take rows of their own (a warp whose
row is past the end takes part with nothing to read).
"""

from numba import int64

from . import _reduce
from ._numba import cuda
from ._reduce import WARP

_, _warp_sum = _reduce.build_segments(WARP)


@cuda.jit(device=True)
def block_rows():
    """``(start, stride, offset, first, step)`` of a block per row: the block's rows are
    ``start + offset, start + stride + offset, ...`` and a thread's elements of a row ``first,
    first + step, ...``."""
    return int64(cuda.blockIdx.x), int64(cuda.gridDim.x), int64(0), cuda.threadIdx.x, cuda.blockDim.x


@cuda.jit(device=True)
def warp_rows():
    """The same for a warp per row: a block takes as many rows at once as it has warps."""
    warps = cuda.blockDim.x // WARP
    start, stride = int64(cuda.blockIdx.x) * warps, int64(cuda.gridDim.x) * warps
    return start, stride, int64(cuda.threadIdx.x // WARP), cuda.threadIdx.x % WARP, WARP


@cuda.jit(device=True)
def warp_total(value, scratch):
    """The sum over the calling warp (``scratch`` unused: the signature of ``block_sum``)."""
    return _warp_sum(value)


def of(per_warp, acc):
    """``(rows, total)`` of a warp per row (``per_warp``) or a block per row, accumulating in
    ``acc``."""
    return (warp_rows, warp_total) if per_warp else (block_rows, _reduce.build(acc)["block_sum"])
