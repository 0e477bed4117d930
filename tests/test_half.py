"""Bit-level float16 / bfloat16 conversions of ``lsm.cpu._scalar`` and half-precision results.

Numba's CPU target has no 16-bit floats, so lsm converts half-precision elements itself. These
tests check the jitted conversions against NumPy (float16) and ml_dtypes (bfloat16): exhaustively
for the 65536 bit patterns of each 16-bit format, and for float32 -> 16-bit rounding at every
representable value, every tie, the float32 neighbours of every tie, the overflow threshold,
subnormals and a large seeded sample of arbitrary float32 bit patterns.

The conversion tests call ``lsm.cpu._scalar`` directly and run on the host only; the tests of
half-precision results take the ``backend`` fixture (tests/conftest.py) and run on every backend
that holds the dtype (CuPy has no bfloat16: those cases are deselected there; the GPU kernels'
own bfloat16 conversions are checked bit for bit in ``test_cuda_elements.py``). Cases over the
simulator's element budget, or beyond the few its slow calls afford, are ``heavy``; those
whose Dask blocks would only reach the host kernels that the ``cpu`` backend runs them on are
``heavy(dask=True)``.
"""

import zlib

import numpy as np
import pytest
from numba import njit

import lsm
from lsm.cpu import _scalar

# --- jitted drivers: call the conversions exactly as the kernels do, element by element --------
# (the conversions of lsm.cpu, not the public functions: the host only)


@njit
def _convert(func, values, out):
    for i in range(values.size):
        out[i] = func(values[i])
    return out


# The float16 conversions exist twice: bit-level arithmetic, and the hardware instructions
# (F16C) where the CPU has them. Every float16 conversion test runs on each.
HALF_CONVERSIONS = {
    "bits": (_scalar.half_bits_to_f32, _scalar.f32_to_half_bits),
    "f16c": (_scalar.half_bits_to_f32_f16c, _scalar.f32_to_half_bits_f16c),
}


@pytest.fixture(params=list(HALF_CONVERSIONS))
def half_conversions(request):
    if request.param == "f16c" and not _scalar.HAS_F16C:
        pytest.skip("this CPU has no F16C instructions")
    return HALF_CONVERSIONS[request.param]


@pytest.fixture
def half_to_f32_all(half_conversions):
    to_f32 = half_conversions[0]
    return lambda bits: _convert(to_f32, bits, np.empty(bits.size, dtype=np.float32))


@pytest.fixture
def f32_to_half_all(half_conversions):
    to_half = half_conversions[1]
    return lambda values: _convert(to_half, values, np.empty(values.size, dtype=np.uint16))


def _bf16_to_f32_all(bits):
    return _convert(_scalar.bfloat16_bits_to_f32, bits, np.empty(bits.size, dtype=np.float32))


def _f32_to_bf16_all(values):
    return _convert(_scalar.f32_to_bfloat16_bits, values, np.empty(values.size, dtype=np.int16))


def _bfloat16():
    return pytest.importorskip("ml_dtypes").bfloat16


# --- helpers ---------------------------------------------------------------------------------


