"""Rows taken by a block each or by a segment of a warp each: the kernels that come both ways
share one body.

A kernel body written against a *group* (``cross_entropy_rows``, ``cross_entropy_rows_warp``
and ``cross_entropy_rows_lanes<k>``; ``backward_rows_shared`` and ``backward_rows_warp``) asks it
for its rows and its thread's place (``rows()``) and for sums over the group's threads
(``total(value, scratch)``); :func:`of` gives the block's, the warp's, or those of an aligned
segment of ``lanes`` lanes of a warp (a warp then takes ``32 / lanes`` rows at once). Every
thread of a block takes every step of a group's row loop, so a block's reductions and barriers
stay legal when its warps take rows of their own (a segment whose row is past the end takes
part with nothing to read).
"""

import functools

from numba import int64

from . import _reduce
from ._numba import cuda


@cuda.jit(device=True)
def block_rows():
    """``(start, stride, offset, first, step)`` of a block per row: the block's rows are
    ``start + offset, start + stride + offset, ...`` and a thread's elements of a row ``first,
    first + step, ...``."""
    return int64(cuda.blockIdx.x), int64(cuda.gridDim.x), int64(0), cuda.threadIdx.x, cuda.blockDim.x


@functools.cache
def segments(lanes):
    """``(rows, total)`` of a row per aligned segment of ``lanes`` lanes (a power of two up to
    ``WARP``; ``WARP``: a warp per row): a block takes ``blockDim / lanes`` rows at once, and
    ``total`` sums over the calling segment (shuffles, ``_reduce.build_segments``)."""
    _, segment_sum = _reduce.build_segments(lanes)

    @cuda.jit(device=True)
    def segment_rows():
        per_block = cuda.blockDim.x // lanes
        start, stride = int64(cuda.blockIdx.x) * per_block, int64(cuda.gridDim.x) * per_block
        return start, stride, int64(cuda.threadIdx.x // lanes), cuda.threadIdx.x % lanes, lanes

    @cuda.jit(device=True)
    def segment_total(value, scratch):
        """The sum over the calling segment (``scratch`` unused: the signature of ``block_sum``)."""
        return segment_sum(value)

    return segment_rows, segment_total


def of(lanes, acc):
    """``(rows, total)`` of a block per row (``lanes`` None) or a segment of ``lanes`` lanes per
    row, accumulating in ``acc``."""
    return (block_rows, _reduce.build(acc)["block_sum"]) if lanes is None else segments(lanes)
