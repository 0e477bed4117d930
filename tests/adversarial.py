"""A deterministic generator of adversarial inputs, shared by the edge-case tests.

``adversarial_cases(dtype)`` yields :class:`Case` objects ``(id, array, axis)``: NaN and infinity
mixes, empty and 0-d arrays, length-1 axes, Fortran order, negative strides, strided slices,
non-native byte order, read-only arrays, huge and tiny (subnormal) magnitudes, and 3-D arrays
reduced over single axes, adjacent and separated tuples of axes, and all axes. Each call builds
fresh arrays from a fixed seed, so a test may inspect or keep them freely.

Integer and bool dtypes get only the cases that make sense for them (no NaN, inf or subnormals);
bfloat16 has no byte-swapped form in ml_dtypes, so that case is skipped for it.
"""

from typing import NamedTuple

import ml_dtypes
import numpy as np

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = (np.dtype(np.float16), BFLOAT16, np.dtype(np.float32), np.dtype(np.float64))
INPUT_DTYPES = (*DTYPES, np.dtype(np.int64), np.dtype(np.bool_))
SEED = 20240611

nan, inf = np.nan, np.inf


class Case(NamedTuple):
    id: str
    array: np.ndarray
    axis: object


def float32_patterns(start, stop, step, chunk=1 << 20):
    """Every ``step``-th float32 bit pattern from ``start`` up to ``stop`` (bit patterns as
    integers), as float32 arrays of up to ``chunk`` elements: a sweep of tens of millions of
    inputs checked a chunk at a time, whose temporaries stay in memory already touched."""
    for low in range(start, stop, step * chunk):
        bits = np.arange(low, min(stop, low + step * chunk), step, dtype=np.uint64)
        yield bits.astype(np.uint32).view(np.float32)


def dtype_id(dtype):
    """A short readable name for ``dtype`` (for pytest ids)."""
    return np.dtype(dtype).name


def finfo(dtype):
    dtype = np.dtype(dtype)
    return ml_dtypes.finfo(dtype) if dtype == BFLOAT16 else np.finfo(dtype)


