"""CUDA kernels for the gradients of log_softmax and softmax (vector-Jacobian products).

For a group with upstream gradient ``g`` and forward output ``y`` (the CPU contract,
``lsm.cpu._backward``):

.. math::

    \\text{log\\_softmax:}\\quad dx_j = g_j - e^{y_j} \\sum_k g_k, \\qquad
    \\text{softmax:}\\quad dx_j = y_j \\Bigl(g_j - \\sum_k g_k y_k\\Bigr)

Elements outside a ``where`` mask take no part in the sum and get gradient 0 (a fully masked
group is all zeros). Four kernels, each writing a group once:

- ``backward_rows_warp``: one warp per row of the ``(outer, n)`` view for rows of up to
  ``WARP_ROW_MAX`` (``WARP_ROW_MAX_FLOAT64``), several rows a block, each row in its warp's
  stretch of shared memory: ``backward_rows_shared`` by warp (shuffle reductions);
- ``backward_rows_shared``: one block per row for longer rows that fit in shared memory (``n``
  up to ``SHARED_ROW_MAX``, ``2 n`` for softmax): a copy of ``g`` (and ``y``) into shared
  memory, then threads striding over the row for the sum (a block reduction) and the output,
  so ``g`` and ``y`` are read once each;
- ``backward_rows``: the same for longer rows, reading the row twice (the sum, then the output);
  the copy and the output pass read 16-byte runs where the arrays allow it (``_runs``);
- ``backward_columns``: column tiles of the ``(outer, n, inner)`` view (``_tiles``): lanes on
  adjacent columns (coalesced), the block's warps splitting each column, a compensated sum per
  thread combined in warp order, reading the column twice.

Every output element is written once the group's sum is complete and its own inputs have been
read, by the thread that read them or after a barrier, so ``out`` may be ``grad`` or ``y`` (in
place). Rows and columns are taken in
grid-stride loops with 64-bit indices.
"""

import functools
import math

from numba import int64

