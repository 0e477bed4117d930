"""The forward kernels (log_softmax, softmax, logsumexp) over the canonical ``(outer, n, inner)`` view.

**Rows** (``inner == 1``): groups that are rows of the 2-d view ``(outer, n)`` (unit stride in
practice). Four shapes of work, as the fastest GPU softmax kernels do (the launch code picks one):

- ``*_rows_warp<slots>``: one warp per row, for ``n <= 32 * slots``, one kernel pair per bucket
  of ``slots`` in ``WARP_SLOTS`` (the launch takes the smallest that holds the row). Each lane
  loads its elements once into its ``slots`` (registers, or for the longest rows a stretch of
  dynamic shared memory of its warp's own: ``row_in_shared``), in packs of up to 16 bytes of
  consecutive elements, pack ``p`` of lane ``l`` at ``(32 p + l) * width`` (coalesced: a warp's
  packs are adjacent), one vector load a pack where the row is aligned, and the row's maximum
  and sums are warp reductions. Blocks hold several
  warps (rows). ``*_rows_lanes<k>``: the same kernels for rows of up to 16 elements, ``k`` lanes
  a row (``ROW_LANES``), so a warp takes ``32 / k`` rows at once.
- ``*_rows_shared``: one block per row, for longer rows that fit in shared memory
  (``SHARED_ROW_MAX``): one pass copies the row into dynamic shared memory (in its own dtype;
  16-byte vector loads where the row is aligned, ``_runs``) while taking the maximum, and the
  sums and the output are computed from there, threads striding over the row, so the row is
  read from global memory once. Block reductions combine the threads.
- ``*_rows_block``: the same for rows longer than that, reading the row from global memory in
  each pass: a one-pass summary ``(m, A, R)`` (``build_summaries``), then, for softmax, the
  output (in 16-byte runs where it can): two reads of each element and one write (one read for
  logsumexp).
- split rows, for very long rows and few rows: ``rows_partials`` writes the one-pass summary
  ``(m, A, R)`` of each chunk of ``chunk`` elements (one block per chunk), then ``softmax_rows_split`` (one
  block per chunk again, one thread of each merging the row's summaries for the block) or
  ``logsumexp_rows_merge`` (one thread per row) finish.

Every loop over rows is a grid-stride loop with 64-bit indices and the same trip count for all
threads of a block (inactive warps still take part in the reductions), so any number of rows
runs on a capped grid.

**Columns** (``inner > 1``): groups that are columns ``x[o, :, i]``. A block takes tiles of 32
consecutive columns, lane ``l`` of each warp on column ``l`` of the tile: every step along the
reduced axis is one coalesced read of adjacent elements across a warp. The block's warps split
each column's reduced axis (``_config.COLUMN_PARTS``, so few columns still make many threads),
each summarising its share in one pass with compensated sums; warp 0 merges the shares through
shared memory, and every warp writes the output of its share (logsumexp: no second pass).
Tiles are taken in a grid-stride loop with 64-bit indices, so any number of them runs on a
capped grid.
"""

import functools
import math

import numpy as np
from numba import int64

from . import _group, _reduce, _rolled
from ._elements import narrow, row_cache
from ._numba import cuda, kernel
from ._reduce import MAX_WARPS, WARP
from ._runs import gather_run, load_run, run_width, vector_runs
from ._tiles import COLUMN_MAX_PARTS, column_of_tile, part_of_block, tile_count