def _convert(values, dtype):
    """Finite float64 ``values`` as ``dtype``: integers are rounded, bools are ``values > 0``."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == np.bool_:
        return values > 0
    if dtype.kind in "iu":
        return np.round(values).astype(dtype)
    return values.astype(dtype)


def adversarial_cases(dtype):
    """Yield the adversarial :class:`Case` objects for input ``dtype`` (deterministic)."""
    dtype = np.dtype(dtype)
    is_float = dtype.kind == "f" or dtype == BFLOAT16
    rng = np.random.default_rng(SEED)

    def make(values):
        return _convert(values, dtype)

    def normal(*shape, scale=3.0):
        return make(rng.standard_normal(shape) * scale)

    if is_float:
        # NaN, +inf and -inf mixes, each in a row of otherwise finite values (rows: axis -1,
        # and the same data reduced down the columns: axis 0).
        mixes = make(
            [
                [nan, nan, nan, nan],
                [1.0, nan, 2.0, 3.0],
                [1.0, inf, 2.0, 3.0],
                [inf, inf, 0.0, -1.0],
                [-inf, -inf, -inf, -inf],
                [-inf, 0.5, 2.0, -1.0],
                [-inf, inf, 0.0, 1.0],
                [nan, inf, -inf, 0.0],
                [1.0, 2.0, 3.0, 4.0],
            ]
        )
        yield Case("nan_inf_mixes-rows", mixes, -1)
        yield Case("nan_inf_mixes-cols", np.ascontiguousarray(mixes.T), 0)
        yield Case("nan_only", make([nan, nan, nan]), -1)
        yield Case("nan_among_finite", make([0.0, 1.0, nan, -2.0, 5.0]), -1)
        yield Case("posinf_one", make([0.0, 1.0, inf, -2.0]), -1)
        yield Case("posinf_all", make([inf, inf]), -1)
        yield Case("neginf_all", make([-inf, -inf, -inf]), -1)
        yield Case("neginf_one", make([-inf, 1.0, 2.0, 3.0]), -1)
        yield Case("neginf_posinf", make([-inf, inf]), -1)
        yield Case("neginf_all_but_one", make([-inf, -inf, 7.0, -inf]), -1)
        noisy = normal(6, 40)  # longer than one summation block of 32 terms
        noisy[1, 17] = nan
        noisy[2, 33] = inf
        noisy[3, ::2] = -inf
        noisy[4, :] = -inf
        yield Case("nan_inf_noisy-rows", noisy, -1)
        yield Case("nan_inf_noisy-cols", np.ascontiguousarray(noisy.T), 0)
        yield Case("nan_inf_noisy-3d-axis1", noisy.reshape(2, 3, 40).transpose(0, 2, 1), 1)

    # Empty arrays and 0-d arrays.
    yield Case("empty-0rows-axis-1", make(np.zeros((0, 5))), -1)
    yield Case("empty-0rows-axis0", make(np.zeros((0, 5))), 0)
    yield Case("empty-0cols-axis-1", make(np.zeros((5, 0))), -1)
    yield Case("empty-0cols-axis0", make(np.zeros((5, 0))), 0)
    yield Case("empty-1d", make(np.zeros(0)), 0)
    yield Case("empty-3d-tuple", make(np.zeros((2, 0, 3))), (0, 2))
    yield Case("0d-axis-1", make(1.5), -1)
    yield Case("0d-axis0", make(-2.0), 0)
    yield Case("0d-axisNone", make(3.0), None)
    if is_float:
        yield Case("0d-nan", make(nan), -1)
        yield Case("0d-posinf", make(inf), -1)
        yield Case("0d-neginf", make(-inf), -1)

    # Length-1 reduced axis.
    yield Case("len1-axis-1", normal(4, 1), -1)
    yield Case("len1-axis0", normal(1, 4), 0)

    # Layouts.
    base = normal(7, 9)
    yield Case("fortran-axis-1", np.asfortranarray(base), -1)
    yield Case("fortran-axis0", np.asfortranarray(base), 0)
    yield Case("transposed-axis-1", normal(9, 7).T, -1)
    yield Case("negstride-rows", base[::-1], -1)
    yield Case("negstride-cols", base[:, ::-1], -1)
    yield Case("negstride-both-axis0", base[::-1, ::-1], 0)
    yield Case("negstride-1d", normal(11)[::-1], 0)
    yield Case("slice-step3-axis-1", base[:, ::3], -1)
    yield Case("slice-step3-axis0", base[:, ::3], 0)
    if dtype.itemsize > 1 and dtype != BFLOAT16:
        yield Case("byteswapped-axis-1", base.astype(dtype.newbyteorder()), -1)
        yield Case("byteswapped-axis0", base.astype(dtype.newbyteorder()), 0)
    readonly = normal(5, 6)
    readonly.setflags(write=False)
    yield Case("readonly-axis-1", readonly, -1)
    yield Case("readonly-axis0", readonly, 0)

    # Magnitudes.
    if dtype != np.bool_:
        yield Case("huge-1e4", make(rng.uniform(-1e4, 1e4, (5, 8))), -1)
        yield Case("huge-1e4-cols", make(rng.uniform(-1e4, 1e4, (8, 5))), 0)
        yield Case("huge-spread", make([[1e4, -1e4, 0.0, 1e4 - 1], [-1e4, -1e4 + 1, -1e4 + 2, -1e4]]), -1)
    if is_float:
        quarter = float(finfo(dtype).max) / 4
        yield Case("max-over-4", make([[quarter, -quarter, 0.0], [-quarter, -quarter, -quarter]]), -1)
        tiny = float(finfo(dtype).smallest_subnormal)
        yield Case("subnormal", make([[tiny, 2 * tiny, 0.0, -tiny], [tiny, tiny, tiny, tiny]]), -1)
        yield Case("subnormal-with-one", make([tiny, 1.0, -tiny, 3 * tiny]), -1)

    # 3-D arrays: every single axis, adjacent and separated tuples, all axes.
    cube = normal(3, 4, 5)
    if is_float:
        cube[1, 2, 3] = -inf
    for axis in (0, 1, 2, -1, (0, 1), (1, 2), (0, 2), (2, 0), (0, 1, 2), None):
        name = "None" if axis is None else "".join(str(a) for a in np.atleast_1d(axis))
        yield Case(f"3d-axis{name}", cube.copy(), axis)
    yield Case("3d-fortran-axis02", np.asfortranarray(cube), (0, 2))
    yield Case("3d-negstride-axis12", cube[::-1, :, ::-2], (1, 2))
