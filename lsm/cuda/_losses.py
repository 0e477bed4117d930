"""CUDA kernels for cross-entropy (loss and gradient fused), the negative log-likelihood, the
target and weight checks, and the reduction of per-item losses.

Cross-entropy of one item follows the CPU contract (``lsm.cpu._losses``): with per-class
coefficients ``q_c`` (``w_c eps / C + [c = t] keep w_t`` for a class index ``t``,
``w_c (keep r_c + eps / C)`` for probabilities ``r``), ``m`` the largest logit,
``S = sum_c exp(x_c - m)`` and ``Q = sum_c q_c``:

.. math::

    \\ell = Q \\log S - \\sum_c q_c (x_c - m), \\qquad
    \\frac{\\partial \\ell}{\\partial x_c} = \\frac{e^{x_c - m}}{S} Q - q_c,

the gradient multiplied by the reduction's ``scale``. Terms with ``q_c = 0`` count as 0 even at
``x_c = -inf``; ignored items (``target == ignore_index``) get loss 0 and a zero gradient.

- ``cross_entropy_rows``: one block per row of the ``(outer, C)`` view (block reductions);
  ``cross_entropy_rows_warp`` the same with one warp per row (warp shuffles), several rows a
  block, for rows of up to ``_config.WARP_ROW_MAX`` classes; ``cross_entropy_rows_lanes<k>``
  with ``k`` lanes per row (``_forward.ROW_LANES``), ``32 / k`` rows a warp, for rows of up to
  ``k`` classes, the same bits as a warp per row (one body, ``rows_kernel``);
- ``cross_entropy_columns``: column tiles of the ``(outer, C, inner)`` view (``_tiles``);
- ``nll_loss``: one thread per item, ``loss = -w_t logp_t``.

Both cross-entropy kernels read the logits in two passes (the one-pass summary ``(m, A, R)`` of
``_forward.build_summaries``, then the gradient; a third for the sums of ``q_c`` with label
smoothing or probability targets), plus the target logit once per item, and write each gradient
element from the thread that read it, after every read of the group (the block synchronises
first), so the gradient may be written over the logits. An ignored item's logits are not read.

``check_classes`` validates on the device, in one launch, and reports through one 3-element
float64 ``verdict`` (the first bad target's flat position, or the item count when none; the
number of bad weights; the total weight of the counted targets; the counts are exact below
2^53), which the host copies back: 24 bytes, the one synchronisation of a loss call (with
class-index targets or class weights). The total is summed in a fixed order, so it is the
same bitwise from run to run (an atomic sum would not be, with fractional weights).
"""

import functools
import math

from numba import float64, int64

from . import _forward, _group, _groups, _reduce, _rolled, _tiles
from ._elements import narrow, widen
from ._numba import cuda, kernel
from ._reduce import MAX_WARPS, WARP
from ._runs import load_run, run_width, vector_runs
from ._tiles import COLUMN_MAX_PARTS, column_of_tile, part_of_block, tile_count


