"""Numba CPU kernels over the canonical views.

Every public call reaches these kernels in canonical form (see ``lsm._plan``): the *row* case
(``inner == 1``) as a 2-d view ``(outer, n)`` whose rows are the groups, spread over threads; the
*column* case as the 3-d view ``(outer, n, inner)`` whose groups are columns of a strided axis.

The column path reads the input at most twice and writes the output once, in long contiguous
runs. Columns go in *tiles* of adjacent columns, as wide as ``inner`` up to ``BLOCK_BYTES`` per
block (256 float32, 128 float64, 512 16-bit columns: runs of 1 KiB; whole rows of a small
``inner``). Each tile is cut along ``n`` into *cache blocks* of ``BLOCK_ROWS`` rows (at most 512
KiB): ``_stats.block_stats`` takes a block's maxima and then, from the cache, its sums ``(m_k,
A_k, R_k)``; ``_stats.merge_block_stats`` then rescales every block once by the column's true
maximum, so the statistics keep the contract of ``_stats`` (``A`` an exact count, ``R``
compensated) however long the column and however often its maximum rises. Softmax then reads the
input a second time to write its outputs; logsumexp reads it once. Per element: logsumexp 1
read, (log_)softmax 2 reads and 1 write, plus the block states (3 accumulator numbers per column
and block of 512 rows: 0.6% of a float32 input's bytes, 1.2% of a 16-bit one's).

Threads take whole tiles when there are at least ``SPLIT_BELOW_TILES`` of them; otherwise (8192 x
1024 float32 along axis 0 is four tiles) a call runs in three parallel steps: every block's statistics
into shared scratch, their merge per chunk of ``MERGE_CHUNK`` columns, every block's outputs. The
blocks depend on ``n`` alone and the merge runs in block order, so a column's bits do not depend
on the thread count, on the path or on the other columns of the call.

Rows of up to ``SHORT_ROW`` elements take a third path: threads take chunks of rows, and each
step (maxima, shifted rows, exponentials, sums, normalisers, outputs) runs over the whole chunk
before the next (``_stats.short_row_stats``). A vector loop over 32 elements spends more on its
setup, remainder and horizontal sum than on its work, and one row's steps depend on each other;
a chunk's exponentials run as one long loop, and its per-row logarithms vectorise (``_log``).

Each kernel exists twice: ``*_parallel`` (``prange`` over rows, chunks or tiles) and ``*_serial`` for
inputs too small to pay for waking the thread pool; the column kernels a third time, as
``*_split``, the three parallel steps above, which the backend picks (``_split``) for a parallel
call with too few tiles. Only a call that needs a path compiles it: Numba compiles a driver and
everything it calls for each new signature (on a fresh cache, float32: a column driver with both
paths took 24-26 s serial and 30-34 s parallel, without the split path 18-19 s and 20-22 s), and a
serial call gains nothing from the split path (the same bits, in three steps instead of one).
The glue between the column drivers and their loops (``tile_column_stats``, ``_tile_blocks``,
``_merged``, ``_column_normalisers``, ``_store_column_logsumexp``: no arithmetic of their own, no
``is None`` branch, no fast-math caller) is inlined by Numba (``inline="always"``): every
compiled function is optimised again, with all it calls, inside each compiled caller above it;
two levels fewer took a new dtype's serial softmax driver from 13 s to 9 s, the same bits.
The drivers are separate functions, not one function compiled twice, so Numba's on-disk cache
never mixes them up. A ``prange`` index can be unsigned: the parallel drivers hand it on as
``np.int64``, so that one compiled signature of each helper serves both drivers (not one per
index type) and index arithmetic stays signed.

Outputs are written through ``store`` so the same code serves float64, float32 and the 16-bit
formats (see ``_scalar``).
"""

import math

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ._cache import njit
from ._exp import fast_exp
from ._log import fast_log
from ._optional import included, put
from ._scalar import acc_empty, load, store, to_acc
from ._staging import worker_share
from ._stats import COLUMN_BLOCK, block_stats, merge_block_stats, row_max, row_sums, short_row_stats

