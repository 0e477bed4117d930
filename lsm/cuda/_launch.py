"""Pick the kernel for a canonical view, size its grid, and launch it on the caller's stream.

Row groups (``inner == 1``) go to one warp per row up to ``WARP_ROW_MAX`` elements, to the split
path for rows of at least ``SPLIT_MIN_LENGTH`` when there are fewer than ``SPLIT_MAX_ROWS`` of
them (too few rows to fill the GPU with one block each), to one block per row with the row in
dynamic shared memory up to ``SHARED_ROW_MAX`` elements, and to one block per row reading the
row from global memory in each pass otherwise.
Column groups go to the column kernels. Grids have ``MIN_BLOCKS`` to ``MAX_BLOCKS`` blocks; the
kernels loop over the rest. Nothing here synchronises: every launch is queued on ``stream``.
"""

import functools
import itertools

import numpy as np
from numba import float64, from_dtype

from .._plan import accumulation_dtype
from . import _backward, _config, _copy, _forward, _losses, _numba
from ._elements import kept_itemsize
from ._reduce import WARP
from ._tiles import COLUMN_MAX_PARTS


@functools.cache
def _accumulation(dtype):
    """The Numba type the kernels accumulate a result of ``dtype`` in (``lsm._plan``'s rule)."""
    return from_dtype(accumulation_dtype(dtype))