@functools.cache
def build(acc):
    """The loss kernels for accumulation type ``acc`` (float32 or float64)."""
    g = _group.build(acc)
    element, weight, normaliser = g["element"], g["weight"], g["normaliser"]
    compensated_add, compensated_total = g["compensated_add"], g["compensated_total"]
    zero = acc(0)
    summaries = _forward.build_summaries(acc)  # (m, A, R) of a group, as the forward kernels
    block_summary, segment_summary = summaries["block_summary"], summaries["segment_summary"]
    tile_summary = summaries["tile_summary"]
    tile_sum = _tiles.build(acc)["tile_sum"]

    @cuda.jit(device=True)
    def coefficient(probs, class_weight, index, c, keep, spread):
        """``w_c (keep r_c + spread)``: ``q_c`` without the class-index term (``r = 0`` without
        probability targets)."""
        p = zero
        if probs is not None:
            p = element(probs[index])
        return weight(class_weight, c) * (keep * p + spread)

    @cuda.jit(device=True)
    def target_term(q, value, shift):
        """``q (x - shift)``, 0 when ``q`` is 0 (even for an infinite ``x``)."""
        return zero if q == 0 else q * (value - shift)

    @cuda.jit(device=True)
    def gradient_value(value, probs, class_weight, index, c, t, shift, inv_norm, scaled):
        """The gradient of logit ``c`` (read as ``value``; ``index`` its place in the arrays)."""
        big_q, keep, spread, pick = scaled
        p = math.exp(element(value) - shift) * inv_norm
        q = coefficient(probs, class_weight, index, c, keep, spread)
        if c == t:
            q += pick
        return p * big_q - q

    def rows_kernel(lanes):
        """``cross_entropy_rows`` (a block per row, ``lanes`` None) or, with ``lanes`` lanes per
        row, ``cross_entropy_rows_warp`` (``WARP``: rows of up to ``WARP_ROW_MAX`` classes, for
        which a block's other threads would have nothing to read) or
        ``cross_entropy_rows_lanes<lanes>`` (rows of up to ``lanes`` classes)."""
        group_rows, group_sum = _groups.of(lanes, acc)
        group_summary = block_summary if lanes is None else segment_summary(lanes)

        def cross_entropy_rows(x, target, probs, class_weight, ignore_index, keep, spread, scale, loss, grad):
            scratch = cuda.shared.array(MAX_WARPS, acc)
            rows, n = x.shape
            keep_acc, spread_acc, s = acc(keep), acc(spread), acc(scale)
            start, stride, offset, first, step = group_rows()
            width, runs = run_width(x), vector_runs(x, 0, n)
            # every thread of the block takes every step (the reductions and the barrier are the
            # block's); a row past the end, or an ignored item's, reads nothing (stop 0)
            for group_row in range(start, rows, stride):
                row = group_row + offset
                active = row < rows
                t = int64(-1)
                if target is not None and active:
                    t = int64(target[row])
                ignored = target is not None and t == ignore_index
                counted = active and not ignored
                stop = n if counted else 0
                m, at_max, rest = group_summary(x, None, None, row, 0, stop, scratch)
                shift, log_norm, inv_norm = normaliser(m, at_max, rest)
                weighted, q_total = zero, zero
                if probs is not None or spread != 0:
                    weighted_c, q_c = zero, zero
                    for c in range(first, stop, step):
                        q = coefficient(probs, class_weight, (row, c), c, keep_acc, spread_acc)
                        weighted, weighted_c = compensated_add(
                            weighted, weighted_c, target_term(q, element(x[row, c]), shift)
                        )
                        q_total, q_c = compensated_add(q_total, q_c, q)
                    weighted = group_sum(compensated_total(weighted, weighted_c), scratch)
                    q_total = group_sum(compensated_total(q_total, q_c), scratch)
                pick = zero
                if target is not None and counted:
                    pick = keep_acc * weight(class_weight, t)
                    q_total += pick
                if first == 0 and active:  # the loss is one thread's: only it reads the target logit
                    if ignored:
                        loss[row] = narrow(0.0, loss)
                    else:
                        if target is not None:
                            weighted += target_term(pick, element(x[row, t]), shift)
                        loss[row] = narrow(q_total * log_norm - weighted, loss)
                cuda.syncthreads()  # every read of the row is done before the gradient overwrites it
                if grad is not None and active:  # the logits in 16-byte runs where they allow it
                    scaled = (q_total * s, keep_acc * s, spread_acc * s, pick * s)
                    row_runs = 0 if ignored else runs  # an ignored item's gradient is 0: no reads
                    run = int64(first)
                    while run < row_runs:  # rolled (_rolled), as the loop below
                        values = load_run(x, row, run * width)
                        for k in range(width):
                            c = run * width + k
                            value = gradient_value(
                                values[k], probs, class_weight, (row, c), c, t, shift, inv_norm, scaled
                            )
                            grad[row, c] = narrow(value, grad)
                        run += _rolled.step(step)
                    c = row_runs * width + first
                    while c < n:
                        value = zero
                        if not ignored:
                            value = gradient_value(
                                x[row, c], probs, class_weight, (row, c), c, t, shift, inv_norm, scaled
                            )
                        grad[row, c] = narrow(value, grad)
                        c += _rolled.step(step)

        return kernel(_forward.named(cross_entropy_rows, rows_kernel_name(lanes)))

    @kernel
    def cross_entropy_columns(x, target, probs, class_weight, ignore_index, keep, spread, scale, loss, grad):
        """Cross-entropy of each column of the ``(outer, C, inner)`` view, on column tiles
        (``_tiles``): the warps of a block split each column's classes, their summaries and sums
        meet in shared memory, warp 0 writes the loss and each warp the gradient of its share."""
        summaries = cuda.shared.array((3, COLUMN_MAX_PARTS, WARP), acc)
        sums = cuda.shared.array((COLUMN_MAX_PARTS, WARP), acc)
        targets = cuda.shared.array(WARP, int64)
        outer, n, inner = x.shape
        columns = outer * inner
        lane = cuda.threadIdx.x % WARP
        part, parts = part_of_block()
        keep_acc, spread_acc, s = acc(keep), acc(spread), acc(scale)
        for tile in range(int64(cuda.blockIdx.x), tile_count(columns), cuda.gridDim.x):
            o, i, active = column_of_tile(tile, inner, columns)
            if part == 0:  # one read of the target per item, shared by the summary's barriers
                t = int64(-1)
                if target is not None:
                    if active:
                        t = int64(target[o, i])
                targets[lane] = t
            m, at_max, rest = tile_summary(x, None, None, o, i, active, summaries)
            t = targets[lane]
            ignored = target is not None and t == ignore_index
            shift, log_norm, inv_norm = normaliser(m, at_max, rest)
            weighted, q_total = zero, zero
            if probs is not None or spread != 0:
                weighted_c, q_c = zero, zero
                if active:
                    for c in range(part, n, parts):
                        q = coefficient(probs, class_weight, (o, c, i), c, keep_acc, spread_acc)
                        weighted, weighted_c = compensated_add(
                            weighted, weighted_c, target_term(q, element(x[o, c, i]), shift)
                        )
                        q_total, q_c = compensated_add(q_total, q_c, q)
                weighted = tile_sum(compensated_total(weighted, weighted_c), sums)
                q_total = tile_sum(compensated_total(q_total, q_c), sums)
            pick = zero
            if target is not None and not ignored:
                pick = keep_acc * weight(class_weight, t)
                q_total += pick
            if part == 0 and active:  # the loss is warp 0's: only it reads the target logit
                if ignored:
                    loss[o, i] = narrow(0.0, loss)
                else:
                    if target is not None:
                        weighted += target_term(pick, element(x[o, t, i]), shift)
                    loss[o, i] = narrow(q_total * log_norm - weighted, loss)
            cuda.syncthreads()  # every read of the tile is done before the gradient overwrites it
            if grad is not None and active:
                scaled = (q_total * s, keep_acc * s, spread_acc * s, pick * s)
                c = int64(part)
                while c < n:  # rolled (_rolled)
                    value = zero
                    if not ignored:
                        index = (o, c, i)
                        value = gradient_value(
                            x[index], probs, class_weight, index, c, t, shift, inv_norm, scaled
                        )
                    grad[o, c, i] = narrow(value, grad)
                    c += _rolled.step(parts)

    @kernel
    def nll_loss(logp, target, class_weight, ignore_index, loss):
        outer, _, inner = logp.shape
        for item in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
            o, i = item // inner, item % inner
            t = int64(target[o, i])
            value = 0.0
            if t != ignore_index:
                w = weight(class_weight, t)
                if w != 0:
                    value = -(w * element(logp[o, t, i]))
            loss[o, i] = narrow(value, loss)

    rows = {rows_kernel_name(lanes): rows_kernel(lanes) for lanes in ROW_KERNEL_LANES}
    return {**rows, "cross_entropy_columns": cross_entropy_columns, "nll_loss": nll_loss}


