"""CUDA kernels for the gradients of log_softmax and softmax (vector-Jacobian products).

For a group with upstream gradient ``g`` and forward output ``y`` (the CPU contract,
``lsm.cpu._backward``):

.. math::

    \\text{log\\_softmax:}\\quad dx_j = g_j - e^{y_j} \\sum_k g_k, \\qquad
    \\text{softmax:}\\quad dx_j = y_j \\Bigl(g_j - \\sum_k g_k y_k\\Bigr)

Elements outside a ``where`` mask take no part in the sum and get gradient 0 (a fully masked
group is all zeros). Three kernels, each writing a group once:

- ``backward_rows_shared``: one block per row of the ``(outer, n)`` view for rows that fit in
  shared memory (``n`` up to ``SHARED_ROW_MAX``, ``2 n`` for softmax), threads striding over the
  row, a block reduction for the sum; the sum pass keeps ``g`` (and ``y``) in shared memory, so
  ``g`` and ``y`` are read once each;
- ``backward_rows``: the same for longer rows, reading the row twice (the sum, then the output);
- ``backward_columns``: column tiles of the ``(outer, n, inner)`` view (``_tiles``): lanes on
  adjacent columns (coalesced), the block's warps splitting each column, a compensated sum per
  thread combined in warp order, reading the column twice.

Every output element is written by the thread that read its inputs, after the group's sum is
complete, so ``out`` may be ``grad`` or ``y`` (in place). Rows and columns are taken in
grid-stride loops with 64-bit indices.
"""

import functools
import math

from numba import int64

from . import _group, _reduce, _tiles
from ._elements import narrow, row_cache, widen
from ._numba import cuda, kernel
from ._reduce import MAX_WARPS, WARP
from ._tiles import COLUMN_MAX_PARTS, column_of_tile, part_of_block, tile_count


@functools.cache
def build(acc):
    """The backward kernels for accumulation type ``acc`` (float32 or float64)."""
    g, r = _group.build(acc), _reduce.build(acc)
    element, included = g["element"], g["included"]
    compensated_add, compensated_total = g["compensated_add"], g["compensated_total"]
    block_sum, tile_sum = r["block_sum"], _tiles.build(acc)["tile_sum"]
    zero = acc(0)

    @cuda.jit(device=True)
    def sum_term(grad, y, index, log):
        """``g_j`` (log_softmax) or ``g_j y_j`` (softmax)."""
        return element(grad[index]) if log else element(grad[index]) * element(y[index])

    @cuda.jit(device=True)
    def gradient_value(grad, y, index, total, log):
        v = element(y[index])
        return element(grad[index]) - math.exp(v) * total if log else v * (element(grad[index]) - total)

    @kernel
    def backward_rows(grad, y, where, out, log):
        scratch = cuda.shared.array(MAX_WARPS, acc)
        rows, n = grad.shape
        for row in range(int64(cuda.blockIdx.x), rows, cuda.gridDim.x):
            total, compensation = zero, zero
            for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
                if included(where, None, (row, j)):
                    term = sum_term(grad, y, (row, j), log)
                    total, compensation = compensated_add(total, compensation, term)
            total = block_sum(compensated_total(total, compensation), scratch)
            for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
                if included(where, None, (row, j)):
                    out[row, j] = narrow(gradient_value(grad, y, (row, j), total, log), out)
                else:
                    out[row, j] = narrow(zero, out)

    @kernel
    def backward_rows_shared(grad, y, where, out, log):
        """``backward_rows`` for rows that fit in shared memory: each input element is read once.

        The launch gives the block ``n`` elements of dynamic shared memory in ``grad``'s dtype
        (``y`` has the same) for log_softmax, ``2 n`` for softmax. The sum pass reads each
        included ``g_j`` (and ``y_j`` for softmax, kept at ``n + j``) into shared memory while
        summing ``g_j`` or ``g_j y_j``; the output pass takes them from there (log_softmax reads
        ``y_j`` from global memory then, its only read). An excluded element is neither read
        nor kept: its gradient is 0. Each thread reads back only what it wrote, so no barrier
        guards the row, and ``out`` may still be ``grad`` or ``y``.
        """
        scratch = cuda.shared.array(MAX_WARPS, acc)
        cache = row_cache(grad)
        rows, n = grad.shape
        for row in range(int64(cuda.blockIdx.x), rows, cuda.gridDim.x):
            total, compensation = zero, zero
            for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
                if included(where, None, (row, j)):
                    g = grad[row, j]
                    cache[j] = widen(g)
                    term = element(g)
                    if not log:
                        v = y[row, j]
                        cache[n + j] = widen(v)
                        term *= element(v)
                    total, compensation = compensated_add(total, compensation, term)
            total = block_sum(compensated_total(total, compensation), scratch)
            for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
                if included(where, None, (row, j)):
                    g = element(cache[j])
                    if log:
                        out[row, j] = narrow(g - math.exp(element(y[row, j])) * total, out)
                    else:
                        out[row, j] = narrow(element(cache[n + j]) * (g - total), out)
                else:
                    out[row, j] = narrow(zero, out)

    @kernel
    def backward_columns(grad, y, where, out, log):
        table = cuda.shared.array((COLUMN_MAX_PARTS, WARP), acc)
        outer, n, inner = grad.shape
        columns = outer * inner
        part, parts = part_of_block()
        for tile in range(int64(cuda.blockIdx.x), tile_count(columns), cuda.gridDim.x):
            o, i, active = column_of_tile(tile, inner, columns)
            total, compensation = zero, zero
            if active:
                for j in range(part, n, parts):
                    if included(where, None, (o, j, i)):
                        term = sum_term(grad, y, (o, j, i), log)
                        total, compensation = compensated_add(total, compensation, term)
            total = tile_sum(compensated_total(total, compensation), table)
            if active:
                for j in range(part, n, parts):
                    if included(where, None, (o, j, i)):
                        out[o, j, i] = narrow(gradient_value(grad, y, (o, j, i), total, log), out)
                    else:
                        out[o, j, i] = narrow(zero, out)

    return {
        "backward_rows": backward_rows,
        "backward_rows_shared": backward_rows_shared,
        "backward_columns": backward_columns,
    }