def _cast(values, dtype):
    """The reference conversion (overflow to inf and NaN casts are intended here)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype)


def _assert_same_16bit(got_bits, expected, values):
    """``got_bits`` (raw 16-bit patterns) equal ``expected`` (a 16-bit float array) bit for bit.

    NaN results are compared with isnan only (payloads may legitimately differ). On failure,
    the first mismatching inputs are shown in hex.
    """
    got = got_bits.view(expected.dtype)
    got_nan = np.isnan(_cast(got, np.float32))
    expected_nan = np.isnan(_cast(expected, np.float32))
    np.testing.assert_array_equal(got_nan, expected_nan, err_msg="NaN positions differ")
    keep = ~expected_nan
    got_u = got_bits.view(np.uint16)[keep]
    exp_u = expected.view(np.uint16)[keep]
    bad = np.flatnonzero(got_u != exp_u)
    if bad.size:
        shown = [
            f"{values[keep][i]!r} (bits {values[keep].view(np.uint32)[i]:#010x}): "
            f"got {got_u[i]:#06x}, expected {exp_u[i]:#06x}"
            for i in bad[:8]
        ]
        pytest.fail(f"{bad.size} conversions differ, e.g.\n" + "\n".join(shown))


def _assert_same_f32(got, expected):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg="NaN positions differ")
    keep = ~np.isnan(expected)
    # compare bits, so that -0.0 and +0.0 are told apart
    np.testing.assert_array_equal(got[keep].view(np.uint32), expected[keep].view(np.uint32))


def _ties_and_neighbours(all_values16):
    """Every midpoint between consecutive finite 16-bit values (and the midpoint past the largest,
    which must round to inf), plus the float32 neighbours of each midpoint, both signs."""
    as64 = _cast(all_values16, np.float64)
    finite = np.unique(as64[np.isfinite(as64)])
    finite = finite[finite >= 0]  # +0 up to the largest finite value
    # the value one ulp above the largest finite one (not representable: it is where inf starts)
    top = finite[-1] + (finite[-1] - finite[-2])
    edges = np.append(finite, top)
    mids64 = (edges[:-1] + edges[1:]) / 2
    mids = mids64.astype(np.float32)
    assert np.array_equal(mids.astype(np.float64), mids64), "midpoints must be exact in float32"
    up = np.nextafter(mids, np.float32(np.inf))
    down = np.nextafter(mids, np.float32(0))
    positive = np.concatenate([mids, up, down])
    return np.concatenate([positive, -positive]).astype(np.float32)


def _special_f32():
    f = np.float32
    return np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            -np.nan,
            np.finfo(f).max,
            -np.finfo(f).max,
            np.finfo(f).tiny,
            np.finfo(f).smallest_subnormal,
            -np.finfo(f).smallest_subnormal,
            65504.0,
            65519.996,
            65520.0,
            65536.0,
            1e5,
            -1e5,
            2.0**-24,
            2.0**-25,
            2.0**-25 * 1.0000001,
            2.0**-26,
            2.0**-14,
            2.0**-14 - 2.0**-25,
            3.3895314e38,
            3.3961776e38,
        ],
        dtype=f,
    )


def _random_f32(seed, count=1 << 22):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << 32, size=count, dtype=np.uint64).astype(np.uint32).view(np.float32)


def _f32_range(lo_bits, hi_bits):
    """Every float32 whose bit pattern lies in ``[lo_bits, hi_bits)``, both signs."""
    bits = np.arange(lo_bits, hi_bits, dtype=np.uint32)
    return np.concatenate([bits, bits | np.uint32(0x80000000)]).view(np.float32)


# --- float16 ---------------------------------------------------------------------------------

ALL_BITS = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def test_half_bits_to_f32_exhaustive(half_to_f32_all):
    got = half_to_f32_all(ALL_BITS)
    expected = ALL_BITS.view(np.float16).astype(np.float32)
    _assert_same_f32(got, expected)
    assert np.isnan(got).sum() == 2 * 1023  # every NaN pattern (nonzero mantissa, both signs)


def test_f32_to_half_bits_roundtrips_every_half(f32_to_half_all):
    values = ALL_BITS.view(np.float16).astype(np.float32)
    got = f32_to_half_all(values)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(got[finite], ALL_BITS[finite])
    assert np.isnan(got.view(np.float16)[~finite].astype(np.float32)).all()


def test_f32_to_half_bits_ties_to_even_and_neighbours(f32_to_half_all):
    values = _ties_and_neighbours(ALL_BITS.view(np.float16))
    _assert_same_16bit(f32_to_half_all(values), _cast(values, np.float16), values)


def test_f32_to_half_bits_special_values_and_overflow(f32_to_half_all):
    values = _special_f32()
    got = f32_to_half_all(values)
    _assert_same_16bit(got, _cast(values, np.float16), values)
    halves = got.view(np.float16)
    assert halves[values == np.float32(65520.0)] == np.inf  # the tie above 65504 rounds to inf
    assert halves[values == np.float32(65519.996)] == np.float16(65504.0)
    assert np.signbit(halves[1]) and halves[1] == 0  # -0.0 keeps its sign


def test_f32_to_half_bits_subnormal_and_boundary_ranges(f32_to_half_all):
    values = np.concatenate(
        [
            # float32 subnormals and tiny normals: all round to +-0 or the smallest half subnormals
            _f32_range(0x00000000, 0x00010000),
            _f32_range(0x33000000 - 0x20000, 0x33000000 + 0x20000),  # around 2^-25 (half of 2^-24)
            _f32_range(0x33800000 - 0x10000, 0x33800000 + 0x10000),  # around 2^-24
            _f32_range(0x38800000 - 0x40000, 0x38800000 + 0x40000),  # subnormal/normal boundary
            _f32_range(0x477FE000 - 0x4000, 0x47800000 + 0x4000),  # overflow threshold
        ]
    )
    _assert_same_16bit(f32_to_half_all(values), _cast(values, np.float16), values)


def test_f32_to_half_bits_subnormal_grid(f32_to_half_all):
    # every half subnormal scaled by every fraction k/8 of its spacing: many exact ties
    units = np.arange(0, 1025, dtype=np.float64)
    fractions = np.arange(8, dtype=np.float64) / 8
    values = ((units[:, None] + fractions[None, :]) * 2.0**-24).ravel().astype(np.float32)
    values = np.concatenate([values, -values])
    _assert_same_16bit(f32_to_half_all(values), _cast(values, np.float16), values)


@pytest.mark.parametrize("seed", [0, 1])
def test_f32_to_half_bits_random_bit_patterns(seed, f32_to_half_all):
    values = _random_f32(seed)
    _assert_same_16bit(f32_to_half_all(values), _cast(values, np.float16), values)


# --- bfloat16 --------------------------------------------------------------------------------


def test_bfloat16_bits_to_f32_exhaustive():
    bf16 = _bfloat16()
    bits = ALL_BITS.view(np.int16)
    got = _bf16_to_f32_all(bits)
    expected = ALL_BITS.view(bf16).astype(np.float32)
    _assert_same_f32(got, expected)
    # bfloat16 is exactly the top half of a float32 (NaNs included)
    np.testing.assert_array_equal(got.view(np.uint32), ALL_BITS.astype(np.uint32) << 16)


def test_f32_to_bfloat16_bits_roundtrips_every_bfloat16():
    bf16 = _bfloat16()
    values = ALL_BITS.view(bf16).astype(np.float32)
    got = _f32_to_bf16_all(values)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(got.view(np.uint16)[finite], ALL_BITS[finite])
    assert np.isnan(_cast(got.view(bf16)[~finite], np.float32)).all()


def test_f32_to_bfloat16_bits_ties_to_even_and_neighbours():
    bf16 = _bfloat16()
    values = _ties_and_neighbours(ALL_BITS.view(bf16))
    _assert_same_16bit(_f32_to_bf16_all(values), _cast(values, bf16), values)


def test_f32_to_bfloat16_bits_special_and_ranges():
    bf16 = _bfloat16()
    values = np.concatenate(
        [
            _special_f32(),
            _f32_range(0x00000000, 0x00040000),  # float32 subnormals
            _f32_range(0x007F0000, 0x00810000),  # subnormal/normal boundary
            _f32_range(0x7F7F0000, 0x7F800001),  # overflow threshold and inf
            _f32_range(0x7F800001, 0x7F808000),  # signalling and quiet NaNs
        ]
    )
    got = _f32_to_bf16_all(values)
    _assert_same_16bit(got, _cast(values, bf16), values)
    assert np.all(got.view(bf16)[values == np.finfo(np.float32).max].astype(np.float32) == np.inf)


@pytest.mark.parametrize("seed", [2, 3])
def test_f32_to_bfloat16_bits_random_bit_patterns(seed):
    bf16 = _bfloat16()
    values = _random_f32(seed)
    _assert_same_16bit(_f32_to_bf16_all(values), _cast(values, bf16), values)


# --- half-precision inputs through the public functions ---------------------------------------
# A sum that overflows float16 needs more than 65504 terms: over the simulator's element budget.


@pytest.mark.heavy
def test_float16_log_softmax_of_wide_row_does_not_overflow(backend):
    x = backend.move(np.zeros(100_000, dtype=np.float16))
    got = backend.log_softmax(x)
    assert got.dtype == np.float16
    assert np.all(got == np.float16(-np.log(100_000.0)))
    assert got[0] == np.float16(-11.5129)
    np.testing.assert_array_equal(backend.softmax(x), np.full(got.shape, np.float16(1e-5)))
    assert not np.any(backend.to_numpy(x))  # the input is untouched


@pytest.mark.heavy
def test_float16_logsumexp_of_wide_row_is_finite(backend):
    got = backend.logsumexp(np.ones(70_000, dtype=np.float16))
    assert got.dtype == np.float16
    assert np.isfinite(got)
    assert got == np.float16(1 + np.log(70_000.0))
    assert abs(float(got) - 12.16) < 0.01


def _ulp_index(values):
    """Map 16-bit floats onto consecutive integers (so the difference counts ulps)."""
    bits = values.view(np.uint16).astype(np.int64)
    return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)


def _reference64(func, x, axis):
    x = x.astype(np.float64)
    lse = np.log(np.sum(np.exp(x - x.max(axis=axis, keepdims=True)), axis=axis, keepdims=True))
    lse = lse + x.max(axis=axis, keepdims=True)
    if func == "log_softmax":
        return x - lse
    if func == "softmax":
        return np.exp(x - lse)
    return np.squeeze(lse, axis=axis)


def _half_dtypes():
    dtypes = [np.dtype(np.float16)]
    try:
        import ml_dtypes
    except ImportError:
        return dtypes
    return [*dtypes, np.dtype(ml_dtypes.bfloat16)]


@pytest.mark.parametrize("dtype", _half_dtypes(), ids=lambda d: d.name)
@pytest.mark.parametrize("func", ["log_softmax", "softmax", "logsumexp"])
@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((3, 100), 1),
        pytest.param((100, 3), 0, marks=pytest.mark.heavy),  # the simulator: one shape
        pytest.param((3, 40_000), -1, marks=pytest.mark.heavy),  # Dask splits and merges long rows
        pytest.param((2, 20_000, 3), 1, marks=pytest.mark.heavy(dask=True)),
        pytest.param((5000,), 0, marks=pytest.mark.heavy(dask=True)),
    ],
)
def test_half_results_within_one_ulp_of_rounded_float64(sweep_backend, dtype, func, shape, axis):
    rng = np.random.default_rng(zlib.crc32(repr((func, shape)).encode()))
    x = (rng.standard_normal(shape) * 6).astype(dtype)
    got = getattr(sweep_backend, func)(x, axis=axis)
    assert got.dtype == dtype
    expected = _reference64(func, x, axis).astype(dtype)
    distance = np.abs(_ulp_index(np.asarray(got)) - _ulp_index(np.asarray(expected)))
    assert distance.max() <= 1, f"{func} {dtype.name}: worst error {distance.max()} ulp"


def test_half_dtype_argument_rounds_float64_input(backend):
    x = np.linspace(-30, 30, 301)
    got = backend.log_softmax(x, dtype=np.float16)
    assert got.dtype == np.float16
    expected = _reference64("log_softmax", x.astype(np.float16), -1).astype(np.float16)
    assert np.abs(_ulp_index(got) - _ulp_index(expected)).max() <= 1


@pytest.mark.parametrize("dtype", _half_dtypes(), ids=lambda d: d.name)
def test_half_where_and_b_within_one_ulp(backend, dtype):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((6, 70)) * 4).astype(dtype)
    mask = rng.random(x.shape) < 0.5
    mask[3] = False  # one fully excluded row
    x64 = np.where(mask, x.astype(np.float64), -np.inf)
    with np.errstate(invalid="ignore"):
        log_p = _reference64("log_softmax", x64, 1)
    log_p[~mask] = -np.inf
    log_p[3] = -np.inf
    got = backend.log_softmax(x, axis=1, where=mask)
    assert got.dtype == dtype
    assert np.abs(_ulp_index(got) - _ulp_index(log_p.astype(dtype))).max() <= 1
    got_p = backend.softmax(x, axis=1, where=mask)
    assert np.abs(_ulp_index(got_p) - _ulp_index(np.exp(log_p).astype(dtype))).max() <= 1
    # weights are converted to the float32 accumulator for 16-bit inputs
    b = rng.random(x.shape[1]) * 3
    b32 = b.astype(np.float32).astype(np.float64)
    m = x.astype(np.float64).max(axis=1, keepdims=True)
    expected = (m + np.log(np.sum(b32 * np.exp(x.astype(np.float64) - m), axis=1, keepdims=True)))[:, 0]
    got_lse = backend.logsumexp(x, axis=1, b=b)
    assert got_lse.dtype == dtype
    assert np.abs(_ulp_index(got_lse) - _ulp_index(expected.astype(dtype))).max() <= 1


def test_half_precision_input_makes_no_float32_copy():
    """16-bit inputs are widened element by element inside the kernels: a 64 MiB float16 input
    with out= allocates nothing of its size (a float32 copy would be 128 MiB).

    The host only: tracemalloc sees host allocations, so on another backend this could not fail.
    """
    import tracemalloc

    x = np.zeros((2048, 16384), dtype=np.float16)
    out = np.empty_like(x)
    lsm.log_softmax(x[:2], out=out[:2])  # compile outside the measurement
    tracemalloc.start()
    try:
        lsm.log_softmax(x, out=out)
        lsm.softmax(x, axis=0, out=out)
        lsm.logsumexp(x, axis=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"peak traced allocation {peak} bytes"
    assert out[0, 0] == np.float16(1 / 2048)