@functools.cache
def build_summaries(acc):
    """``(m, A, R)`` of one group in one pass over global memory, for the forward and the loss
    kernels alike (see ``_group``): ``block_summary`` over a stretch of a row by a whole block,
    ``segment_summary(lanes)`` the same by an aligned segment of ``lanes`` lanes of a warp (a
    whole warp for ``WARP``), ``tile_summary`` over a column by the warps of a column tile
    (``_tiles``). Each thread summarises its elements as it reads them (``online_add``); a block
    (a segment) then rescales every thread's summary to the group's maximum and sums them, a
    tile merges its warps' summaries."""
    g, r = _group.build(acc), _reduce.build(acc)
    element, included, weight, merge = g["element"], g["included"], g["weight"], g["merge"]
    online_add, online_finish, rescaled = g["online_add"], g["online_finish"], g["rescaled"]
    block_max, block_sum = r["block_max"], r["block_sum"]
    lowest, zero = acc(-np.inf), acc(0)

    @cuda.jit(device=True)
    def summary_add(value, where, b, row, j, m, at_max, ref, total, compensation):
        """``online_add`` of element ``j`` of row ``row`` (read as ``value``) if it is included."""
        if included(where, b, (row, j)):
            return online_add(element(value), weight(b, (row, j)), m, at_max, ref, total, compensation)
        return m, at_max, ref, total, compensation

    @cuda.jit(device=True)
    def thread_summary(x, where, b, row, start, stop, thread, threads):
        """``(m, A, R)`` of thread ``thread``'s share of ``x[row, start:stop]`` among ``threads``:
        the 16-byte runs (``_runs``) ``thread, thread + threads, ...`` from ``start``, then the
        elements after the last whole run, ``thread, thread + threads, ...`` of them. A thread
        takes the same elements in the same order whatever the layout of ``x``, so a contiguous
        row and a strided one give the same bits; a run is one vector load where the row allows
        it (``vector_runs``), its elements read one by one elsewhere."""
        width = run_width(x)
        runs = (stop - start) // width
        vectors = vector_runs(x, start, stop) > 0
        m, at_max, ref, total, compensation = lowest, zero, lowest, zero, zero
        run = int64(thread)
        while run < runs:  # rolled (_rolled)
            first = start + run * width
            values = load_run(x, row, first) if vectors else gather_run(x, row, first)
            for k in range(width):
                m, at_max, ref, total, compensation = summary_add(
                    values[k], where, b, row, first + k, m, at_max, ref, total, compensation
                )
            run += _rolled.step(threads)
        for j in range(start + runs * width + thread, stop, threads):
            m, at_max, ref, total, compensation = summary_add(
                x[row, j], where, b, row, j, m, at_max, ref, total, compensation
            )
        return online_finish(m, at_max, ref, total, compensation)

    @cuda.jit(device=True)
    def relative_to(top, m, at_max, rest):
        """A thread's ``(A, R)`` against its group's maximum ``top``: below it (``m`` is never
        NaN), the thread's ``A`` joins ``R``."""
        if m != top:
            return zero, rescaled(at_max + rest, m, top)
        return at_max, rest

    @cuda.jit(device=True)
    def block_summary(x, where, b, row, start, stop, scratch):
        """``(m, A, R)`` of ``x[row, start:stop]``, computed by the whole block."""
        m, at_max, rest = thread_summary(x, where, b, row, start, stop, cuda.threadIdx.x, cuda.blockDim.x)
        top = block_max(m, scratch)
        at_max, rest = relative_to(top, m, at_max, rest)
        return top, block_sum(at_max, scratch), block_sum(rest, scratch)

    @functools.cache
    def segment_summary(lanes):
        """The summary by an aligned segment of ``lanes`` lanes of a warp (``_reduce.build_segments``).
        With no more elements than lanes, each lane holds the elements it holds in a whole warp
        (a run, an element after the last run; ``thread_summary``) and the butterfly meets the
        lanes in the steps of a whole warp's, whose other lanes add only exact zeros: the same
        bits."""
        segment_max, segment_sum = _reduce.build_segments(lanes)

        @cuda.jit(device=True)
        def summary(x, where, b, row, start, stop, scratch):
            """``(m, A, R)`` of ``x[row, start:stop]``, computed by the calling segment (every
            lane gets it; ``scratch`` unused: the signature of ``block_summary``)."""
            lane = cuda.threadIdx.x % lanes
            m, at_max, rest = thread_summary(x, where, b, row, start, stop, lane, lanes)
            top = segment_max(m)
            at_max, rest = relative_to(top, m, at_max, rest)
            return top, segment_sum(at_max), segment_sum(rest)

        return summary

    @cuda.jit(device=True)
    def column_summary(x, where, b, o, i, first, step):
        """``(m, A, R)`` of the elements ``first, first + step, ...`` of column ``x[o, :, i]``."""
        m, at_max, ref, total, compensation = lowest, zero, lowest, zero, zero
        for j in range(first, x.shape[1], step):
            if included(where, b, (o, j, i)):
                m, at_max, ref, total, compensation = online_add(
                    element(x[o, j, i]), weight(b, (o, j, i)), m, at_max, ref, total, compensation
                )
        return online_finish(m, at_max, ref, total, compensation)

    @cuda.jit(device=True)
    def tile_summary(x, where, b, o, i, active, table):
        """``(m, A, R)`` of column ``x[o, :, i]`` for every thread of its lane: each warp's
        share, merged through the shared ``table`` (``3 x COLUMN_MAX_PARTS x WARP``) by warp 0
        in part order. Every thread of the block calls it (it synchronises)."""
        lane = cuda.threadIdx.x % WARP
        part, parts = part_of_block()
        m, at_max, rest = lowest, zero, zero
        if active:
            m, at_max, rest = column_summary(x, where, b, o, i, part, parts)
        table[0, part, lane], table[1, part, lane], table[2, part, lane] = m, at_max, rest
        cuda.syncthreads()
        if part == 0:
            for other in range(1, parts):
                m, at_max, rest = merge(
                    m, at_max, rest, table[0, other, lane], table[1, other, lane], table[2, other, lane]
                )
            table[0, 0, lane], table[1, 0, lane], table[2, 0, lane] = m, at_max, rest
        cuda.syncthreads()
        m, at_max, rest = table[0, 0, lane], table[1, 0, lane], table[2, 0, lane]
        cuda.syncthreads()  # every thread has its column's summary: the next tile may write
        return m, at_max, rest

    return {"block_summary": block_summary, "segment_summary": segment_summary, "tile_summary": tile_summary}


