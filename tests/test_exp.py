"""The vectorisable exp of lsm/cpu/_exp.py against np.exp in float64."""

import numba
import numpy as np
import pytest
from adversarial import float32_patterns

from lsm.cpu._exp import exp32, exp64


@numba.njit
def _elementwise(func, x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = func(x[i])
    return out


def _check(got, x, dtype):
    """Relative error at most eps where the result is normal, one smallest subnormal below it,
    and exact overflow, NaN and infinities."""
    finfo = np.finfo(dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        exact = np.exp(x.astype(np.float64) if dtype == np.float32 else x.astype(np.longdouble))
        rounded = exact.astype(dtype)
    normal = (np.abs(exact) >= finfo.smallest_normal) & np.isfinite(rounded)
    relative = np.abs(got[normal] - exact[normal]) / exact[normal]
    assert relative.max(initial=0) <= finfo.eps, f"worst x {x[normal][np.argmax(relative)]}"
    tiny = (exact < finfo.smallest_normal) & np.isfinite(x)
    assert np.all(np.abs(got[tiny] - exact[tiny]) <= finfo.smallest_subnormal)
    overflow = np.isinf(rounded) & ~np.isnan(x)
    assert np.array_equal(got[overflow], rounded[overflow])
    assert np.array_equal(np.isnan(got), np.isnan(x))


def test_exp32_over_the_whole_float32_range():
    # every 61st float32 bit pattern, both signs: 7e7 inputs spread evenly over every binade
    for x in float32_patterns(0, 2**32, 61):
        _check(_elementwise(exp32, x), x, np.float32)
    x = np.float32([0, -0.0, np.inf, -np.inf, np.nan, 88.72283, -87.33654])
    _check(_elementwise(exp32, x), x, np.float32)


def test_exp64_over_its_whole_range():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            np.linspace(-750, 715, 2_000_001),
            rng.uniform(-1, 1, 1_000_000),
            rng.uniform(-745.2, -708, 200_000),  # subnormal results
            [0.0, -0.0, np.inf, -np.inf, np.nan, 709.782712893384, -708.3964185322641, 1e-300, -1e300],
        ]
    )
    _check(_elementwise(exp64, x), x, np.float64)


@pytest.mark.parametrize(("func", "dtype"), [(exp32, np.float32), (exp64, np.float64)])
def test_special_values(func, dtype):
    assert func(dtype(-np.inf)) == 0
    assert func(dtype(np.inf)) == np.inf
    assert np.isnan(func(dtype(np.nan)))
    assert func(dtype(0)) == 1
    assert func(dtype(-1e30)) == 0
    assert func(dtype(1e30)) == np.inf
