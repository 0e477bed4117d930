"""Long double references for the gradients and losses, and the tolerance they are held to.

Like ``reference.py``, every reference takes its inputs as the kernels see them (already in the
computation dtype) and works in ``np.longdouble``, straight from the definitions:

- ``log_softmax_backward``: ``dx = g - exp(y) * sum(g)``; ``softmax_backward``: ``dx = y (g - sum(g y))``,
  with ``where``-excluded elements left out of the sums and given 0;
- ``cross_entropy``: ``loss_i = -sum_c q_c log softmax(x_i)_c`` with torch's coefficients ``q``
  (see ``lsm/cpu/_losses.py``), ``dloss_i/dx_c = p_c Q - q_c``, reduced and scaled as torch does;
- ``nll_loss``: ``-w[t] logp[t]``.

Gradients can cancel (``g_j`` against ``p_j sum g``), so they are compared under an error bound
scaled by the size of the terms that meet (:func:`assert_scaled_close`), not by the result.
"""

import numpy as np
from reference import BFLOAT16, LONG, _finfo, ref_log_softmax, to_long, ulp


def _moved(array, axis):
    return np.moveaxis(array, axis, -1)


def ref_backward(grad, y, axis=-1, where=None, log=True):
    """``(dx, scale)``: the reference gradient and the size of its terms, elementwise."""
    g, v = to_long(grad), to_long(y)
    mask = np.ones(v.shape, dtype=bool) if where is None else np.broadcast_to(where, v.shape)
    axes = tuple(range(v.ndim)) if axis is None else axis
    if v.ndim == 0:
        g, v, mask, axes = g.reshape(1), v.reshape(1), mask.reshape(1), -1
    g_in = np.where(mask, g, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        if log:
            p = np.exp(v)
            total = g_in.sum(axis=axes, keepdims=True)
            dx = g - p * total
            scale = np.abs(g) + p * np.abs(g_in).sum(axis=axes, keepdims=True)
        else:
            total = (g_in * np.where(mask, v, 0)).sum(axis=axes, keepdims=True)
            dx = v * (g - total)
            scale = np.abs(v) * (np.abs(g) + np.abs(g_in * v).sum(axis=axes, keepdims=True))
    dx, scale = np.where(mask, dx, 0), np.where(mask, scale, 0)
    return dx.reshape(np.shape(y)), scale.reshape(np.shape(y))


def coefficients(logits, target, axis, weight, ignore_index, label_smoothing):
    """``(q, counted, item_weight)`` with the class axis last: torch's per-class coefficients,
    which items count (not ignored), and each item's weight in a mean."""
    x = _moved(to_long(logits), axis)
    n_classes = x.shape[-1]
    w = np.ones(n_classes, dtype=LONG) if weight is None else to_long(weight)
    eps = LONG(label_smoothing)
    target = np.asarray(target)
    if target.dtype.kind in "iu":
        counted = target != ignore_index
        safe = np.where(counted, target, 0)
        one_hot = np.arange(n_classes) == safe[..., None]
        q = (1 - eps) * np.where(one_hot, w[safe][..., None], 0) + eps / n_classes * w
        q = np.where(counted[..., None], q, 0)
        item_weight = np.where(counted, w[safe], 0)
    else:
        r = _moved(to_long(target), axis)
        q = w * ((1 - eps) * r + eps / n_classes)
        counted = np.ones(x.shape[:-1], dtype=bool)
        item_weight = np.ones(x.shape[:-1], dtype=LONG)
    return q, counted, item_weight


def ref_cross_entropy(
    logits, target, axis=-1, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0
):
    """``(loss, dlogits, grad_scale)`` in long double; ``grad_scale`` bounds the gradient's terms."""
    x = to_long(logits)
    logp = _moved(ref_log_softmax(x, axis=axis), axis)
    q, counted, item_weight = coefficients(x, target, axis, weight, ignore_index, label_smoothing)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        terms = np.where(q == 0, 0, q * logp)
        loss = -terms.sum(axis=-1)
        loss = np.where(counted, loss, 0)
        big_q = q.sum(axis=-1, keepdims=True)
        p = np.exp(logp)
        grad = np.where(counted[..., None], p * big_q - q, 0)
        grad_scale = np.where(counted[..., None], p * big_q + q, 0)
        if reduction == "mean":
            denominator = item_weight.sum()
            loss = loss.sum() / denominator
            factor = 1 / denominator if denominator else LONG(np.inf)
            grad = np.where(counted[..., None], grad * factor, 0)
            grad_scale = np.where(counted[..., None], grad_scale * factor, 0)
        elif reduction == "sum":
            loss = loss.sum()
    return loss, np.moveaxis(grad, -1, axis), np.moveaxis(grad_scale, -1, axis)


def ref_nll_loss(logp, target, axis=-1, weight=None, ignore_index=-100, reduction="mean"):
    """Reference nll_loss in long double."""
    lp = _moved(to_long(logp), axis)
    n_classes = lp.shape[-1]
    w = np.ones(n_classes, dtype=LONG) if weight is None else to_long(weight)
    target = np.asarray(target)
    counted = target != ignore_index
    safe = np.where(counted, target, 0)
    picked = np.take_along_axis(lp, safe[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        loss = np.where(counted & (w[safe] != 0), -w[safe] * picked, 0)
        if reduction == "mean":
            return loss.sum() / np.where(counted, w[safe], 0).sum()
    return loss.sum() if reduction == "sum" else loss


def accumulation_eps(dtype):
    """Machine epsilon of the type the kernels accumulate ``dtype`` in (float32 for 16-bit types)."""
    dtype = np.dtype(dtype)
    return LONG(np.finfo(np.float64 if dtype == np.float64 else np.float32).eps)


def assert_scaled_close(actual, reference, scale, dtype, ulps=16, what=""):
    """Assert ``actual`` (dtype ``dtype``) matches ``reference`` within
    ``ulps * eps_acc * scale`` plus, for 16-bit results, one unit in the last place of the result.

    NaN must sit where the reference is NaN; infinities must match exactly.
    """
    dtype = np.dtype(dtype)
    prefix = f"{what}: " if what else ""
    assert isinstance(actual, (np.ndarray, np.generic)), f"{prefix}got {type(actual)}"
    assert actual.dtype == dtype, f"{prefix}dtype {actual.dtype}, expected {dtype}"
    reference = np.asarray(reference, dtype=LONG)
    assert np.shape(actual) == reference.shape, f"{prefix}shape {np.shape(actual)} != {reference.shape}"
    got = to_long(actual)
    nan_got, nan_want = np.isnan(got), np.isnan(reference)
    assert np.array_equal(nan_got, nan_want), (
        f"{prefix}NaN mismatch at {np.argwhere(nan_got ^ nan_want)[:5].tolist()}: "
        f"got {got[nan_got ^ nan_want][:5]}, reference {reference[nan_got ^ nan_want][:5]}"
    )
    finite = np.isfinite(reference)
    assert np.array_equal(got[~finite & ~nan_want], reference[~finite & ~nan_want]), f"{prefix}infinities"
    allowed = ulps * accumulation_eps(dtype) * np.broadcast_to(to_long(scale), reference.shape)[finite]
    if dtype in (np.float16, BFLOAT16):
        allowed = allowed + ulp(reference[finite], dtype)
    else:
        allowed = allowed + _finfo(dtype).smallest_subnormal
    error = np.abs(got[finite] - reference[finite])
    bad = error > allowed
    assert not bad.any(), (
        f"{prefix}{bad.sum()} of {bad.size} values out of tolerance; got {got[finite][bad][:5]}, "
        f"reference {reference[finite][bad][:5]}, error {error[bad][:5]}, allowed {allowed[bad][:5]}"
    )


def assert_loss_close(actual, reference, dtype, what=""):
    """Losses are sums of non-negative terms (no cancellation): relative tolerance of the result."""
    reference = np.asarray(reference, dtype=LONG)
    assert_scaled_close(actual, reference, 1 + np.abs(np.nan_to_num(reference)), dtype, what=what)
