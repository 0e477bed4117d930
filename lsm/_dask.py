"""Dask arrays: the public functions as lazy task graphs over lsm's in-memory calls.

Imported only when a call receives a Dask array, so ``import lsm`` never imports Dask.

Two kinds of graph, chosen by the chunking of the reduced axes:

* **each reduced axis lies in one chunk**: every block is an independent in-memory lsm call
  (``map_blocks``), one task per block and nothing else;
* **a reduced axis is split across chunks**: a tree reduction (``dask.array.reduction``) first
  computes, for every group, :math:`S = \\sum_j b_j e^{x_j}` as the pair
  :math:`(\\log|S|, \\operatorname{sign} S)` in float64 from per-chunk partial results, merging
  partials :math:`(L_a, s_a), (L_b, s_b)` as a weighted logsumexp (which is the merge
  :math:`m = \\max(m_a, m_b),\\ S = S_a e^{m_a - m} + S_b e^{m_b - m}` with every special case of
  the numerical contract already handled); then a blockwise pass finalises log_softmax or
  softmax from :math:`\\log S`. The reduced axis is never gathered into one chunk.

Blocks may be NumPy arrays (lsm's CPU kernels) or CuPy arrays (its GPU kernels): the block
functions call the public lsm functions and NumPy functions, which dispatch on the block type.

Threads: a block task runs lsm's parallel CPU kernels on its share of Numba's threads, Numba's
thread count divided by the number of lsm block tasks running at that moment in the process
(``numba.set_num_threads`` is per calling thread). One task alone uses every thread; the
threaded scheduler's concurrent tasks split them instead of oversubscribing the cores.
"""

import contextlib
import threading

import dask.array as da
import numba
import numpy as np

from . import _api, _plan

# --- threads ----------------------------------------------------------------------------------


