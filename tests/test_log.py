"""The vectorisable logarithm of lsm/cpu/_log.py against np.log in a wider precision."""

import numba
import numpy as np
from adversarial import float32_patterns

from lsm.cpu._log import log32, log64


@numba.njit
def _elementwise(func, x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = func(x[i])
    return out


def _check_within_one_ulp(got, x, dtype):
    wide = np.float64 if dtype == np.float32 else np.longdouble
    exact = np.log(x.astype(wide))
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(wide)
    error = np.abs(got.astype(wide) - exact) / ulp
    assert error.max() < 1, f"{error.max():.3f} ulp at x = {x[np.argmax(error)]!r}"


def test_log32_over_every_positive_normal_binade():
    # every 31st positive normal float32 bit pattern: 7e7 inputs over every binade, and 1 exactly
    for x in float32_patterns(0x00800000, 0x7F800000, 31):
        _check_within_one_ulp(_elementwise(log32, x), x, np.float32)
    x = np.float32([1.0, np.finfo(np.float32).max])
    _check_within_one_ulp(_elementwise(log32, x), x, np.float32)


def test_log64_over_its_range():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            np.exp(rng.uniform(-708, 709, 2_000_000)),
            1 + rng.uniform(-1e-6, 1e-6, 200_000),  # results near 0, where relative error is hardest
            rng.uniform(0.5, 2.0, 1_000_000),
            [1.0, np.finfo(np.float64).smallest_normal, np.finfo(np.float64).max],
        ]
    )
    _check_within_one_ulp(_elementwise(log64, x), x, np.float64)


def test_exact_values():
    assert log32(np.float32(1.0)) == 0 and log64(1.0) == 0