# The column path (see the module docstring): cache blocks of BLOCK_ROWS rows (a multiple of
# COLUMN_BLOCK; each block's statistics are kept, 3 numbers per column, so long blocks keep that
# scratch under 1% of the input), tiles at most BLOCK_BYTES per block (read twice, from memory
# once) and COLUMN_STATE_BYTES per state array (L1), the split into blocks below
# SPLIT_BELOW_TILES tiles, and merges in chunks of MERGE_CHUNK columns.
BLOCK_ROWS = 16 * COLUMN_BLOCK
BLOCK_BYTES = 512 * 2**10
COLUMN_STATE_BYTES = 4096
SPLIT_BELOW_TILES = 32
MERGE_CHUNK = 64
SHORT_ROW = 64  # rows up to this long go through the chunked short-row kernels
CHUNK_ELEMENTS = 32768  # elements per chunk of short rows: a scratch of 128-256 KB, in L2 cache


@njit(cache=True)
def _log_a_plus_r(a, r):
    """``log(a + r)`` for ``a > 0`` and ``|r| <= a``, as ``log(a) + log1p(r / a)`` so that a tiny
    ``r`` keeps its relative accuracy (libm; any weights, however small or large)."""
    return math.log1p(r) if a == 1 else math.log(a) + math.log1p(r / a)


@njit(cache=True, inline="always", error_model="numpy")
def _log_count_plus_rest(a, r):
    """``log(a + r)`` for ``a >= 1``, ``r >= 0`` and ``a + r`` finite, the sums of a group without
    weights (``a`` counts its maxima); plain arithmetic, so a loop over groups vectorises.

    ``r > a``: ``log(a + r) >= log 2``, so rounding ``a + r`` costs under an ulp of the result.
    Otherwise ``log(a) + log1p(q)`` with ``q = r / a``, and ``log1p(q) = log(u) q / (u - 1)`` for
    ``u = 1 + q`` rounded, which keeps a tiny ``q``'s relative accuracy (Goldberg, 1991).
    """
    if r > a:
        return fast_log(a + r)
    q = r / a
    u = 1 + q
    log1p_q = q if u == 1 else fast_log(u) * (q / (u - 1))
    return log1p_q if a == 1 else fast_log(a) + log1p_q


@njit(cache=True)
def _normaliser(x, m, at_max, rest):
    """``(shift, log_norm, inv_norm)`` for softmax-type outputs of one group.

    Valid groups give ``x - shift - log_norm`` (log_softmax) and ``exp(x - shift) * inv_norm``
    (softmax), with ``log_norm = log(A + R) = log(A) + log1p(R / A)`` (``A`` counts the maxima).
    A group containing NaN or +inf, or whose included elements are all -inf (``m = -inf``), gets
    a NaN shift, so every included output of it is NaN as the contract requires.
    """
    if not _normalisable(m, rest):
        nan = to_acc(np.nan, x)
        return nan, nan, nan
    return m, _log_count_plus_rest(at_max, rest), 1 / (at_max + rest)


@njit(cache=True, inline="always")
def _normalisable(m, rest):
    """Whether a group has finite outputs: no NaN or +inf in it, and an included element above -inf."""
    return abs(m) < np.inf and rest == rest


@njit(cache=True, error_model="numpy")  # IEEE division: see _log
def _chunk_normalisers(x, m, at_max, rest, log):
    """``_normaliser`` for a chunk of rows, in place: ``m`` becomes the shift and ``at_max`` the
    log normaliser (log_softmax) or the inverse one (softmax). Only the one used is computed: a
    logarithm per row is a good part of the cost of a short row."""
    nan = to_acc(np.nan, x)
    for r in range(m.shape[0]):
        valid = _normalisable(m[r], rest[r])
        norm = _log_count_plus_rest(at_max[r], rest[r]) if log else 1 / (at_max[r] + rest[r])
        m[r] = m[r] if valid else nan
        at_max[r] = norm if valid else nan


@njit(cache=True, inline="always")
def _softmax_value(x, where, out, index, shift, log_norm, inv_norm, log):
    """One output element: log-probability or probability (masked elements: -inf or 0).

    Inlined into the caller by Numba, and written as one conversion with no early return, so that
    the caller's loop vectorises even with the long float16 conversion.
    """
    d = load(x[index]) - shift
    value = d - log_norm if log else fast_exp(d) * inv_norm
    masked = to_acc(-np.inf if log else 0.0, x)
    return store(value if included(where, None, index) else masked, out)


