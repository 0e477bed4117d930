"""Slow, obviously-correct references for all seven public functions, and the tolerances they are
held to.

Every reference works group by group in ``np.longdouble`` (80-bit extended precision on x86) and
implements the numerical contract (``docs/architecture.md`` and the public docstrings) literally,
one case after the other, without any of the tricks the kernels use. The references take the
input *as the kernel sees it*: callers convert ``x`` to the result dtype first
(``x.astype(result_dtype)``), so that the rounding of an integer or a ``dtype=`` conversion is not
counted as an error of the kernel.

The results are ``np.longdouble`` arrays (0-d for a 0-d result), never rounded: :func:`assert_close`
compares an lsm result with them under the tolerance of the result dtype.

The gradients and losses come straight from their definitions:

- ``log_softmax_backward``: ``dx = g - exp(y) * sum(g)``; ``softmax_backward``: ``dx = y (g - sum(g y))``,
  with ``where``-excluded elements left out of the sums and given 0;
- ``cross_entropy``: ``loss_i = -sum_c q_c log softmax(x_i)_c`` with torch's coefficients ``q``
  (see ``lsm/cpu/_losses.py``), ``dloss_i/dx_c = p_c Q - q_c``, reduced and scaled as torch does;
- ``nll_loss``: ``-w[t] logp[t]``.

Gradients can cancel (``g_j`` against ``p_j sum g``), so they are compared under an error bound
scaled by the size of the terms that meet (:func:`assert_scaled_close`), not by the result.
"""

import math

import ml_dtypes
import numpy as np

LONG = np.longdouble
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


# --- helpers ------------------------------------------------------------------------------------


def to_long(x):
    """``x`` as an ``np.longdouble`` array (bfloat16 goes through float32, exactly)."""
    x = np.asarray(x)
    with np.errstate(invalid="ignore"):  # NaN bfloat16 -> float32 -> long double warns spuriously
        if x.dtype == BFLOAT16:
            x = x.astype(np.float32)
        return x.astype(LONG)


def _axes(axis, ndim):
    """Sorted tuple of reduced axes; a 0-d array counts as one axis (so -1 and 0 are valid)."""
    ndim = max(ndim, 1)
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    normalized = sorted(int(a) % ndim for a in axes)
    assert all(-ndim <= a < ndim for a in axes), f"axis {axis} out of range for ndim {ndim}"
    assert len(set(normalized)) == len(normalized), f"duplicate axis in {axis}"
    return tuple(normalized)


def _groups(array, axes):
    """``array`` with the ``axes`` moved last and flattened: ``(number of groups, group size)``."""
    moved = np.moveaxis(array, axes, tuple(range(-len(axes), 0)))
    kept_shape = moved.shape[: moved.ndim - len(axes)]
    group_size = math.prod(moved.shape[moved.ndim - len(axes) :])
    return moved.reshape(math.prod(kept_shape), group_size), moved.shape, kept_shape


def _ungroup(flat, moved_shape, axes):
    """Inverse of :func:`_groups` for a result of the input's shape."""
    return np.moveaxis(flat.reshape(moved_shape), tuple(range(-len(axes), 0)), axes)


def _prepare(x, axis, where):
    x = to_long(x)
    shape = x.shape
    work = x.reshape(shape if shape else (1,))
    axes = _axes(axis, x.ndim)
    mask = np.ones(work.shape, dtype=bool) if where is None else np.broadcast_to(where, shape)
    return work, mask.reshape(work.shape), axes, shape


def _log_abs_sum(shifted, weights):
    """``(log|S|, sign(S))`` of ``S = sum w_j exp(shifted_j)`` where ``max(shifted) == 0``.

    The maximal term is exactly ``w_k``, so ``S = w_k + rest``. For ``|S|`` close to 1 the
    logarithm is taken as ``log1p(|S| - 1)`` with ``|S| - 1 = (±w_k - 1) ± rest``: a tiny ``log S`` keeps its
    relative accuracy, as it must for bfloat16 results near 0 (``log_softmax`` of a dominant
    element is ``-log1p(rest)``, about ``-rest``).
    """
    k = np.argmax(shifted)
    rest = np.sum(np.delete(weights * np.exp(shifted), k))
    total = weights[k] + rest
    if np.isnan(total):  # infinite weights of both signs
        return LONG(np.nan), LONG(np.nan)
    if total == 0:
        return LONG(-np.inf), LONG(0)
    sign = LONG(1) if total > 0 else LONG(-1)
    if 0.5 < abs(total) < 2:  # log|total| = log1p(|total| - 1), formed without rounding to 1
        return np.log1p((sign * weights[k] - 1) + sign * rest), sign
    return np.log(abs(total)), sign