from . import _forward, _group, _groups, _reduce, _rolled, _tiles
from ._elements import narrow, row_cache, widen
from ._numba import cuda, kernel
from ._reduce import MAX_WARPS, WARP
from ._runs import load_run, run_width, vector_runs
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
    def gradient_value(g, v, total, log):
        """``dx_j`` from ``g_j`` and ``y_j`` (as read from ``grad`` and ``y``) and the group's sum."""
        g, v = element(g), element(v)
        return g - math.exp(v) * total if log else v * (g - total)

    @cuda.jit(device=True)
    def write_gradient(g, v, where, out, row, j, total, log):
        if included(where, None, (row, j)):
            out[row, j] = narrow(gradient_value(g, v, total, log), out)
        else:
            out[row, j] = narrow(zero, out)

    @kernel
    def backward_rows(grad, y, where, out, log):
        """The gradient of each row, one block per row: the sum (threads striding over the row,
        a compensated sum each, a block reduction), then the outputs, reading ``grad`` and ``y``
        in 16-byte runs where both allow it (``_runs``)."""
        scratch = cuda.shared.array(MAX_WARPS, acc)
        rows, n = grad.shape
        width = run_width(grad)
        runs = min(vector_runs(grad, 0, n), vector_runs(y, 0, n))
        for row in range(int64(cuda.blockIdx.x), rows, cuda.gridDim.x):
            total, compensation = zero, zero
            for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
                if included(where, None, (row, j)):
                    term = sum_term(grad, y, (row, j), log)
                    total, compensation = compensated_add(total, compensation, term)
            total = block_sum(compensated_total(total, compensation), scratch)
            run = int64(cuda.threadIdx.x)
            while run < runs:  # rolled (_rolled), as the loop below
                first = run * width
                gs, vs = load_run(grad, row, first), load_run(y, row, first)
                for k in range(width):
                    write_gradient(gs[k], vs[k], where, out, row, first + k, total, log)
                run += _rolled.step(cuda.blockDim.x)
            j = runs * width + cuda.threadIdx.x
            while j < n:
                write_gradient(grad[row, j], y[row, j], where, out, row, j, total, log)
                j += _rolled.step(cuda.blockDim.x)

    def shared_rows_kernel(per_warp):
        """``backward_rows_shared`` (a block per row) or, with ``per_warp``,
        ``backward_rows_warp`` (a warp per row, several rows a block, each in the warp's own
        stretch of the block's shared memory: rows of up to ``WARP_ROW_MAX``)."""
        group_rows, group_sum = _groups.of(WARP if per_warp else None, acc)

        def backward_rows_shared(grad, y, where, out, log):
            """``backward_rows`` for rows that fit in shared memory: each input element is read
            once.

            The launch gives each row ``n`` elements of dynamic shared memory in ``grad``'s
            dtype (``y`` has the same) for log_softmax, ``2 n`` for softmax. A copy pass reads
            ``g`` (and ``y`` for softmax, kept at ``n + j``) into shared memory, in 16-byte runs
            where the arrays allow it (``_runs``); the sum of ``g_j`` or ``g_j y_j`` over the
            included elements then comes from there in the order of ``backward_rows`` (thread
            ``t`` of the group takes ``t, t + step, ...``), so the block kernel and
            ``backward_rows`` give the same bits, and so does the output pass (log_softmax reads
            ``y_j`` from global memory then, its only read, by the thread that writes ``dx_j``).
            An excluded element gets gradient 0. The copy's runs put elements on other threads
            than the sum's stride does, so the block waits before each copy (the previous row's
            outputs are done with the cache) and after it; ``out`` may still be ``grad`` or
            ``y``, since the outputs are written after the copy and the sum. Every thread of the
            block takes every step of the row loop; a row past the end reads nothing.
            """
            scratch = cuda.shared.array(MAX_WARPS, acc)
            cache = row_cache(grad)
            rows, n = grad.shape
            width = run_width(grad)
            runs = vector_runs(grad, 0, n)
            if not log:
                runs = min(runs, vector_runs(y, 0, n))
            start, stride, offset, first, step = group_rows()
            base = offset * (n if log else 2 * n)  # the group's stretch of the cache
            for group_row in range(start, rows, stride):
                row = group_row + offset
                active = row < rows
                cuda.syncthreads()
                for run in range(first, runs if active else 0, step):
                    begin = run * width
                    gs = load_run(grad, row, begin)
                    for k in range(width):
                        cache[base + begin + k] = widen(gs[k])
                    if not log:
                        vs = load_run(y, row, begin)
                        for k in range(width):
                            cache[base + n + begin + k] = widen(vs[k])
                stop = n if active else 0
                for j in range(runs * width + first, stop, step):
                    cache[base + j] = widen(grad[row, j])
                    if not log:
                        cache[base + n + j] = widen(y[row, j])
                cuda.syncthreads()
                total, compensation = zero, zero
                for j in range(first, stop, step):
                    if included(where, None, (row, j)):
                        term = element(cache[base + j])
                        if not log:
                            term *= element(cache[base + n + j])
                        total, compensation = compensated_add(total, compensation, term)
                total = group_sum(compensated_total(total, compensation), scratch)
                for j in range(first, stop, step):
                    if included(where, None, (row, j)):
                        if log:
                            value = gradient_value(cache[base + j], y[row, j], total, log)
                        else:
                            value = gradient_value(cache[base + j], cache[base + n + j], total, log)
                        out[row, j] = narrow(value, out)
                    else:
                        out[row, j] = narrow(zero, out)

        name = "backward_rows_warp" if per_warp else "backward_rows_shared"
        return kernel(_forward.named(backward_rows_shared, name))

    backward_rows_shared, backward_rows_warp = shared_rows_kernel(False), shared_rows_kernel(True)

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
                j = int64(part)
                while j < n:  # rolled (_rolled)
                    if included(where, None, (o, j, i)):
                        value = gradient_value(grad[o, j, i], y[o, j, i], total, log)
                        out[o, j, i] = narrow(value, out)
                    else:
                        out[o, j, i] = narrow(zero, out)
                    j += _rolled.step(parts)

    return {
        "backward_rows": backward_rows,
        "backward_rows_warp": backward_rows_warp,
        "backward_rows_shared": backward_rows_shared,
        "backward_columns": backward_columns,
    }