@njit(cache=True)
def _softmax_row(x, where, out, keep, buffer, o, log):
    row = x[o]
    row_where = None if where is None else where[o]
    out_row = out[o]
    m = row_max(row, row_where, None)
    # softmax may keep each exp(x - m) of the sum, in out's row (``keep``) or a scratch row
    # (``buffer``), and rescale it below instead of exponentiating again
    if keep:
        at_max, rest = row_sums(row, row_where, None, m, out_row)
    else:
        at_max, rest = row_sums(row, row_where, None, m, buffer)
    shift, log_norm, inv_norm = _normaliser(x, m, at_max, rest)
    if keep:  # written in place, as one array: a second name for out's row would cost LLVM's
        for j in range(row.shape[0]):  # overlap check its vector loop
            out_row[j] = out_row[j] * inv_norm
    elif buffer is not None:
        for j in range(row.shape[0]):
            out_row[j] = store(buffer[j] * inv_norm, out_row)
    else:
        for j in range(row.shape[0]):
            out_row[j] = _softmax_value(row, row_where, out_row, j, shift, log_norm, inv_norm, log)


@njit(cache=True)
def _softmax_chunk(x, where, out, r0, r1, log):
    """(log_)softmax of the short rows ``x[r0:r1]`` (see ``_stats.short_row_stats``)."""
    exps = acc_empty((r1 - r0, x.shape[1]), x)
    shift, norm, rest = short_row_stats(x, where, None, r0, r1, exps)
    _chunk_normalisers(x, shift, norm, rest, log)
    masked = to_acc(-np.inf if log else 0.0, x)
    for r in range(r1 - r0):
        row, row_exps, out_row = x[r0 + r], exps[r], out[r0 + r]
        row_where = None if where is None else where[r0 + r]
        for j in range(row.shape[0]):
            value = load(row[j]) - shift[r] - norm[r] if log else row_exps[j] * norm[r]
            out_row[j] = store(value if included(row_where, None, j) else masked, out_row)


@njit(cache=True, inline="always")
def _usual_group(m, at_max, rest):
    """Whether ``_log_count_plus_rest`` applies: finite ``m``, ``A >= 1``, ``R >= 0``, ``A + R`` finite
    (always so without weights, unless the group holds NaN or infinities or nothing)."""
    return abs(m) < np.inf and at_max >= 1 and rest >= 0 and at_max + rest < np.inf


@njit(cache=True)
def _logsumexp_group(x, m, at_max, rest):
    """``(log|S|, sign(S))`` of ``S = e^m (A + R)`` for one group, from its statistics.

    ``log|A + R|`` is taken as ``log|big| + log1p(small / big)`` with ``big`` the larger of the
    two in magnitude: the ratio lies in [-1, 1], so nothing overflows, and when ``R`` is tiny
    next to ``A`` (one dominant term) its contribution keeps full relative accuracy.
    """
    if _usual_group(m, at_max, rest):
        return m + _log_count_plus_rest(at_max, rest), to_acc(1.0, x)
    nan = to_acc(np.nan, x)
    zero = to_acc(0.0, x)
    if m != m or at_max != at_max or rest != rest:  # NaN in x or in the weights
        return nan, nan
    if m == -np.inf:  # nothing included above -inf: S = 0
        return m, zero
    if m == np.inf:  # S = A * inf; weights at +inf that cancel leave inf - inf
        if at_max == 0:
            return nan, nan
        return m, to_acc(np.sign(at_max), x)
    big, small = (at_max, rest) if abs(at_max) >= abs(rest) else (rest, at_max)
    if abs(big) == np.inf:  # infinite weights: S = +-inf, or inf - inf
        total = at_max + rest
        if total != total:
            return nan, nan
        return abs(total), to_acc(np.sign(total), x)
    if big == 0 or small / big == -1:  # the weights cancel: S = 0
        return to_acc(-np.inf, x), zero
    return m + _log_a_plus_r(abs(big), small * np.sign(big)), to_acc(np.sign(big), x)


@njit(cache=True)
def _store_logsumexp(lse, sign, index, value, value_sign):
    # Without return_sign a negative sum has no real logarithm: NaN, as scipy.special gives.
    negative_without_sign = sign is None and value_sign < 0
    lse[index] = store(np.nan if negative_without_sign else value, lse)
    put(sign, index, store(value_sign, lse))