#: Row elements each lane holds in the warp-per-row kernels, one kernel pair per bucket: a row of
#: ``n`` takes the smallest bucket with ``32 * slots >= n`` (``_launch.warp_slots``), so a short
#: row's lanes keep only the registers it needs.
WARP_SLOTS = (1, 2, 4, 8, 16, 32)


#: The most bytes of its row a lane keeps in registers in the warp-per-row kernels (its elements,
#: and for logsumexp their weights), and the most slots: ptxas then fits a thread in 64 registers,
#: so the launch bounds below keep 32 of an SM's 64 warps resident (50% occupancy). Left to
#: itself it gave the 16-slot kernels 105-145 registers and the 32-slot ones 171-214 (14-25%). A
#: bucket beyond either bound keeps the row in dynamic shared memory instead (``row_in_shared``).
REGISTER_ROW_BYTES = 64
REGISTER_ROW_SLOTS = 8
# Warps per SM the warp-per-row kernels ask ptxas to make room for (launch bounds): 32 caps a
# thread at 64 registers; the machine code has no stack frame or spills (tests/test_cuda_compile.py).
_RESIDENT_WARPS = 32


def row_in_shared(family, acc, slots):
    """Whether the warp-per-row kernel ``family`` (``"softmax"`` or ``"logsumexp"``) keeps a
    lane's ``slots`` elements (and weights) in shared memory rather than registers."""
    kept = slots * np.dtype(acc.name).itemsize * (2 if family == "logsumexp" else 1)
    return slots > REGISTER_ROW_SLOTS or kept > REGISTER_ROW_BYTES


def warp_row_shared_bytes(family, acc, slots, warps, weighted):
    """Dynamic shared memory per block of the warp-per-row kernel ``family`` with ``slots`` per
    lane in blocks of ``warps`` warps: 0 for rows kept in registers, else each warp's ``32 *
    slots`` elements in ``acc`` (logsumexp: and their weights when ``weighted``, i.e. with ``b``
    or ``where``)."""
    if not row_in_shared(family, acc, slots):
        return 0
    arrays = 2 if family == "logsumexp" and weighted else 1
    return warps * WARP * slots * np.dtype(acc.name).itemsize * arrays


