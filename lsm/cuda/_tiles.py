"""Column tiles: how the column kernels share out the columns of the canonical ``(outer, n,
inner)`` view and split each column's reduced axis among the warps of a block.

A block takes tiles of ``WARP`` consecutive columns (of the flattened ``outer x inner``, in a
grid-stride loop), lane ``l`` of every warp on column ``l`` of the tile, so each step along the
reduced axis reads 32 adjacent elements (coalesced). Its ``parts = blockDim.x / WARP`` warps
split each column: warp ``p`` takes the elements ``p, p + parts, ...``. What the warps find
about a column (a sum, or a summary ``(m, A, R)``) meets in a shared table of
``COLUMN_MAX_PARTS x WARP`` entries, where warp 0 combines it in warp order (so a call's result
does not depend on scheduling) and hands it back to every warp.
"""

import functools

from . import _group
from ._numba import cuda
from ._reduce import WARP

#: Most warps of a column block (``_config.COLUMN_PARTS`` chooses how many, up to this): the
#: size of each block's shared table of partial results.
COLUMN_MAX_PARTS = 8


@cuda.jit(device=True)
def tile_count(columns):
    return (columns + WARP - 1) // WARP


@cuda.jit(device=True)
def column_of_tile(tile, inner, columns):
    """``(o, i, active)``: this thread's column of tile ``tile`` (inactive past the last)."""
    column = tile * WARP + cuda.threadIdx.x % WARP
    return column // inner, column % inner, column < columns


@cuda.jit(device=True)
def part_of_block():
    """``(part, parts)``: this thread's warp and the block's number of warps."""
    return cuda.threadIdx.x // WARP, cuda.blockDim.x // WARP


@functools.cache
def build(acc):
    """``tile_sum``: a column's sum from its warps' compensated shares, for accumulation type
    ``acc``."""
    g = _group.build(acc)
    compensated_add, compensated_total = g["compensated_add"], g["compensated_total"]
    zero = acc(0)

    @cuda.jit(device=True)
    def tile_sum(total, table):
        """The sum over the block's warps of ``total`` for this lane's column, for every thread
        of the lane (``table``: shared, ``COLUMN_MAX_PARTS x WARP``). Every thread of the block
        calls it (it synchronises)."""
        lane = cuda.threadIdx.x % WARP
        part, parts = part_of_block()
        table[part, lane] = total
        cuda.syncthreads()
        if part == 0:
            compensation = zero
            for other in range(1, parts):
                total, compensation = compensated_add(total, compensation, table[other, lane])
            table[0, lane] = compensated_total(total, compensation)
        cuda.syncthreads()
        total = table[0, lane]
        cuda.syncthreads()  # every thread has its column's sum: the next tile may write
        return total

    return {"tile_sum": tile_sum}
