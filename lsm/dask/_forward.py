"""log_softmax, softmax and logsumexp of Dask arrays: task graphs over the in-memory pipeline.

Two kinds of graph, chosen by the chunking of the reduced axes:

* **each reduced axis lies in one chunk**: every block is an independent in-memory lsm call
  (``map_blocks``), one task per block and nothing else;
* **a reduced axis is split across chunks**: a tree reduction (``dask.array.reduction``) first
  computes, for every group, a sum :math:`S = \\sum_j b_j e^{x_j}` of positive terms from
  per-chunk partial results in float64: the pair :math:`(m, \\log(S e^{-m}))` of
  ``lsm.streaming``, merged as it merges states (:math:`m = \\max_k m_k`, each part's term
  :math:`e^{m_k - m} e^{\\ell_k}`, so a result near 0 keeps its relative accuracy). Weights ``b``
  of both signs make two such sums, :math:`S = S_+ - S_-` (the positive and the negated negative
  weights), each reduced alike. Then a blockwise pass finalises log_softmax or softmax from the
  pair, or logsumexp's value and sign. The reduced axis is never gathered into one chunk.

Blocks may be NumPy arrays (lsm's CPU kernels) or CuPy arrays (its GPU kernels): the block
functions run the in-memory pipeline on the block's backend, and NumPy functions, which
dispatch on the block type.
"""

import math
from functools import partial

import dask.array as da
import numpy as np

from .. import _validate
from .._plan import accumulation_dtype
from ..cpu._streaming import merge_rows
from ._blocks import as_input, axes_in_one_chunk, in_memory, meta, operand, pack, thread_share

# --- the reductions -----------------------------------------------------------------------------
# dask.array.reduction carries one array between its steps, so each partial result travels as a
# complex128 number holding two float64 values, ``m + i log(S e^-m)`` with ``m`` the group's
# maximum: the finalise step of softmax needs ``(x - m) - log(S e^-m)``, and ``m + log(S e^-m)``
# rounded to one float would lose the second term when ``|m|`` is large (for bfloat16's largest
# value, all of it); and a part's term in the merge, ``e^(m_k - m) e^l_k``, keeps the relative
# accuracy that ``e^(l_k + m_k - m)`` of a rounded sum would lose (``eps * |m_k - m|``: all of the
# result's, when it lies near 0). A signed sum would need a third value, its sign: a weighted
# logsumexp reduces its positive and negative parts apart instead.


def _partial_shape(shape, axis):
    """The shape of a chunk's partial result: ``shape`` with the reduced axes kept as 1."""
    return tuple(1 if dim in axis else size for dim, size in enumerate(shape))


def _normaliser_chunk(block, weights=None, *, axis, keepdims):
    """``m + i log(S e^-m)`` of one chunk's part of every group (reduced axes kept).

    ``m`` is the chunk's maximum over included elements (NaN-propagating; -inf when nothing is
    included) and ``S e^-m = sum_j b_j e^(x_j - shift)`` with ``shift`` = ``m`` where finite and 0
    elsewhere, so the kernel's own handling of NaN, inf and empty groups decides the sum.
    ``weights`` is the boolean mask, or weights ``b >= 0`` with the mask already folded in as
    zeros.
    """
    del keepdims  # partial results always keep the reduced axes
    where, b = (weights, None) if weights is None or weights.dtype == np.bool_ else (None, weights)
    included = where if b is None else (b != 0)
    values = block.astype(accumulation_dtype(block.dtype), copy=False)
    if values.size:
        candidates = values if included is None else np.where(included, values, -np.inf)
        top = candidates.max(axis=axis, keepdims=True)
    else:
        top = np.full_like(values, -np.inf, shape=_partial_shape(values.shape, axis))
    shift = np.where(np.isfinite(top), top, 0).astype(values.dtype)
    with thread_share():
        log_sum = in_memory("logsumexp", values).logsumexp(
            values - shift, axis, True, b, False, None, None, where
        )
    return pack(top.astype(np.float64), log_sum.astype(np.float64))