#: Lanes per row of the cross-entropy row kernels: None for a block per row, a warp, or a segment
#: of one (``_forward.ROW_LANES``).
ROW_KERNEL_LANES = (None, WARP, *_forward.ROW_LANES)


def rows_kernel_name(lanes):
    """The cross-entropy row kernel of ``lanes`` lanes per row (None: a block per row)."""
    if lanes is None:
        return "cross_entropy_rows"
    return "cross_entropy_rows_warp" if lanes == WARP else f"cross_entropy_rows_lanes{lanes}"


_reduce64, _group64 = _reduce.build(float64), _group.build(float64)
_block_sum64, _block_max64 = _reduce64["block_sum"], _reduce64["block_max"]
_compensated_add64, _compensated_total64 = _group64["compensated_add"], _group64["compensated_total"]


@cuda.jit(device=True)
def _usable(weight):
    """Whether a class weight is finite and non-negative (NaN is not)."""
    return weight >= 0 and weight < math.inf


@kernel
def check_classes(target, n_classes, ignore_index, class_weight, verdict):
    """Check a loss call's class-index targets and class weights (either may be None), in block 0
    (the launch has ``MIN_BLOCKS`` blocks, see ``_config``; the others return at once).

    ``verdict[0]``: the smallest flat position of a target neither ``ignore_index`` nor in
    ``[0, n_classes)``, or the number of items when there is none; ``verdict[1]``: the number of
    class weights that are negative, infinite or NaN; ``verdict[2]``: the total weight of the
    counted targets (1 each without class weights; a bad weight counts 0, so the total stays
    finite rather than inf - inf). One block does it all, so nothing needs presetting (one
    launch, not a preset, a check and a sum) and the total is summed in a fixed order: the same
    bitwise from run to run, as an atomic sum of fractional weights would not be.
    """
    if cuda.blockIdx.x != 0:
        return
    scratch = cuda.shared.array(MAX_WARPS, float64)
    bad = 0.0
    if class_weight is not None:
        for c in range(cuda.threadIdx.x, class_weight.shape[0], cuda.blockDim.x):
            if not _usable(class_weight[c]):
                bad += 1.0
    first = 0.0  # the smallest bad position (a float64 holds it exactly)
    weight_sum, compensation = 0.0, 0.0
    if target is not None:
        outer, inner = target.shape
        items = outer * inner
        first = float64(items)
        for item in range(cuda.threadIdx.x, items, cuda.blockDim.x):
            t = int64(target[item // inner, item % inner])
            counted = 0.0
            if t != ignore_index:
                if t < 0 or t >= n_classes:
                    first = min(first, float64(item))
                elif class_weight is None:
                    counted = 1.0
                else:
                    w = float64(class_weight[t])
                    counted = w if _usable(w) else 0.0
            weight_sum, compensation = _compensated_add64(weight_sum, compensation, counted)
    first = -_block_max64(-first, scratch)  # the block's minimum
    bad = _block_sum64(bad, scratch)
    weight_sum = _block_sum64(_compensated_total64(weight_sum, compensation), scratch)
    if cuda.threadIdx.x == 0:
        verdict[0] = first
        verdict[1] = bad
        verdict[2] = weight_sum


@kernel
def reduce_loss(loss, denominator, result):
    """``result[0] = sum(loss) / denominator`` (``denominator`` 1 for a sum), by block 0 (the
    launch has ``MIN_BLOCKS`` blocks, see ``_config``); ``x / 0`` follows IEEE (0 / 0 is NaN: a
    mean over nothing, as torch)."""
    if cuda.blockIdx.x != 0:
        return
    scratch = cuda.shared.array(MAX_WARPS, float64)
    total, compensation = 0.0, 0.0
    for item in range(cuda.threadIdx.x, loss.shape[0], cuda.blockDim.x):
        total, compensation = _compensated_add64(total, compensation, float64(widen(loss[item])))
    total = _block_sum64(_compensated_total64(total, compensation), scratch)
    if cuda.threadIdx.x == 0:
        if denominator != 0:
            value = total / denominator
        elif total == 0 or total != total:
            value = math.nan
        else:
            value = math.copysign(math.inf, total)
        result[0] = narrow(value, result)