@njit(cache=True)
def _logsumexp_row(x, where, b, lse, sign, o):
    row = x[o]
    row_where = None if where is None else where[o]
    row_b = None if b is None else b[o]
    m = row_max(row, row_where, row_b)
    at_max, rest = row_sums(row, row_where, row_b, m, None)
    value, value_sign = _logsumexp_group(x, m, at_max, rest)
    _store_logsumexp(lse, sign, o, value, value_sign)


@njit(cache=True, error_model="numpy")  # IEEE division: see _log
def _logsumexp_chunk(x, where, b, lse, sign, r0, r1):
    exps = acc_empty((r1 - r0, x.shape[1]), x)
    m, at_max, rest = short_row_stats(x, where, b, r0, r1, exps)
    values = np.empty_like(m)
    for r in range(r1 - r0):  # vectorised: the usual groups, without branches or libm calls
        values[r] = m[r] + _log_count_plus_rest(at_max[r], rest[r])
    for r in range(r1 - r0):
        if _usual_group(m[r], at_max[r], rest[r]):
            value, value_sign = values[r], to_acc(1.0, x)
        else:
            value, value_sign = _logsumexp_group(x, m[r], at_max[r], rest[r])
        _store_logsumexp(lse, sign, r0 + r, value, value_sign)


# --- the column path: cache blocks of rows, wide tiles of columns -------------------------------