class _ThreadShare:
    """Count the block tasks running in this process and give each its share of Numba's threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._active = 0

    @contextlib.contextmanager
    def __call__(self):
        with self._lock:
            self._active += 1
            share = max(1, numba.config.NUMBA_NUM_THREADS // self._active)
        previous = numba.get_num_threads()
        numba.set_num_threads(share)
        try:
            yield
        finally:
            numba.set_num_threads(previous)
            with self._lock:
                self._active -= 1


_thread_share = _ThreadShare()


# --- arguments --------------------------------------------------------------------------------


def reject(func, name, value):
    """TypeError for an output argument (``out``, ``grad_out``) given with Dask arrays."""
    if value is not None:
        raise TypeError(
            f"{func}: {name}= is not supported for Dask arrays (results are lazy); "
            "store the result with dask.array.store or compute it"
        )


def _operand(func, operand, x, name, dtype=None):
    """``where`` or ``b`` as a Dask array broadcast to ``x`` and chunked like it."""
    if operand is None:
        return None
    operand = da.asarray(operand, dtype=dtype)
    if name == "where" and operand.dtype != np.bool_:
        raise TypeError(f"{func}: 'where' must be a boolean array, got dtype {operand.dtype.name}")
    try:
        operand = da.broadcast_to(operand, x.shape)
    except ValueError as error:
        raise _plan.broadcast_error(func, name, operand.shape, x.shape) from error
    return operand.rechunk(x.chunks)


def _input(func, x):
    x = da.asarray(x)
    _plan.check_input_dtype(func, x.dtype, "x")
    return x


def _axes_in_one_chunk(x, axes):
    return all(x.numblocks[axis] == 1 for axis in axes if axis < x.ndim)


def _meta(x, dtype, ndim):
    """A block of the input's array type (NumPy or CuPy) with the given dtype and ndim, empty
    unless 0-d."""
    return np.empty_like(x._meta, dtype=dtype, shape=(0,) * ndim)


# --- the reductions -----------------------------------------------------------------------------
# dask.array.reduction carries one array between its steps, so each partial result travels as a
# complex128 number holding two float64 values:
#
# * for logsumexp, ``log|S| + i sign(S)`` (float64 keeps log|S| as accurately as a float64
#   kernel would; the result is then rounded to the result dtype);
# * for softmax and log_softmax, ``m + i log(S e^-m)`` with ``m`` the group's maximum: the
#   finalise step needs ``(x - m) - log(S e^-m)``, and ``m + log(S e^-m)`` rounded to one float
#   would lose the second term when ``|m|`` is large (for bfloat16's largest value, all of it).


def _pack(real, imag):
    packed = np.empty_like(real, dtype=np.complex128)  # NumPy or CuPy, like the block
    packed.real = real
    packed.imag = imag
    return packed


def _chunk_sums(block, weights, axis):
    """``(m, shift, log|sum|, sign)`` of one chunk's part of every group (reduced axes kept).

    ``m`` is the chunk's maximum over included elements (NaN-propagating; -inf when nothing is
    included), ``shift`` is ``m`` where finite and 0 elsewhere, and ``sum = sum_j b_j e^(x_j -
    shift)``, so the kernel's own handling of NaN, inf and empty groups decides the sum. ``weights`` is the
    boolean mask, or ``b`` with the mask already folded in as zeros.
    """
    where, b = (weights, None) if weights is None or weights.dtype == np.bool_ else (None, weights)
    included = where if b is None else (b != 0)
    values = block.astype(_plan.accumulation_dtype(block.dtype), copy=False)
    if values.size:
        candidates = values if included is None else np.where(included, values, -np.inf)
        top = candidates.max(axis=axis, keepdims=True)
    else:
        kept = tuple(1 if dim in axis else size for dim, size in enumerate(values.shape))
        top = np.full_like(values, -np.inf, shape=kept)
    shift = np.where(np.isfinite(top), top, 0).astype(values.dtype)
    with _thread_share():
        log_sum, sign = _api.logsumexp(
            values - shift, axis=axis, keepdims=True, where=where, b=b, return_sign=True
        )
    return top.astype(np.float64), shift.astype(np.float64), log_sum.astype(np.float64), sign


def _logsumexp_chunk(block, weights=None, *, axis, keepdims):
    del keepdims  # partial results always keep the reduced axes
    _, shift, log_sum, sign = _chunk_sums(block, weights, axis)
    return _pack(shift + log_sum, sign)


def _logsumexp_merge(partials, axis, keepdims):
    """Merge ``log|S| + i sign(S)`` partials along ``axis``: a logsumexp weighted by the signs."""
    log_sum, sign = _api.logsumexp(
        partials.real, axis=axis, keepdims=keepdims, b=partials.imag, return_sign=True
    )
    return _pack(log_sum, sign)


def _normaliser_chunk(block, where=None, *, axis, keepdims):
    del keepdims
    top, _, log_sum, _ = _chunk_sums(block, where, axis)
    return _pack(top, log_sum)


def _normaliser_merge(partials, axis, keepdims):
    """Merge ``m + i log(S e^-m)`` partials: ``m = max m_k``, ``S e^-m = sum_k e^(l_k + m_k - m)``.

    ``m_k - m`` is taken as 0 where ``m_k == m``, so parts whose maximum is +inf or -inf (nothing
    included) merge without forming ``inf - inf``.
    """
    tops, log_sums = partials.real, partials.imag
    top = tops.max(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore"):  # inf - inf, discarded by the where
        offset = np.where(tops == top, 0, tops - top)
    log_sum = _api.logsumexp(log_sums + offset, axis=axis, keepdims=keepdims)
    return _pack(top if keepdims else top.squeeze(axis=axis), log_sum)


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
        meta=_meta(x, np.complex128, x.ndim if keepdims else x.ndim - len(axes)),
    )


# --- softmax and log_softmax ------------------------------------------------------------------
# Block functions take ``op`` and ``result_dtype``: map_blocks keeps ``func``, ``name`` and
# ``dtype`` for itself.


def _softmax_block(block, where, *, op, axes, result_dtype):
    with _thread_share():
        return getattr(_api, op)(block, axis=axes, dtype=result_dtype, where=where)


def _finalise_block(block, packed, where, *, log, result_dtype):
    """log_softmax or softmax of one block from its groups' ``m + i log(S e^-m)``.

    ``(x - m) - log(S e^-m)`` is formed in the accumulation type, as the in-memory kernels do:
    ``m`` is one of the block's values, so ``x - m`` is exact near the maximum, and the second
    term lies in [0, log n]. A group whose maximum is not finite (NaN or +inf inside it, or
    nothing above -inf) gives NaN at its included positions, as in memory.
    """
    accumulation = _plan.accumulation_dtype(result_dtype)
    top, log_sum = packed.real, packed.imag
    valid = np.isfinite(top) & np.isfinite(log_sum)
    value = block.astype(accumulation, copy=False) - np.where(valid, top, np.nan).astype(accumulation)
    value -= log_sum.astype(accumulation)
    if not log:
        np.exp(value, out=value)
    if where is not None:
        value = np.where(where, value, -np.inf if log else 0.0)
    return value.astype(result_dtype, copy=False)


def softmax_family(func, x, axis, dtype, out, where, log):
    """``log_softmax`` or ``softmax`` (``func``) of a Dask array: see the module docstring."""
    reject(func, "out", out)
    x = _input(func, x)
    result_dtype = _plan.result_dtype(x.dtype, dtype, func)
    axes = _plan.normalize_axes(axis, x.ndim)
    where = _operand(func, where, x, "where")
    meta = _meta(x, result_dtype, x.ndim)
    if _axes_in_one_chunk(x, axes):
        return da.map_blocks(
            _softmax_block, x, where, op=func, axes=axes, result_dtype=result_dtype, meta=meta
        )
    packed = _reduce(x.astype(result_dtype), axes, True, where, _normaliser_chunk, _normaliser_merge)
    return da.map_blocks(_finalise_block, x, packed, where, log=log, result_dtype=result_dtype, meta=meta)


# --- logsumexp --------------------------------------------------------------------------------


def _logsumexp_block(block, where, b, *, axes, keepdims, result_dtype):
    with _thread_share():
        value, sign = _api.logsumexp(
            block, axis=axes, keepdims=keepdims, dtype=result_dtype, where=where, b=b, return_sign=True
        )
    return _pack(value.astype(np.float64), sign.astype(np.float64))


def _weights(where, b):
    """One weights array for the reduction: the mask alone, ``b`` alone, or ``b`` masked
    (an element of weight 0 is ignored entirely, exactly as a masked one)."""
    if b is None:
        return where
    return b if where is None else da.where(where, b, 0)


def logsumexp(x, axis, keepdims, b, return_sign, dtype, out, where):
    """``logsumexp`` of a Dask array: see the module docstring and :func:`lsm.logsumexp`."""
    reject("logsumexp", "out", out)
    x = _input("logsumexp", x)
    result_dtype = _plan.result_dtype(x.dtype, dtype, "logsumexp")
    axes = _plan.normalize_axes(axis, x.ndim)
    if x.ndim == 0:  # lsm treats a 0-d input as one element; its result stays 0-d
        x, axes, keepdims = x.reshape(1), (0,), False
    where = _operand("logsumexp", where, x, "where")
    b = _operand("logsumexp", b, x, "b", dtype=_plan.accumulation_dtype(result_dtype))
    if _axes_in_one_chunk(x, axes):
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
            meta=_meta(x, np.complex128, x.ndim if keepdims else x.ndim - len(axes)),
        )
    else:
        weights = _weights(where, b)
        packed = _reduce(x.astype(result_dtype), axes, keepdims, weights, _logsumexp_chunk, _logsumexp_merge)
    value, sign = da.real(packed), da.imag(packed)
    if not return_sign:  # a negative sum has no real logarithm: NaN, as in memory
        value = da.where(sign < 0, np.nan, value)
    value = value.astype(result_dtype)
    return (value, sign.astype(result_dtype)) if return_sign else value