def _weighted_part_chunk(block, weights, *, negative, axis, keepdims):
    """``_normaliser_chunk`` of the sum of the positive weights' terms, or of the negated negative
    weights' (``negative``); a chunk without negative weights skips the kernel for the latter."""
    below = weights < 0
    if negative and not below.any():
        empty = np.full_like(weights, -np.inf, shape=_partial_shape(block.shape, axis), dtype=np.float64)
        return pack(empty, empty)
    if negative:
        weights = np.where(below, -weights, 0)
    elif below.any():  # NaN weights stay here, and make the sum NaN
        weights = np.where(below, 0, weights)
    return _normaliser_chunk(block, weights, axis=axis, keepdims=keepdims)


def _normaliser_merge(partials, axis, keepdims):
    """Merge ``m + i log(S e^-m)`` partials: ``m = max m_k``, ``S e^-m = sum_k e^(m_k - m) e^l_k``.

    NumPy partials merge as ``lsm.streaming`` merges states (``lsm.cpu._streaming.merge_rows``),
    which keeps each part's term a product, ``e^(m_k - m) e^l_k``, and so the relative accuracy
    of a result near 0. CuPy partials merge on the device through the in-memory logsumexp of
    ``l_k + (m_k - m)``: each sum rounded to one float, a part's term loses up to
    ``|m_k - m|`` ulps, which costs a result near 0 up to ``eps * |log q|`` of its own. In both,
    ``m_k - m`` is taken as 0 where ``m_k == m``, so parts whose maximum is +inf or -inf (nothing
    included) merge without forming ``inf - inf``.
    """
    tops, log_sums = partials.real, partials.imag
    if isinstance(partials, np.ndarray):
        return _merge_on_the_host(tops, log_sums, axis, keepdims)
    top = tops.max(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore"):  # inf - inf, discarded by the where
        offset = np.where(tops == top, 0, tops - top)
    log_sum = in_memory("logsumexp", partials).logsumexp(
        log_sums + offset, axis, keepdims, None, False, None, None, None
    )
    return pack(top if keepdims else top.squeeze(axis=axis), log_sum)


def _merge_on_the_host(tops, log_sums, axis, keepdims):
    """``_normaliser_merge`` of NumPy partials: each group's parts (along ``axis``) folded by
    ``merge_rows``, in the C order of the axes."""
    axis = tuple(axis)
    kept_shape = tuple(size for dim, size in enumerate(tops.shape) if dim not in axis)
    moved = tuple(range(len(kept_shape), tops.ndim))
    shape = (math.prod(kept_shape), math.prod(tops.shape[dim] for dim in axis))

    def rows(values):
        return np.ascontiguousarray(np.moveaxis(values, axis, moved)).reshape(shape)

    top, log_sum = merge_rows(rows(tops), rows(log_sums))
    top, log_sum = top.reshape(kept_shape), log_sum.reshape(kept_shape)
    if keepdims:
        top, log_sum = np.expand_dims(top, axis), np.expand_dims(log_sum, axis)
    return pack(top, log_sum)


def _reduce(x, axes, keepdims, weights, chunk, merge):
    return da.reduction(
        x,
        chunk=chunk,
        combine=merge,
        aggregate=merge,
        axis=axes,
        keepdims=keepdims,
        dtype=np.complex128,
        weights=weights,
        meta=meta(x, np.complex128, x.ndim if keepdims else x.ndim - len(axes)),
    )


# --- softmax and log_softmax ------------------------------------------------------------------
# Block functions take ``op`` and ``result_dtype``: map_blocks keeps ``func``, ``name`` and
# ``dtype`` for itself.


def _softmax_block(block, where, *, op, axes, result_dtype):
    with thread_share():
        return in_memory(op, block).softmax(op, block, axes, result_dtype, None, where, op == "log_softmax")


def _finalise_block(block, packed, where, *, log, result_dtype):
    """log_softmax or softmax of one block from its groups' ``m + i log(S e^-m)``.

    ``(x - m) - log(S e^-m)`` is formed in the accumulation type, as the in-memory kernels do:
    ``m`` is one of the block's values, so ``x - m`` is exact near the maximum, and the second
    term lies in [0, log n]. A group whose maximum is not finite (NaN or +inf inside it, or
    nothing above -inf) gives NaN at its included positions, as in memory.
    """
    accumulation = accumulation_dtype(result_dtype)
    top, log_sum = packed.real, packed.imag
    valid = np.isfinite(top) & np.isfinite(log_sum)
    value = block.astype(accumulation, copy=False) - np.where(valid, top, np.nan).astype(accumulation)
    value -= log_sum.astype(accumulation)
    if not log:
        np.exp(value, out=value)
    if where is not None:
        value = np.where(where, value, -np.inf if log else 0.0)
    return value.astype(result_dtype, copy=False)


def softmax(func, x, axis, dtype, out, where, log):
    """``log_softmax`` or ``softmax`` (``func``) of a Dask array: see the module docstring."""
    _validate.lazy_out(func, "out", out)
    x = as_input(func, x)
    result_dtype = _validate.result_dtype(func, x.dtype, dtype)
    axes = _validate.axes(axis, x.ndim)
    where = operand(func, where, x, "where")
    result_meta = meta(x, result_dtype, x.ndim)
    if axes_in_one_chunk(x, axes):
        return da.map_blocks(
            _softmax_block, x, where, op=func, axes=axes, result_dtype=result_dtype, meta=result_meta
        )
    x = x.astype(result_dtype)  # rounded once, as the in-memory pipeline converts its input
    packed = _reduce(x, axes, True, where, _normaliser_chunk, _normaliser_merge)
    return da.map_blocks(
        _finalise_block, x, packed, where, log=log, result_dtype=result_dtype, meta=result_meta
    )


# --- logsumexp --------------------------------------------------------------------------------


def _logsumexp_block(block, where, b, *, axes, keepdims, result_dtype):
    with thread_share():
        value, sign = in_memory("logsumexp", block).logsumexp(
            block, axes, keepdims, b, True, result_dtype, None, where
        )
    return pack(value.astype(np.float64), sign.astype(np.float64))


def _finalise_logsumexp(packed):
    """``log S + i sign(S)`` of merged ``m + i log(S e^-m)`` partials of a sum of positive terms,
    as ``lsm.streaming.finalise`` gives ``log S`` (``m + log(S e^-m)``, or ``log S`` itself where
    ``m`` is not finite); the sign is 1, 0 for an empty sum (``-inf``) and NaN for a NaN sum, as
    in memory."""
    top, log_sum = packed.real, packed.imag
    value = np.where(np.isfinite(top), top, 0.0) + log_sum
    sign = np.where(np.isnan(value), np.nan, np.where(value == -np.inf, 0.0, 1.0))
    return pack(value, sign)


def _finalise_signed_logsumexp(positive, negative):
    """``log|S| + i sign(S)`` of ``S = S+ - S-`` from the merged partials of its two parts.

    With :math:`m` the larger of the parts' maxima (0 standing for one that is not finite), the
    part on top (:math:`t`, the larger sum on a tie) and the other (:math:`o`),

    .. math::

        S e^{-m} = \\pm (1 + r), \\quad
        r = \\operatorname{expm1}(\\ell_t) - e^{m_o - m} e^{\\ell_o},

    so ``log|S| = m + log1p(r)`` keeps the relative accuracy of a result near 0 as the unweighted
    merge does, with the sign of ``S+ - S-`` flipped where ``r < -1``. A sum whose negative (or
    positive) part is empty is finalised as a sum of positive terms alone; infinities and NaN
    propagate through ``r`` as through the in-memory linear sum (``inf - inf`` is NaN).
    """
    top_positive, top_negative = positive.real, negative.real
    log_positive, log_negative = positive.imag, negative.imag
    shift_positive = np.where(np.isfinite(top_positive), top_positive, 0.0)
    shift_negative = np.where(np.isfinite(top_negative), top_negative, 0.0)
    positive_on_top = (shift_positive > shift_negative) | (
        (shift_positive == shift_negative) & (log_positive >= log_negative)
    )
    shift = np.maximum(shift_positive, shift_negative)
    log_top = np.where(positive_on_top, log_positive, log_negative)
    log_other = np.where(positive_on_top, log_negative, log_positive)
    offset = np.where(positive_on_top, shift_negative, shift_positive) - shift
    sign_top = np.where(positive_on_top, 1.0, -1.0)
    with np.errstate(all="ignore"):  # inf - inf, and the logarithm each branch discards
        rest = np.expm1(log_top) - np.exp(offset) * np.exp(log_other)
        value = shift + np.where(rest >= -1, np.log1p(rest), np.log(-1 - rest))
    sign = np.where(rest > -1, sign_top, np.where(rest < -1, -sign_top, np.where(rest == -1, 0.0, np.nan)))
    # equal parts cancel exactly, as the linear sum in memory does
    cancel = (shift_positive == shift_negative) & (log_positive == log_negative) & np.isfinite(log_positive)
    value, sign = np.where(cancel, -np.inf, value), np.where(cancel, 0.0, sign)
    # a part that is empty (-inf) leaves the other's sum of positive terms
    only_positive = log_negative == -np.inf
    only_negative = (log_positive == -np.inf) & ~only_positive
    positive, negative = _finalise_logsumexp(positive), _finalise_logsumexp(negative)
    value = np.where(only_positive, positive.real, np.where(only_negative, negative.real, value))
    sign = np.where(only_positive, positive.imag, np.where(only_negative, -negative.imag, sign))
    return pack(value, sign)


def _weights(where, b):
    """One weights array for the reduction: the mask alone, ``b`` alone, or ``b`` masked
    (an element of weight 0 is ignored entirely, exactly as a masked one)."""
    if b is None:
        return where
    return b if where is None else da.where(where, b, 0)


def logsumexp(x, axis, keepdims, b, return_sign, dtype, out, where):
    """``logsumexp`` of a Dask array: see the module docstring and :func:`lsm.logsumexp`."""
    _validate.lazy_out("logsumexp", "out", out)
    x = as_input("logsumexp", x)
    result_dtype = _validate.result_dtype("logsumexp", x.dtype, dtype)
    axes = _validate.axes(axis, x.ndim)
    if x.ndim == 0:  # lsm treats a 0-d input as one element; its result stays 0-d
        x, axes, keepdims = x.reshape(1), (0,), False
    where = operand("logsumexp", where, x, "where")
    b = operand("logsumexp", b, x, "b", dtype=accumulation_dtype(result_dtype))
    if axes_in_one_chunk(x, axes):
        packed = da.map_blocks(
            _logsumexp_block,
            x,
            where,
            b,
            axes=axes,
            keepdims=keepdims,
            result_dtype=result_dtype,
            drop_axis=() if keepdims else axes,
            chunks=tuple((1,) * len(chunks) if dim in axes else chunks for dim, chunks in enumerate(x.chunks))
            if keepdims
            else None,
            meta=meta(x, np.complex128, x.ndim if keepdims else x.ndim - len(axes)),
        )
    elif b is None:  # a sum of positive terms: the partials and merge of softmax's reduction
        packed = _reduce(x.astype(result_dtype), axes, keepdims, where, _normaliser_chunk, _normaliser_merge)
        packed = packed.map_blocks(_finalise_logsumexp, meta=packed._meta)
    else:  # S = S+ - S-, two sums of positive terms
        x, weights = x.astype(result_dtype), _weights(where, b)
        parts = (partial(_weighted_part_chunk, negative=negative) for negative in (False, True))
        positive, negative = (_reduce(x, axes, keepdims, weights, part, _normaliser_merge) for part in parts)
        packed = da.map_blocks(_finalise_signed_logsumexp, positive, negative, meta=positive._meta)
    value, sign = da.real(packed), da.imag(packed)
    if not return_sign:  # a negative sum has no real logarithm: NaN, as in memory
        value = da.where(sign < 0, np.nan, value)
    value = value.astype(result_dtype)
    return (value, sign.astype(result_dtype)) if return_sign else value