@register_jitable  # plain Python for the backend's choice of driver, compiled into the kernels
def _column_plan(x):
    """``(tiles, rows, blocks)`` of the column path for the canonical view ``x``: ``tiles`` tiles
    of adjacent columns across ``inner``, each cut along ``n`` into ``blocks`` cache blocks of
    ``rows`` rows (the last one shorter).

    The blocks, which decide how a column is summed, depend on ``n`` alone: a column's result is
    the same bits whatever the other columns of the call (``test_layouts`` compares a call with
    calls on slices of its columns) and however the work is spread over threads. The tiles only
    decide who computes which columns.
    """
    n, inner = x.shape[1], x.shape[2]
    widest = min(
        COLUMN_STATE_BYTES // (8 if x.itemsize == 8 else 4), BLOCK_BYTES // (BLOCK_ROWS * x.itemsize)
    )
    tiles = max(1, (inner + widest - 1) // widest)
    return tiles, BLOCK_ROWS, max(1, (n + BLOCK_ROWS - 1) // BLOCK_ROWS)


def _split(x, tiles, blocks):
    """Whether a parallel column call takes the split driver, blocks rather than whole tiles spread
    over the threads: too few tiles to go round (8192 x 1024 float32 along axis 0 is four tiles),
    and more than one block. Either way the result is the same, bit for bit (see
    ``_stats.merge_block_stats``). Plain Python: the backend asks it, no kernel does."""
    return blocks > 1 and x.shape[0] * tiles < SPLIT_BELOW_TILES


@njit(cache=True)
def _wide_tile(tile, tiles, inner):
    """``(i0, i1)`` of tile ``tile`` (an int64, from ``tile_task`` or ``_block_task``) of ``tiles``
    near-equal tiles of ``inner`` columns."""
    return tile * inner // tiles, (tile + 1) * inner // tiles


@njit(cache=True)
def tile_task(task, tiles, inner):
    """``(o, i0, i1)`` of task ``task`` of ``outer * tiles``: tile ``task % tiles`` of group ``o``."""
    o, tile = divmod(task, tiles)
    i0, i1 = _wide_tile(tile, tiles, inner)
    return o, i0, i1


@njit(cache=True)
def _block_task(task, tiles, blocks, inner, rows, n):
    """``(o, i0, i1, k, j0, j1)`` of task ``task`` of ``outer * tiles * blocks``, the tiles of a
    block of rows one after the other (a thread's share of the tasks is one run of memory)."""
    rest, tile = divmod(task, tiles)
    o, k = divmod(rest, blocks)
    i0, i1 = _wide_tile(tile, tiles, inner)
    j0 = k * rows
    return o, i0, i1, k, j0, min(j0 + rows, n)


@njit(cache=True)
def _merge_task(task, chunks, inner):
    """``(o, c0, c1)`` of task ``task`` of ``outer * chunks`` chunks of ``MERGE_CHUNK`` columns."""
    o, chunk = divmod(np.int64(task), chunks)
    c0 = chunk * MERGE_CHUNK
    return o, c0, min(c0 + MERGE_CHUNK, inner)


@njit(cache=True)
def _block_states(x, outer, blocks, width):
    """Scratch for the ``(m, A, R)`` of every block: three ``(outer, blocks, width)`` arrays."""
    shape = (outer, blocks, width)
    return acc_empty(shape, x), acc_empty(shape, x), acc_empty(shape, x)


@njit(cache=True, inline="always")
def _tile_blocks(x, where, b, o, i0, i1, rows, blocks, states):
    """``block_stats`` of every block of the tile ``x[o, :, i0:i1]`` into ``states[.][0, k]``."""
    block_m, block_a, block_r = states
    for k in range(blocks):
        j0 = k * rows
        j1 = min(j0 + rows, x.shape[1])
        block_stats(x, where, b, o, i0, i1, j0, j1, block_m[0, k], block_a[0, k], block_r[0, k])


@njit(cache=True, inline="always")
def _merged(x, block_m, block_a, block_r):
    """``merge_block_stats`` of ``(blocks, columns)`` views, as three new arrays."""
    m = acc_empty(block_m.shape[1], x)
    at_max = np.empty_like(m)
    rest = np.empty_like(m)
    merge_block_stats(block_m, block_a, block_r, m, at_max, rest)
    return m, at_max, rest


@njit(cache=True, inline="always")
def _column_normalisers(x, m, at_max, rest, shift, log_norm, inv_norm):
    for t in range(m.shape[0]):
        shift[t], log_norm[t], inv_norm[t] = _normaliser(x, m[t], at_max[t], rest[t])


@njit(cache=True)
def _softmax_block(x, where, out, o, i0, i1, j0, j1, shift, log_norm, inv_norm, log):
    """The outputs of ``x[o, j0:j1, i0:i1]`` from their columns' normalisers."""
    for j in range(j0, j1):
        values, out_j = x[o, j, i0:i1], out[o, j, i0:i1]
        where_j = None if where is None else where[o, j, i0:i1]
        for t in range(i1 - i0):
            out_j[t] = _softmax_value(values, where_j, out_j, t, shift[t], log_norm[t], inv_norm[t], log)


@njit(cache=True, inline="always")
def tile_column_stats(x, where, b, o, i0, i1, rows, blocks):
    """``(m, A, R)`` of the columns ``x[o, :, i0:i1]`` by one thread: the statistics of each
    cache block of ``rows`` rows (one read from memory), then their merge."""
    states = _block_states(x, 1, blocks, i1 - i0)
    _tile_blocks(x, where, b, o, i0, i1, rows, blocks, states)
    return _merged(x, states[0][0], states[1][0], states[2][0])


@njit(cache=True)
def _softmax_tile(x, where, out, o, i0, i1, rows, blocks, log):
    """(log_)softmax of the columns ``x[o, :, i0:i1]`` by one thread: their statistics (one read
    from memory), then the outputs (a second read, and the write)."""
    m, at_max, rest = tile_column_stats(x, where, None, o, i0, i1, rows, blocks)
    shift, log_norm, inv_norm = np.empty_like(m), np.empty_like(m), np.empty_like(m)
    _column_normalisers(x, m, at_max, rest, shift, log_norm, inv_norm)
    _softmax_block(x, where, out, o, i0, i1, 0, x.shape[1], shift, log_norm, inv_norm, log)


@njit(cache=True)
def _logsumexp_tile(x, where, b, lse, sign, o, i0, i1, rows, blocks):
    m, at_max, rest = tile_column_stats(x, where, b, o, i0, i1, rows, blocks)
    _store_column_logsumexp(x, lse, sign, o, i0, m, at_max, rest)


@njit(cache=True, inline="always")
def _store_column_logsumexp(x, lse, sign, o, i0, m, at_max, rest):
    for t in range(m.shape[0]):
        value, value_sign = _logsumexp_group(x, m[t], at_max[t], rest[t])
        _store_logsumexp(lse, sign, (o, i0 + t), value, value_sign)


@njit(cache=True)
def _split_block_stats(x, where, b, task, tiles, rows, blocks, states):
    """Step 1 of a split column call: the statistics of one block into the shared ``states``."""
    block_m, block_a, block_r = states
    o, i0, i1, k, j0, j1 = _block_task(task, tiles, blocks, x.shape[2], rows, x.shape[1])
    block_stats(
        x, where, b, o, i0, i1, j0, j1, block_m[o, k, i0:i1], block_a[o, k, i0:i1], block_r[o, k, i0:i1]
    )


@njit(cache=True)
def _split_merge(x, task, states):
    """Step 2 of a split column call: ``(o, c0, c1, m, A, R)`` of one chunk of columns."""
    block_m, block_a, block_r = states
    o, c0, c1 = _merge_task(task, _merge_chunks(x.shape[2]), x.shape[2])
    m, at_max, rest = _merged(x, block_m[o, :, c0:c1], block_a[o, :, c0:c1], block_r[o, :, c0:c1])
    return o, c0, c1, m, at_max, rest


@njit(cache=True)
def _merge_chunks(inner):
    return (inner + MERGE_CHUNK - 1) // MERGE_CHUNK


@njit(cache=True)
def _split_softmax_merge(x, task, states, norms):
    o, c0, c1, m, at_max, rest = _split_merge(x, task, states)
    shift, log_norm, inv_norm = norms
    _column_normalisers(x, m, at_max, rest, shift[o, c0:c1], log_norm[o, c0:c1], inv_norm[o, c0:c1])


@njit(cache=True)
def _split_softmax_block(x, where, out, task, tiles, rows, blocks, norms, log):
    """Step 3 of a split softmax call: the outputs of one block."""
    shift, log_norm, inv_norm = norms
    o, i0, i1, _, j0, j1 = _block_task(task, tiles, blocks, x.shape[2], rows, x.shape[1])
    _softmax_block(
        x, where, out, o, i0, i1, j0, j1, shift[o, i0:i1], log_norm[o, i0:i1], inv_norm[o, i0:i1], log
    )


@njit(cache=True)
def _split_logsumexp_merge(x, lse, sign, task, states):
    o, c0, _, m, at_max, rest = _split_merge(x, task, states)
    _store_column_logsumexp(x, lse, sign, o, c0, m, at_max, rest)


@register_jitable  # plain Python for the backend, callable from njit code too (``_njit``)
def chunk_rows(rows, n, threads):
    """Rows per chunk of short rows: ``CHUNK_ELEMENTS`` elements, but at least one chunk per thread."""
    return max(1, min(CHUNK_ELEMENTS // max(n, 1), -(-rows // threads)))


@njit(cache=True)
def _chunk_count(rows, per_chunk):
    return (rows + per_chunk - 1) // per_chunk


@njit(cache=True)
def _chunk_bounds(chunk, rows, per_chunk):
    r0 = chunk * per_chunk
    return r0, min(r0 + per_chunk, rows)


# --- drivers: softmax / log_softmax; rows take (outer, n) views, columns (outer, n, inner) ----
# Row drivers take ``keep`` (softmax keeps its exponentials in ``out`` and rescales them there:
# no mask, an output in the accumulation type, not in place) and ``buffers`` (None, or one scratch
# row per worker in the accumulation type, where softmax keeps them when ``out`` cannot).


@njit(cache=True)
def softmax_rows_serial(x, where, out, keep, buffers, log):
    buffer = None if buffers is None else buffers[0]
    for o in range(x.shape[0]):
        _softmax_row(x, where, out, keep, buffer, o, log)


@njit(cache=True, parallel=True)
def softmax_rows_parallel(x, where, out, keep, buffers, log):
    if buffers is None:
        for o in prange(x.shape[0]):
            _softmax_row(x, where, out, keep, None, np.int64(o), log)
    else:
        for worker in prange(buffers.shape[0]):
            start, stop = worker_share(x.shape[0], buffers.shape[0], np.int64(worker))
            for o in range(start, stop):
                _softmax_row(x, where, out, keep, buffers[worker], o, log)


@njit(cache=True)
def softmax_short_rows_serial(x, where, out, log, per_chunk):
    for chunk in range(_chunk_count(x.shape[0], per_chunk)):
        r0, r1 = _chunk_bounds(chunk, x.shape[0], per_chunk)
        _softmax_chunk(x, where, out, r0, r1, log)


@njit(cache=True, parallel=True)
def softmax_short_rows_parallel(x, where, out, log, per_chunk):
    for chunk in prange(_chunk_count(x.shape[0], per_chunk)):
        r0, r1 = _chunk_bounds(np.int64(chunk), x.shape[0], per_chunk)
        _softmax_chunk(x, where, out, r0, r1, log)


# Column drivers: one task per tile (serial or parallel), or, for a parallel call with too few
# tiles (``_split``), three steps, each spread over the threads: the statistics of every block,
# their merge per chunk of columns, the outputs of every block (``*_columns_split``).


@njit(cache=True)
def softmax_columns_serial(x, where, out, log):
    outer, inner = x.shape[0], x.shape[2]
    tiles, rows, blocks = _column_plan(x)
    for task in range(outer * tiles):
        o, i0, i1 = tile_task(task, tiles, inner)
        _softmax_tile(x, where, out, o, i0, i1, rows, blocks, log)


@njit(cache=True, parallel=True)
def softmax_columns_parallel(x, where, out, log):
    outer, inner = x.shape[0], x.shape[2]
    tiles, rows, blocks = _column_plan(x)
    for task in prange(outer * tiles):
        o, i0, i1 = tile_task(np.int64(task), tiles, inner)
        _softmax_tile(x, where, out, o, i0, i1, rows, blocks, log)


@njit(cache=True, parallel=True)
def softmax_columns_split(x, where, out, log):
    outer, inner = x.shape[0], x.shape[2]
    tiles, rows, blocks = _column_plan(x)
    states = _block_states(x, outer, blocks, inner)
    for task in prange(outer * tiles * blocks):
        _split_block_stats(x, where, None, np.int64(task), tiles, rows, blocks, states)
    norms = acc_empty((outer, inner), x), acc_empty((outer, inner), x), acc_empty((outer, inner), x)
    for task in prange(outer * _merge_chunks(inner)):
        _split_softmax_merge(x, np.int64(task), states, norms)
    for task in prange(outer * tiles * blocks):
        _split_softmax_block(x, where, out, np.int64(task), tiles, rows, blocks, norms, log)


# --- drivers: logsumexp; rows write lse of shape (outer,), columns (outer, inner) ------------


@njit(cache=True)
def logsumexp_rows_serial(x, where, b, lse, sign):
    for o in range(x.shape[0]):
        _logsumexp_row(x, where, b, lse, sign, o)


@njit(cache=True, parallel=True)
def logsumexp_rows_parallel(x, where, b, lse, sign):
    for o in prange(x.shape[0]):
        _logsumexp_row(x, where, b, lse, sign, np.int64(o))


@njit(cache=True)
def logsumexp_short_rows_serial(x, where, b, lse, sign, per_chunk):
    for chunk in range(_chunk_count(x.shape[0], per_chunk)):
        r0, r1 = _chunk_bounds(chunk, x.shape[0], per_chunk)
        _logsumexp_chunk(x, where, b, lse, sign, r0, r1)


@njit(cache=True, parallel=True)
def logsumexp_short_rows_parallel(x, where, b, lse, sign, per_chunk):
    for chunk in prange(_chunk_count(x.shape[0], per_chunk)):
        r0, r1 = _chunk_bounds(np.int64(chunk), x.shape[0], per_chunk)
        _logsumexp_chunk(x, where, b, lse, sign, r0, r1)


@njit(cache=True)
def logsumexp_columns_serial(x, where, b, lse, sign):
    outer, inner = x.shape[0], x.shape[2]
    tiles, rows, blocks = _column_plan(x)
    for task in range(outer * tiles):
        o, i0, i1 = tile_task(task, tiles, inner)
        _logsumexp_tile(x, where, b, lse, sign, o, i0, i1, rows, blocks)


@njit(cache=True, parallel=True)
def logsumexp_columns_parallel(x, where, b, lse, sign):
    outer, inner = x.shape[0], x.shape[2]
    tiles, rows, blocks = _column_plan(x)
    for task in prange(outer * tiles):
        o, i0, i1 = tile_task(np.int64(task), tiles, inner)
        _logsumexp_tile(x, where, b, lse, sign, o, i0, i1, rows, blocks)


@njit(cache=True, parallel=True)
def logsumexp_columns_split(x, where, b, lse, sign):
    outer, inner = x.shape[0], x.shape[2]
    tiles, rows, blocks = _column_plan(x)
    states = _block_states(x, outer, blocks, inner)
    for task in prange(outer * tiles * blocks):
        _split_block_stats(x, where, b, np.int64(task), tiles, rows, blocks, states)
    for task in prange(outer * _merge_chunks(inner)):
        _split_logsumexp_merge(x, lse, sign, np.int64(task), states)