def _blocks(items, per_block):
    return min(_config.MAX_BLOCKS, max(_config.MIN_BLOCKS, -(-items // per_block)))


def _device(view):
    return None if view is None else view.device()


def _rows_device(view):
    """The ``(outer, n)`` view of an ``(outer, n, 1)`` view as a kernel argument (None stays None)."""
    return None if view is None else view.device_leading(2)


def _items_device(view):
    """The ``(outer,)`` view of an ``(outer, 1)`` view as a kernel argument (None stays None)."""
    return None if view is None else view.device_leading(1)


def choose(outer, n, inner, acc):
    """The kernel family for groups of length ``n`` in the canonical ``(outer, n, inner)`` view,
    accumulated in ``acc``: ``"columns"``, ``"warp"`` (one warp per row), ``"split"`` (rows split
    across blocks), ``"shared"`` (one block per row, the row in shared memory) or ``"block"``
    (one block per row, the row read from global memory in each pass).

    The split path comes before the shared one: a few long rows fill the GPU only when split
    (with the default tunables no row is both long enough to split and short enough to keep).
    """
    if inner > 1:
        return "columns"
    if n <= per_lane(acc) * WARP:
        return "warp"
    if n >= _config.SPLIT_MIN_LENGTH and outer < _config.SPLIT_MAX_ROWS:
        return "split"
    if n <= shared_row_max(acc):
        return "shared"
    return "block"


def shared_row_max(acc):
    """The longest row kept in shared memory by the kernels accumulating in ``acc``
    (``SHARED_ROW_MAX`` or ``SHARED_ROW_MAX_FLOAT64``)."""
    return _config.SHARED_ROW_MAX_FLOAT64 if acc == float64 else _config.SHARED_ROW_MAX


def per_lane(acc):
    """The most row elements a lane holds in the warp-per-row kernels accumulating in ``acc``
    (``WARP_ROW_MAX`` or ``WARP_ROW_MAX_FLOAT64`` rounded down to whole warps)."""
    row_max = _config.WARP_ROW_MAX_FLOAT64 if acc == float64 else _config.WARP_ROW_MAX
    return row_max // WARP


def warp_slots(n):
    """The bucket of ``_forward.WARP_SLOTS`` for a row of ``n`` elements (``n <= 32 * 32``): the
    fewest slots per lane that hold it, so short rows take the kernels with few registers."""
    for slots in _forward.WARP_SLOTS:
        if n <= slots * WARP:
            return slots
    raise ValueError(f"a row of {n} elements is too long for one warp")


def row_lanes(n):
    """Lanes per row for a warp-path row of ``n`` elements: the fewest of ``_forward.ROW_LANES``
    that hold it (one element a lane, several rows a warp), or a whole warp."""
    for lanes in _forward.ROW_LANES:
        if n <= lanes:
            return lanes
    return WARP


def _warp_launch(family, n, outer, acc, weighted=False):
    """``(kernel, blocks, threads, shared)`` of the warp-path kernel of ``family`` (``"softmax"``
    or ``"logsumexp"``) for ``outer`` rows of ``n`` elements accumulated in ``acc``; ``shared``
    is the launch option of its dynamic shared memory (``weighted``: logsumexp with ``b`` or
    ``where``)."""
    warps, lanes, slots = _config.WARPS_PER_BLOCK, row_lanes(n), warp_slots(n)
    kernel = _forward.build_warp_rows(acc, slots, warps, lanes)[family + "_rows_warp"]
    shared = _forward.warp_row_shared_bytes(family, acc, slots, warps, weighted)
    return kernel, _blocks(outer, warps * (WARP // lanes)), warps * WARP, {"shared": shared}


def column_parts(n):
    """Warps that split each column's reduced axis of length ``n`` in the column tiles (forward
    and backward kernels): ``COLUMN_PARTS``, fewer when a thread would get under
    ``COLUMN_PART_MIN`` elements."""
    return max(1, min(_config.COLUMN_PARTS, COLUMN_MAX_PARTS, n // _config.COLUMN_PART_MIN))


def _column_grid(outer, n, inner):
    """``(blocks, threads)`` of a column-tile kernel: a block per tile of ``WARP`` columns."""
    return _blocks(-(-(outer * inner) // WARP), 1), WARP * column_parts(n)


def _parts(n):
    return -(-n // _config.SPLIT_CHUNK)


def _shared_row(path, x):
    """The launch option of ``path`` for the rows of the view ``x``: ``shared``, the bytes of
    dynamic shared memory that keep one row in ``x``'s dtype (bfloat16 as float32; the shared
    path), or none."""
    return {"shared": x.shape[1] * kept_itemsize(x.dtype)} if path == "shared" else {}


def softmax(x, where, out, log, stream, allocate):
    """Fill ``out`` with (log_)softmax of ``x`` along axis 1 (canonical ``(outer, n, inner)`` views).

    ``allocate(shape, dtype)`` gives a scratch kernel argument (for the split path).
    """
    outer, n, inner = x.shape
    if outer * n * inner == 0:
        return
    acc = _accumulation(out.dtype)
    path = choose(outer, n, inner, acc)
    if path == "columns":
        kernel = _forward.build_columns(acc)["softmax_columns"]
        blocks, threads = _column_grid(outer, n, inner)
        _numba.launch(kernel, blocks, threads, stream, x.device(), _device(where), out.device(), log)
        return
    rows = _forward.build_rows(acc)
    shared = _shared_row(path, x)
    x, where, out = _rows_device(x), _rows_device(where), _rows_device(out)
    if path == "warp":
        kernel, blocks, threads, shared = _warp_launch("softmax", n, outer, acc)
        _numba.launch(kernel, blocks, threads, stream, x, where, out, log, **shared)
    elif path == "split":
        parts = _parts(n)
        partials = allocate((outer, parts, 3), np.dtype(acc.name))
        chunk, threads, blocks = _config.SPLIT_CHUNK, _config.BLOCK_THREADS, _blocks(outer * parts, 1)
        _numba.launch(rows["rows_partials"], blocks, threads, stream, x, where, None, partials, chunk)
        _numba.launch(
            rows["softmax_rows_split"], blocks, threads, stream, x, where, out, partials, chunk, log
        )
    else:
        name = "softmax_rows_" + path  # shared or block
        _numba.launch(
            rows[name], _blocks(outer, 1), _config.BLOCK_THREADS, stream, x, where, out, log, **shared
        )


def logsumexp(x, where, b, lse, sign, stream, allocate):
    """Fill ``lse`` (and ``sign`` unless None), ``(outer, inner)`` views, with logsumexp of ``x``."""
    outer, n, inner = x.shape
    if outer * inner == 0:
        return
    acc = _accumulation(lse.dtype)
    path = choose(outer, n, inner, acc)
    if path == "columns":
        kernel = _forward.build_columns(acc)["logsumexp_columns"]
        blocks, threads = _column_grid(outer, n, inner)
        args = x.device(), _device(where), _device(b), lse.device(), _device(sign)
        _numba.launch(kernel, blocks, threads, stream, *args)
        return
    rows = _forward.build_rows(acc)
    shared = _shared_row(path, x)
    x, where, b = _rows_device(x), _rows_device(where), _rows_device(b)
    lse, sign = _items_device(lse), _items_device(sign)
    if path == "warp":
        weighted = b is not None or where is not None
        kernel, blocks, threads, shared = _warp_launch("logsumexp", n, outer, acc, weighted)
        _numba.launch(kernel, blocks, threads, stream, x, where, b, lse, sign, **shared)
    elif path == "split":
        parts = _parts(n)
        partials = allocate((outer, parts, 3), np.dtype(acc.name))
        chunk, threads = _config.SPLIT_CHUNK, _config.BLOCK_THREADS
        _numba.launch(
            rows["rows_partials"], _blocks(outer * parts, 1), threads, stream, x, where, b, partials, chunk
        )
        merge_threads = _config.ITEM_THREADS
        _numba.launch(
            rows["logsumexp_rows_merge"],
            _blocks(outer, merge_threads),
            merge_threads,
            stream,
            partials,
            lse,
            sign,
        )
    else:
        threads, name = _config.BLOCK_THREADS, "logsumexp_rows_" + path  # shared or block
        _numba.launch(rows[name], _blocks(outer, 1), threads, stream, x, where, b, lse, sign, **shared)


def softmax_backward(grad, y, where, out, log, stream):
    """Fill ``out`` with the gradient of (log_)softmax (canonical ``(outer, n, inner)`` views):
    one warp per row for rows of up to ``WARP_ROW_MAX`` (``WARP_ROW_MAX_FLOAT64``), the row kept
    in the warp's stretch of shared memory, one block per row beyond (the row kept in shared
    memory when its ``n`` elements of ``grad``, and ``n`` of ``y`` for softmax, fit in
    ``shared_row_max``), or column tiles (see ``_backward``)."""
    outer, n, inner = grad.shape
    if outer * n * inner == 0:
        return
    kernels = _backward.build(_accumulation(out.dtype))
    if inner > 1:
        blocks, threads = _column_grid(outer, n, inner)
        args = grad.device(), y.device(), _device(where), out.device(), log
        _numba.launch(kernels["backward_columns"], blocks, threads, stream, *args)
    else:
        args = _rows_device(grad), _rows_device(y), _rows_device(where), _rows_device(out), log
        acc, kept = _accumulation(out.dtype), n if log else 2 * n  # g (and y for softmax) kept
        if n <= per_lane(acc) * WARP:  # a warp per row, each in its stretch of shared memory
            warps = _config.WARPS_PER_BLOCK
            shared = warps * kept * kept_itemsize(grad.dtype)
            kernel, blocks = kernels["backward_rows_warp"], _blocks(outer, warps)
            _numba.launch(kernel, blocks, warps * WARP, stream, *args, shared=shared)
            return
        shared = {"shared": kept * kept_itemsize(grad.dtype)} if kept <= shared_row_max(acc) else {}
        name = "backward_rows_shared" if shared else "backward_rows"
        _numba.launch(kernels[name], _blocks(outer, 1), _config.BLOCK_THREADS, stream, *args, **shared)


def cross_entropy(x, target, probs, class_weight, options, loss, grad, stream):
    """Per-item cross-entropy of ``x`` (canonical view) into ``loss`` (float64 ``(outer, inner)``)
    and its gradient times the scale into ``grad`` unless None (see ``_losses``); ``target``
    (class indices, ``(outer, inner)``) or ``probs`` (like ``x``) is None, ``class_weight`` is a
    1-d kernel argument or None; ``options`` is ``(ignore_index, keep, spread, scale)``."""
    outer, n, inner = x.shape
    if outer * inner == 0:
        return
    kernels = _losses.build(_accumulation(x.dtype))
    if inner > 1:
        blocks, threads = _column_grid(outer, n, inner)
        args = (x.device(), _device(target), _device(probs), class_weight)
        args += (*options, loss.device(), _device(grad))
        _numba.launch(kernels["cross_entropy_columns"], blocks, threads, stream, *args)
    else:
        args = (
            _rows_device(x),
            _items_device(target),
            _rows_device(probs),
            class_weight,
            *options,
            _items_device(loss),
            _rows_device(grad),
        )
        if n <= _config.WARP_ROW_MAX:  # a warp (or a segment of one) per row, a block taking several
            warps, lanes = _config.WARPS_PER_BLOCK, row_lanes(n)
            kernel = kernels[_losses.rows_kernel_name(lanes)]
            blocks, threads = _blocks(outer, warps * (WARP // lanes)), warps * WARP
        else:
            kernel, blocks, threads = kernels["cross_entropy_rows"], _blocks(outer, 1), _config.BLOCK_THREADS
        _numba.launch(kernel, blocks, threads, stream, *args)


def nll_loss(logp, target, class_weight, ignore_index, loss, stream):
    """``loss = -w_t logp_t`` per item (``logp`` canonical, ``target`` and ``loss`` ``(outer, inner)``)."""
    outer, _, inner = logp.shape
    if outer * inner == 0:
        return
    threads = _config.ITEM_THREADS
    kernel = _losses.build(_accumulation(logp.dtype))["nll_loss"]
    _numba.launch(
        kernel,
        _blocks(outer * inner, threads),
        threads,
        stream,
        logp.device(),
        target.device(),
        class_weight,
        ignore_index,
        loss.device(),
    )


def check_classes(target, n_classes, ignore_index, class_weight, verdict, stream):
    """Launch ``_losses.check_classes`` on the ``(outer, inner)`` view ``target`` of class
    indices and the class weights (a kernel argument), either None, into the 3-element float64
    view ``verdict``."""
    target = None if target is None else target.device()
    args = target, n_classes, ignore_index, class_weight, verdict.device()
    _numba.launch(_losses.check_classes, _blocks(1, 1), _config.BLOCK_THREADS, stream, *args)


def reduce_loss(loss, denominator, result, stream):
    """``result[0] = sum(loss) / denominator`` for the 1-d float64 kernel argument ``loss``."""
    _numba.launch(
        _losses.reduce_loss, _blocks(1, 1), _config.BLOCK_THREADS, stream, loss, float(denominator), result
    )


def copy(src, dst, stream):
    """Copy the view ``src`` into the view ``dst`` of the same shape, converting to ``dst``'s dtype.

    Axes that are nested in both views are merged; up to three remaining axes go to one launch of
    ``copy3``, more are looped over here (one launch per index of the leading axes).
    """
    merged = []
    for size, src_stride, dst_stride in zip(src.shape, src.strides, dst.strides, strict=True):
        if size == 0:
            return
        if size == 1:
            continue
        if merged and merged[-1][1] == src_stride * size and merged[-1][2] == dst_stride * size:
            merged[-1] = (merged[-1][0] * size, src_stride, dst_stride)
        else:
            merged.append((size, src_stride, dst_stride))
    merged = [(1, 0, 0)] * (3 - len(merged)) + merged
    leading, tail = merged[:-3], merged[-3:]
    shape = tuple(size for size, _, _ in tail)
    threads = _config.BLOCK_THREADS
    blocks = _blocks(int(np.prod(shape)), threads)
    for index in itertools.product(*(range(size) for size, _, _ in leading)):
        src_offset = sum(i * s for i, (_, s, _) in zip(index, leading, strict=True))
        dst_offset = sum(i * s for i, (_, _, s) in zip(index, leading, strict=True))
        src_view = src.with_layout(shape, [s for _, s, _ in tail]).shifted(src_offset)
        dst_view = dst.with_layout(shape, [s for _, _, s in tail]).shifted(dst_offset)
        _numba.launch(_copy.copy3, blocks, threads, stream, src_view.device(), dst_view.device())