# --- log_softmax / softmax ----------------------------------------------------------------------


def _softmax_group(values, mask, log):
    """(log_)softmax of one group; ``mask`` False marks excluded elements."""
    excluded = -np.inf if log else 0.0
    out = np.full(values.shape, excluded, dtype=LONG)
    included = values[mask]
    if included.size == 0:  # empty or fully masked: nothing to normalise, never NaN
        return out
    if np.isnan(included).any() or np.isposinf(included).any() or np.isneginf(included).all():
        out[mask] = np.nan
        return out
    shifted = included - included.max()  # subtract the maximum first: no cancellation with it
    log_total, _ = _log_abs_sum(shifted, np.ones_like(shifted))
    out[mask] = (shifted - log_total) if log else np.exp(shifted - log_total)
    return out


def _softmax_family(x, axis, where, log):
    work, mask, axes, shape = _prepare(x, axis, where)
    flat_x, moved_shape, _ = _groups(work, axes)
    flat_mask, _, _ = _groups(mask, axes)
    flat_out = np.empty(flat_x.shape, dtype=LONG)
    for g in range(flat_x.shape[0]):
        flat_out[g] = _softmax_group(flat_x[g], flat_mask[g], log)
    return _ungroup(flat_out, moved_shape, axes).reshape(shape)


def ref_log_softmax(x, axis=-1, where=None):
    """Reference log_softmax in long double (see the module docstring)."""
    return _softmax_family(x, axis, where, log=True)


def ref_softmax(x, axis=-1, where=None):
    """Reference softmax in long double (see the module docstring)."""
    return _softmax_family(x, axis, where, log=False)


# --- logsumexp ----------------------------------------------------------------------------------


def _logsumexp_group(values, weights, mask):
    """``(log|S|, sign(S))`` for ``S = sum b_j exp(x_j)`` over the included, nonzero-weight elements."""
    keep = mask & (weights != 0)
    x, b = values[keep], weights[keep]
    if x.size == 0:
        return LONG(-np.inf), LONG(0)
    if np.isnan(x).any() or np.isnan(b).any():
        return LONG(np.nan), LONG(np.nan)
    at_inf = np.isposinf(x)
    if at_inf.any():
        weight_at_inf = b[at_inf].sum()
        if weight_at_inf == 0:
            return LONG(np.nan), LONG(np.nan)
        return LONG(np.inf), LONG(np.sign(weight_at_inf))
    if np.isneginf(x).all():
        return LONG(-np.inf), LONG(0)
    m = x.max()
    log_total, sign = _log_abs_sum(x - m, b)
    return m + log_total, sign


def ref_logsumexp(x, axis=None, keepdims=False, b=None, return_sign=False, where=None):
    """Reference logsumexp in long double (scipy semantics for ``b``, jax semantics for ``where``).

    Without ``return_sign`` a negative sum has no logarithm and gives NaN. The sign is +1 or -1,
    0 for an empty or zero sum and NaN where the result is NaN.
    """
    work, mask, axes, shape = _prepare(x, axis, where)
    weights = np.ones(work.shape, dtype=LONG) if b is None else np.broadcast_to(to_long(b), shape)
    weights = weights.reshape(work.shape)
    flat_x, _, kept_shape = _groups(work, axes)
    flat_b, _, _ = _groups(weights, axes)
    flat_mask, _, _ = _groups(mask, axes)
    value = np.empty(flat_x.shape[0], dtype=LONG)
    sign = np.empty(flat_x.shape[0], dtype=LONG)
    for g in range(flat_x.shape[0]):
        value[g], sign[g] = _logsumexp_group(flat_x[g], flat_b[g], flat_mask[g])
    if not return_sign:
        value[sign < 0] = np.nan
    if not shape:  # a 0-d input reduces to a 0-d result, with or without keepdims
        result_shape = ()
    elif keepdims:
        result_shape = tuple(1 if a in axes else n for a, n in enumerate(work.shape))
    else:
        result_shape = kept_shape
    value, sign = value.reshape(result_shape), sign.reshape(result_shape)
    return (value, sign) if return_sign else value