def _launch_bounds(warps):
    """``(threads, blocks)`` launch bounds of a warp-per-row kernel in blocks of ``warps`` warps."""
    return WARP * warps, max(1, _RESIDENT_WARPS // warps)


def named(func, name):
    """``func`` renamed ``name`` (before compiling: each bucket's kernel is its own PTX entry
    and shows under its own name in ``ptxas -v``, the launches and the tests)."""
    func.__name__ = func.__qualname__ = name
    return func


#: Lanes per row for rows of at most 16 elements: a warp then takes ``32 / lanes`` rows at once,
#: one element per lane (``_launch.row_lanes``), instead of leaving most of its lanes idle.
ROW_LANES = (2, 4, 8, 16)


def warp_row_name(family, slots, lanes):
    """``<family>_rows_warp<slots>`` (a warp per row) or ``<family>_rows_lanes<lanes>`` (``lanes``
    lanes per row, one slot)."""
    return f"{family}_rows_warp{slots}" if lanes == WARP else f"{family}_rows_lanes{lanes}"


@functools.cache
def build_warp_rows(acc, slots, warps, lanes=WARP):
    """The warp-per-row kernels for accumulation type ``acc``, rows of up to ``lanes * slots``
    elements and blocks of ``warps`` warps, named ``warp_row_name(family, slots, lanes)``.

    ``slots`` is closed over, so numba-cuda compiles it as a constant: the per-lane arrays of
    ``slots`` elements and the loops over them are unrolled into registers, and a kernel for
    short rows holds (and reads, exponentiates, writes) no more than its rows need. Padding
    beyond ``n`` would only add exact zeros (``e^{-inf - m}``, or a weight of 0) to the sums, so
    every bucket that holds a row gives the same results bit for bit. The block size is
    compiled in as the kernels' launch bounds (``_launch_bounds``), which cap their registers.
    Where a lane's slots would need more registers than that (``row_in_shared``), they are a
    stretch of the block's dynamic shared memory instead (``warp_row_shared_bytes`` at launch):
    warp ``w`` takes elements ``w * 32 * slots`` onwards, its lane ``l`` every 32nd from ``l``
    (consecutive lanes, consecutive banks), and a lane reads back only what it wrote, so no
    barrier is needed; the loops then visit only the slots within the row (``row_slots``).

    A lane's slots hold the row in packs of ``width`` consecutive elements (``pack_width``: 16
    bytes of ``x``, or all the slots when fewer; ``column`` maps a slot to its element), the
    same packs for every layout of ``x``, so a contiguous row and a strided one are summed in
    the same order. Where the packs are whole 16-byte runs and the row is aligned
    (``_runs.vector_runs``), each is one vector load; elsewhere its elements are read one by one.

    With ``lanes`` below ``WARP`` (short rows, one slot), each aligned segment of ``lanes`` lanes
    of a warp takes a row of its own and the reductions run over the segment
    (``_reduce.build_segments``); a row's elements meet in the same butterfly steps as in a
    whole warp, whose other lanes would only add exact zeros, so the results are the same bit
    for bit.
    """
    g = _group.build(acc)
    element, included, weight, add_term = g["element"], g["included"], g["weight"], g["add_term"]
    compensated_add, compensated_total = g["compensated_add"], g["compensated_total"]
    normaliser, softmax_value, store_logsumexp = g["normaliser"], g["softmax_value"], g["store_logsumexp"]
    warp_max, warp_sum = _reduce.build_segments(lanes)
    lowest, zero, one = acc(-np.inf), acc(0), acc(1)
    softmax_shared = row_in_shared("softmax", acc, slots)
    logsumexp_shared = row_in_shared("logsumexp", acc, slots)
    slots_and_weights = 2 * slots  # logsumexp's register array (a constant: the array's size)

    @cuda.jit(device=True)
    def pack_width(x):
        """Slots of a lane that hold consecutive row elements: a 16-byte run of ``x``
        (``_runs``), or all ``slots`` when fewer (a compile-time constant)."""
        return min(run_width(x), slots)

    @cuda.jit(device=True)
    def column(k, lane, width):
        """The row element in slot ``k`` of lane ``lane``: pack ``k // width`` of the lane is
        elements ``(p * lanes + lane) * width`` onwards (pack ``p`` of the row's lanes in turn)."""
        return ((k // width) * lanes + lane) * width + k % width

    @cuda.jit(device=True)
    def row_slots(active, lane, n, width):
        """The slots of a lane within its row. A row kept in registers visits all ``slots`` (a
        constant trip count: the loops unroll into registers); a row kept in shared memory only
        the packs that start within the row (loops, where 16 or 32 unrolled loads a thread need
        more registers than the launch bounds allow). A padding slot adds only exact zeros to the
        sums (an ``e^{-inf - m}``, or a weight of 0), and its ``-inf`` counts at the maximum only
        when the row's maximum is ``-inf``, where every output is NaN whatever the count: the
        same results bit for bit."""
        packs = (n + width - 1) // width
        lane_packs = (packs - lane + lanes - 1) // lanes if packs > lane else 0
        return min(slots, lane_packs * width) if active else 0

    @cuda.jit(device=True)
    def whole_runs(x):
        """Whether a lane's packs are whole 16-byte runs of ``x``, which vector loads may read (a
        compile-time constant: where not, the kernel has no vector load)."""
        return run_width(x) <= slots

    def softmax_rows_warp(x, where, out, log):
        """(log_)softmax of each row of ``x`` (``n <= 32 * slots``), one warp per row: lane ``l``
        loads its packs of elements (``column``; 16 bytes in one vector load where the row is
        aligned) once into its slots, the row's maximum and sums are warp reductions, and each
        element is written once. For softmax the sum pass leaves ``e^{x - m}`` in the slot for
        the output: one exponential per element, the same one ``add_term`` and ``softmax_value``
        would each compute (bit for bit)."""
        if softmax_shared:  # slot k of a lane at first + k * lanes of its warp's stretch
            cache = cuda.shared.array(0, acc)
            first_slot = (cuda.threadIdx.x // lanes) * (lanes * slots) + cuda.threadIdx.x % lanes
            stride = lanes
        else:  # a register array (unrolled)
            cache = cuda.local.array(slots, acc)
            first_slot, stride = 0, 1
        rows, n = x.shape
        per_block = cuda.blockDim.x // lanes  # rows a block takes at once
        lane = cuda.threadIdx.x % lanes
        step = int64(cuda.gridDim.x) * per_block
        width, vectors, runs = pack_width(x), whole_runs(x), vector_runs(x, 0, n)
        for first in range(int64(cuda.blockIdx.x) * per_block, rows, step):
            row = first + cuda.threadIdx.x // lanes
            active = row < rows
            held = row_slots(active, lane, n, width) if softmax_shared else slots
            m = lowest
            for pack in range(0, held, width):
                start = column(pack, lane, width)
                if vectors and active and start < runs * width:  # an aligned run: one vector load
                    values = load_run(x, row, start)
                    for k in range(width):
                        value = lowest
                        if included(where, None, (row, start + k)):
                            value = element(values[k])
                        cache[first_slot + stride * (pack + k)] = value
                        m = value if value > m else m
                else:
                    for k in range(width):
                        value = lowest
                        if active and start + k < n:
                            if included(where, None, (row, start + k)):
                                value = element(x[row, start + k])
                        cache[first_slot + stride * (pack + k)] = value
                        m = value if value > m else m
            m = warp_max(m)
            at_max, total, compensation = zero, zero, zero
            for k in range(held):
                # add_term's step, its e^{x - m} kept for softmax: one exponential per element
                value = cache[first_slot + stride * k]
                if value == m:
                    at_max += one
                    term = one  # e^0
                else:
                    term = math.exp(value - m)
                    total, compensation = compensated_add(total, compensation, term)
                if not log:
                    cache[first_slot + stride * k] = term
            at_max = warp_sum(at_max)
            rest = warp_sum(compensated_total(total, compensation))
            shift, log_norm, inv_norm = normaliser(m, at_max, rest)
            masked = lowest if log else zero
            for k in range(held):
                j = column(k, lane, width)
                if active and j < n:
                    kept = cache[first_slot + stride * k]
                    if not included(where, None, (row, j)):
                        out[row, j] = narrow(masked, out)
                    elif log:
                        out[row, j] = narrow(softmax_value(kept, shift, log_norm, inv_norm, log), out)
                    else:
                        # e^{x - m} / (A + R): the shift is m unless the group is NaN, where
                        # inv_norm is NaN and so is the product
                        out[row, j] = narrow(kept * inv_norm, out)

    def logsumexp_rows_warp(x, where, b, lse, sign):
        """logsumexp of each row of ``x`` (``n <= 32 * slots``), one warp per row, the row held in
        its lanes' slots as in ``softmax_rows_warp``. With ``b`` or ``where`` the slots hold each
        element's weight too (an excluded element as ``-inf`` of weight 0); without them the
        weight is 1 within the row and 0 in the padding, known without keeping it."""
        weighted = b is not None or where is not None
        if logsumexp_shared:  # the weights after the block's elements
            cache = cuda.shared.array(0, acc)
            first_slot = (cuda.threadIdx.x // lanes) * (lanes * slots) + cuda.threadIdx.x % lanes
            stride, weights_at = lanes, cuda.blockDim.x * slots
        else:
            cache = cuda.local.array(slots_and_weights, acc)
            first_slot, stride, weights_at = 0, 1, slots
        rows, n = x.shape
        per_block = cuda.blockDim.x // lanes
        lane = cuda.threadIdx.x % lanes
        step = int64(cuda.gridDim.x) * per_block
        width, vectors, runs = pack_width(x), whole_runs(x), vector_runs(x, 0, n)
        for first in range(int64(cuda.blockIdx.x) * per_block, rows, step):
            row = first + cuda.threadIdx.x // lanes
            active = row < rows
            held = row_slots(active, lane, n, width) if logsumexp_shared else slots
            m = lowest
            for pack in range(0, held, width):
                start = column(pack, lane, width)
                aligned = vectors and active and start < runs * width  # an aligned run: one load
                values = load_run(x, row, start) if aligned else None
                for k in range(width):
                    j = start + k
                    value, w = lowest, zero  # excluded: contributes nothing, never NaN
                    if active and j < n:
                        if included(where, b, (row, j)):
                            value = element(values[k]) if aligned else element(x[row, j])
                            w = weight(b, (row, j))
                    cache[first_slot + stride * (pack + k)] = value
                    if weighted:
                        cache[weights_at + first_slot + stride * (pack + k)] = w
                    m = value if value > m else m
            m = warp_max(m)
            at_max, total, compensation = zero, zero, zero
            for k in range(held):
                if weighted:
                    w = cache[weights_at + first_slot + stride * k]
                else:
                    w = one if active and column(k, lane, width) < n else zero
                value = cache[first_slot + stride * k]
                at_max, total, compensation = add_term(value, w, m, at_max, total, compensation)
            at_max = warp_sum(at_max)
            rest = warp_sum(compensated_total(total, compensation))
            if active and lane == 0:
                store_logsumexp(lse, sign, row, m, at_max, rest)

    return {
        f"{family}_rows_warp": kernel(named(func, warp_row_name(family, slots, lanes)), _launch_bounds(warps))
        for family, func in (("softmax", softmax_rows_warp), ("logsumexp", logsumexp_rows_warp))
    }


@functools.cache
def build_rows(acc):
    """The row kernels for accumulation type ``acc`` but the warp-per-row ones (``build_warp_rows``)."""
    g, r = _group.build(acc), _reduce.build(acc)
    element, included, weight = g["element"], g["included"], g["weight"]
    add_term, merge = g["add_term"], g["merge"]
    compensated_total, normaliser = g["compensated_total"], g["normaliser"]
    softmax_value, store_logsumexp = g["softmax_value"], g["store_logsumexp"]
    block_max, block_sum = r["block_max"], r["block_sum"]
    lowest, zero, one = acc(-np.inf), acc(0), acc(1)
    block_summary = build_summaries(acc)["block_summary"]

    @cuda.jit(device=True)
    def write_softmax_element(value, where, out, row, j, shift, log_norm, inv_norm, log):
        """``out[row, j]`` from its input ``value`` (as read from ``x``; masked: -inf or 0)."""
        if included(where, None, (row, j)):
            out[row, j] = narrow(softmax_value(element(value), shift, log_norm, inv_norm, log), out)
        else:
            out[row, j] = narrow(lowest if log else zero, out)

    @cuda.jit(device=True)
    def write_softmax(x, where, out, row, start, stop, m, at_max, rest, log):
        """The outputs of ``x[row, start:stop]``, reading ``x`` in runs where it can (``_runs``:
        each output depends on its own element only)."""
        shift, log_norm, inv_norm = normaliser(m, at_max, rest)
        width, runs = run_width(x), vector_runs(x, start, stop)
        run = int64(cuda.threadIdx.x)
        while run < runs:  # rolled (_rolled), as the loop below
            first = start + run * width
            values = load_run(x, row, first)
            for k in range(width):
                write_softmax_element(values[k], where, out, row, first + k, shift, log_norm, inv_norm, log)
            run += _rolled.step(cuda.blockDim.x)
        j = start + runs * width + cuda.threadIdx.x
        while j < stop:
            write_softmax_element(x[row, j], where, out, row, j, shift, log_norm, inv_norm, log)
            j += _rolled.step(cuda.blockDim.x)

    @cuda.jit(device=True)
    def cache_element(value, where, b, row, j, cache, m):
        """Keep ``x[row, j]`` (read as ``value``) in ``cache[j]``, ``-inf`` if excluded; the
        running maximum ``m`` updated."""
        kept = element(value) if included(where, b, (row, j)) else lowest
        cache[j] = narrow(kept, cache)  # exact: the value came from x's dtype (or wider)
        return kept if kept > m else m

    @cuda.jit(device=True)
    def cache_row(x, where, b, row, cache, scratch):
        """Read row ``row`` of ``x`` into the shared ``cache``, an element outside ``where`` or of
        weight 0 as ``-inf``; the row's maximum (a block reduction: every thread gets it).

        The row is read in runs where it can be (``_runs``): the copy and the maximum do not
        depend on which thread reads which element. The threads then read the cache in another
        order than they wrote it, so the block first waits until every thread is done with the
        previous row's cache; the maximum's reduction is the barrier after the copy.
        """
        cuda.syncthreads()
        n = x.shape[1]
        m = lowest
        width, runs = run_width(x), vector_runs(x, 0, n)
        for run in range(cuda.threadIdx.x, runs, cuda.blockDim.x):
            values = load_run(x, row, run * width)
            for k in range(width):
                m = cache_element(values[k], where, b, row, run * width + k, cache, m)
        for j in range(runs * width + cuda.threadIdx.x, n, cuda.blockDim.x):
            m = cache_element(x[row, j], where, b, row, j, cache, m)
        return block_max(m, scratch)

    @kernel
    def softmax_rows_block(x, where, out, log):
        scratch = cuda.shared.array(MAX_WARPS, acc)
        rows, n = x.shape
        for row in range(int64(cuda.blockIdx.x), rows, cuda.gridDim.x):
            m, at_max, rest = block_summary(x, where, None, row, 0, n, scratch)
            write_softmax(x, where, out, row, 0, n, m, at_max, rest, log)

    @kernel
    def softmax_rows_shared(x, where, out, log):
        """(log_)softmax of each row of ``x``, one block per row, the row kept in shared memory.

        The launch gives the block ``n * x.itemsize`` bytes of dynamic shared memory. One pass
        reads the row from global memory into it (in ``x``'s own dtype: a float16 value widens
        to float32 exactly, so nothing is lost and half the bytes are used) and takes the
        maximum ``m``; the sums

        .. math::

            A = \\sum_{x_j = m} 1, \\qquad R = \\sum_{x_j < m} e^{x_j - m}

        and the outputs ``x_j - m - log(A + R)`` or ``e^{x_j - m} / (A + R)`` are then computed
        from shared memory: each element of ``x`` is read once and each of ``out`` written once.
        An excluded element is kept as ``-inf``, which adds exactly nothing to ``R`` (``e^{-inf}
        = 0``) and only to ``A`` when ``m = -inf``, where the group is NaN whatever ``A`` is; the
        output pass reads ``where`` again, since an excluded element and an included ``-inf``
        differ in a NaN group. The copy reads ``x`` in 16-byte runs where it can (``cache_row``);
        the sums and the outputs take consecutive elements on consecutive threads, so shared
        memory is accessed without bank conflicts.
        """
        scratch = cuda.shared.array(MAX_WARPS, acc)
        cache = row_cache(x)
        rows, n = x.shape
        for row in range(int64(cuda.blockIdx.x), rows, cuda.gridDim.x):
            m = cache_row(x, where, None, row, cache, scratch)
            at_max, total, compensation = zero, zero, zero
            for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
                at_max, total, compensation = add_term(element(cache[j]), one, m, at_max, total, compensation)
            at_max = block_sum(at_max, scratch)
            rest = block_sum(compensated_total(total, compensation), scratch)
            shift, log_norm, inv_norm = normaliser(m, at_max, rest)
            j = int64(cuda.threadIdx.x)
            while j < n:  # rolled (_rolled)
                write_softmax_element(cache[j], where, out, row, j, shift, log_norm, inv_norm, log)
                j += _rolled.step(cuda.blockDim.x)

    @kernel
    def logsumexp_rows_shared(x, where, b, lse, sign):
        """logsumexp of each row of ``x``, one block per row, the row kept in shared memory.

        As ``softmax_rows_shared``: one pass reads ``x`` into shared memory (an element outside
        ``where`` or of weight 0 as ``-inf``) and takes the maximum ``m``; the sums
        ``A = \\sum_{x_j = m} b_j`` and ``R = \\sum_{x_j < m} b_j e^{x_j - m}`` come from shared
        memory, so ``x`` is read once. The weights are read again in the sum pass (they are not
        kept: that would double the shared memory), and ``where`` with them, since an element
        outside the mask may have any weight (``inf * e^{-inf}`` would be NaN).
        """
        scratch = cuda.shared.array(MAX_WARPS, acc)
        cache = row_cache(x)
        rows, n = x.shape
        for row in range(int64(cuda.blockIdx.x), rows, cuda.gridDim.x):
            m = cache_row(x, where, b, row, cache, scratch)
            at_max, total, compensation = zero, zero, zero
            for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
                # without weights an excluded -inf adds nothing (see softmax_rows_shared) and the
                # mask need not be read again; a weight of 0 adds 0 (or 0 to A when m = -inf)
                if b is None or included(where, None, (row, j)):
                    at_max, total, compensation = add_term(
                        element(cache[j]), weight(b, (row, j)), m, at_max, total, compensation
                    )
            at_max = block_sum(at_max, scratch)
            rest = block_sum(compensated_total(total, compensation), scratch)
            if cuda.threadIdx.x == 0:
                store_logsumexp(lse, sign, row, m, at_max, rest)

    @kernel
    def logsumexp_rows_block(x, where, b, lse, sign):
        scratch = cuda.shared.array(MAX_WARPS, acc)
        rows, n = x.shape
        for row in range(int64(cuda.blockIdx.x), rows, cuda.gridDim.x):
            m, at_max, rest = block_summary(x, where, b, row, 0, n, scratch)
            if cuda.threadIdx.x == 0:
                store_logsumexp(lse, sign, row, m, at_max, rest)

    @kernel
    def rows_partials(x, where, b, partials, chunk):
        """``partials[row, part] = (m, A, R)`` of each chunk of ``chunk`` elements of each row."""
        scratch = cuda.shared.array(MAX_WARPS, acc)
        rows, n = x.shape
        parts = partials.shape[1]
        for task in range(int64(cuda.blockIdx.x), rows * parts, cuda.gridDim.x):
            row, part = task // parts, task % parts
            start = part * chunk
            stop = min(start + chunk, n)
            m, at_max, rest = block_summary(x, where, b, row, start, stop, scratch)
            if cuda.threadIdx.x == 0:
                partials[row, part, 0] = m
                partials[row, part, 1] = at_max
                partials[row, part, 2] = rest

    @cuda.jit(device=True)
    def merged(partials, row):
        m, at_max, rest = lowest, zero, zero
        for part in range(partials.shape[1]):
            m, at_max, rest = merge(
                m, at_max, rest, partials[row, part, 0], partials[row, part, 1], partials[row, part, 2]
            )
        return m, at_max, rest

    @kernel
    def softmax_rows_split(x, where, out, partials, chunk, log):
        """The output of each chunk of each row, from the row's merged chunk summaries.

        One thread of the block merges the row's ``parts`` summaries and hands the result to
        the others through shared memory: ``3 parts`` reads of ``partials`` a chunk, not
        ``3 parts`` by every thread.
        """
        summary = cuda.shared.array(3, acc)
        rows, n = x.shape
        parts = partials.shape[1]
        for task in range(int64(cuda.blockIdx.x), rows * parts, cuda.gridDim.x):
            row, part = task // parts, task % parts
            start = part * chunk
            if cuda.threadIdx.x == 0:
                summary[0], summary[1], summary[2] = merged(partials, row)
            cuda.syncthreads()
            m, at_max, rest = summary[0], summary[1], summary[2]
            cuda.syncthreads()  # every thread has it: the next task may overwrite it
            write_softmax(x, where, out, row, start, min(start + chunk, n), m, at_max, rest, log)

    @kernel
    def logsumexp_rows_merge(partials, lse, sign):
        for row in range(cuda.grid(1), partials.shape[0], cuda.gridsize(1)):
            m, at_max, rest = merged(partials, row)
            store_logsumexp(lse, sign, row, m, at_max, rest)

    return {
        "softmax_rows_block": softmax_rows_block,
        "logsumexp_rows_block": logsumexp_rows_block,
        "softmax_rows_shared": softmax_rows_shared,
        "logsumexp_rows_shared": logsumexp_rows_shared,
        "rows_partials": rows_partials,
        "softmax_rows_split": softmax_rows_split,
        "logsumexp_rows_merge": logsumexp_rows_merge,
    }


@functools.cache
def build_columns(acc):
    """The column kernels for accumulation type ``acc``, on column tiles (``_tiles``): each warp
    summarises its share of a column in one pass, warp 0 merges the shares' ``(m, A, R)`` in
    warp order, and each warp writes the output of its share. So a call with few columns still
    runs ``parts`` threads per column, and each element is read once for the summary (and once
    more for a softmax output)."""
    g = _group.build(acc)
    element, included, normaliser = g["element"], g["included"], g["normaliser"]
    softmax_value, store_logsumexp = g["softmax_value"], g["store_logsumexp"]
    lowest, zero = acc(-np.inf), acc(0)
    tile_summary = build_summaries(acc)["tile_summary"]

    @kernel
    def softmax_columns(x, where, out, log):
        table = cuda.shared.array((3, COLUMN_MAX_PARTS, WARP), acc)
        outer, n, inner = x.shape
        columns = outer * inner
        part, parts = part_of_block()
        masked = lowest if log else zero
        for tile in range(int64(cuda.blockIdx.x), tile_count(columns), cuda.gridDim.x):
            o, i, active = column_of_tile(tile, inner, columns)
            m, at_max, rest = tile_summary(x, where, None, o, i, active, table)
            if active:
                shift, log_norm, inv_norm = normaliser(m, at_max, rest)
                j = int64(part)
                while j < n:  # rolled (_rolled)
                    if included(where, None, (o, j, i)):
                        value = softmax_value(element(x[o, j, i]), shift, log_norm, inv_norm, log)
                        out[o, j, i] = narrow(value, out)
                    else:
                        out[o, j, i] = narrow(masked, out)
                    j += _rolled.step(parts)

    @kernel
    def logsumexp_columns(x, where, b, lse, sign):
        table = cuda.shared.array((3, COLUMN_MAX_PARTS, WARP), acc)
        outer, _, inner = x.shape
        columns = outer * inner
        for tile in range(int64(cuda.blockIdx.x), tile_count(columns), cuda.gridDim.x):
            o, i, active = column_of_tile(tile, inner, columns)
            m, at_max, rest = tile_summary(x, where, b, o, i, active, table)
            if active and cuda.threadIdx.x < WARP:
                store_logsumexp(lse, sign, (o, i), m, at_max, rest)

    return {"softmax_columns": softmax_columns, "logsumexp_columns": logsumexp_columns}