# --- tolerance ----------------------------------------------------------------------------------


def _finfo(dtype):
    dtype = np.dtype(dtype)
    return ml_dtypes.finfo(dtype) if dtype == BFLOAT16 else np.finfo(dtype)


def ulp(values, dtype):
    """The spacing of the floating format ``dtype`` at each of ``values`` (subnormals included)."""
    info = _finfo(dtype)
    magnitude = np.abs(to_long(values))
    _, exponent = np.frexp(np.where(np.isfinite(magnitude), magnitude, 1))
    exponent = np.where(magnitude == 0, info.minexp, np.maximum(exponent - 1, info.minexp))
    return np.ldexp(LONG(1), (exponent - info.nmant).astype(np.int32))


def tolerance(dtype):
    """The allowed absolute error at each reference value for a result of ``dtype``.

    Returns a function ``reference -> allowed |actual - reference|`` (elementwise):

    - float32, float64: ``4 * eps(dtype) * (1 + |reference|)``;
    - float16, bfloat16 (accumulated in float32, then rounded once): one unit in the last place
      of the 16-bit format at the reference value.
    """
    dtype = np.dtype(dtype)
    if dtype in (np.float16, BFLOAT16):
        return lambda reference: ulp(reference, dtype)
    eps = LONG(np.finfo(dtype).eps)
    return lambda reference: 4 * eps * (1 + np.abs(to_long(reference)))


def assert_relative(actual, reference, dtype, what, eps_count=4):
    """``|actual - reference| <= eps_count * eps(dtype) * |reference|`` at every element."""
    reference = np.asarray(reference, dtype=LONG)
    assert np.all(reference != 0), f"{what}: a zero reference has no relative error"
    error = np.abs(to_long(actual) - reference) / np.abs(reference)
    eps = LONG(np.finfo(dtype).eps)
    bad = ~(error <= eps_count * eps)  # NaN is bad too
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} values lose relative accuracy; the worst is "
        f"{float(np.nanmax(error) / eps):.3g} eps off (allowed: {eps_count})"
    )


def assert_close(actual, reference, dtype, what=""):
    """Assert ``actual`` (an lsm result) matches the long double ``reference`` for result ``dtype``.

    Checks the kind (NumPy array or NumPy scalar), the dtype, the shape, that NaN and infinite
    values sit at the same places (with the same sign) as in the reference rounded to ``dtype``,
    and that finite values are within :func:`tolerance`.
    """
    dtype = np.dtype(dtype)
    prefix = f"{what}: " if what else ""
    assert isinstance(actual, (np.ndarray, np.generic)), f"{prefix}got {type(actual)}, not a NumPy result"
    assert actual.dtype == dtype, f"{prefix}dtype {actual.dtype}, expected {dtype}"
    reference = np.asarray(reference, dtype=LONG)
    assert np.shape(actual) == reference.shape, f"{prefix}shape {np.shape(actual)} != {reference.shape}"
    got = to_long(actual)
    rounded = to_long(reference.astype(np.float64).astype(dtype))
    nan_got, nan_want = np.isnan(got), np.isnan(rounded)
    assert np.array_equal(nan_got, nan_want), (
        f"{prefix}NaN at {np.argwhere(nan_got ^ nan_want)[:5].tolist()}: got {got[nan_got ^ nan_want][:5]}, "
        f"reference {reference[nan_got ^ nan_want][:5]}"
    )
    inf_got, inf_want = np.isinf(got), np.isinf(rounded)
    assert np.array_equal(inf_got, inf_want), (
        f"{prefix}inf mismatch at {np.argwhere(inf_got ^ inf_want)[:5].tolist()}: "
        f"got {got[inf_got ^ inf_want][:5]}, reference {reference[inf_got ^ inf_want][:5]}"
    )
    assert np.array_equal(got[inf_got], rounded[inf_want]), f"{prefix}infinities of the wrong sign"
    finite = np.isfinite(rounded)
    error = np.abs(got[finite] - reference[finite])
    allowed = tolerance(dtype)(reference[finite])
    bad = error > allowed
    assert not bad.any(), (
        f"{prefix}{bad.sum()} of {bad.size} values out of tolerance; worst: got {got[finite][bad][:5]}, "
        f"reference {reference[finite][bad][:5]}, error {error[bad][:5]}, allowed {allowed[bad][:5]}"
    )


# --- gradients and losses -------------------------------------------------------------------


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
