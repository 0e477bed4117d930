"""log_softmax, softmax and logsumexp over memory layouts and axis combinations.

Every call reaches the kernels as a canonical ``(outer, n, inner)`` view: the row kernel when
``inner == 1``, the column kernel (tiles of 64 columns) otherwise, each serial below
``PARALLEL_MIN_ELEMENTS`` elements and parallel above. These tests drive each path through C
and Fortran order, every axis, tuples of axes, broadcast (zero-stride) inputs, strides that
cannot merge and non-contiguous ``out=`` arrays, and compare with the long double references.
A NaN, a +inf and a -inf are planted in single groups so that a group mapped to the wrong place
shows up.
"""

import numba
import numpy as np
import pytest
from adversarial import BFLOAT16
from reference import assert_close, ref_log_softmax, ref_logsumexp, ref_softmax

import lsm
from lsm.cpu._kernels import SHORT_ROW, chunk_rows
from lsm.cpu._launch import PARALLEL_MIN_ELEMENTS

nan, inf = np.nan, np.inf
F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
NAMES = ["log_softmax", "softmax", "logsumexp"]
REFERENCES = {"log_softmax": ref_log_softmax, "softmax": ref_softmax, "logsumexp": ref_logsumexp}
ALL_FLOATS = [F16, BFLOAT16, F32, F64]
ALL_FLOAT_IDS = ["float16", "bfloat16", "float32", "float64"]


def data(shape, dtype=F64, seed=0, order="C", plant=True):
    """Random data of ``shape`` (order ``order``), with a NaN, a +inf and a -inf in single places."""
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape) * 4, order=order)
    if plant and x.size >= 3:
        flat = x.reshape(-1, order="A")  # a view: writes reach x
        nan_at, inf_at, neginf_at = rng.choice(x.size, 3, replace=False)
        flat[nan_at], flat[inf_at], flat[neginf_at] = nan, inf, -inf
    return x.astype(dtype, order="K")


def check(name, x, axis, dtype=None, **kwargs):
    """Run ``lsm.<name>`` and compare with its reference (``x`` converted to the result dtype)."""
    dtype = np.dtype(dtype) if dtype is not None else (F64 if x.dtype.kind in "biu" else x.dtype)
    got = getattr(lsm, name)(x, axis=axis, **kwargs)
    kwargs.pop("out", None)
    want = REFERENCES[name](x.astype(dtype), axis=axis, **kwargs)
    if kwargs.get("return_sign"):
        assert_close(got[0], want[0], dtype, f"{name} axis={axis} value")
        assert_close(got[1], want[1], dtype, f"{name} axis={axis} sign")
    else:
        assert_close(got, want, dtype, f"{name} axis={axis}")
    return got


def axis_id(axis):
    if axis is None:
        return "None"
    return "".join(f"{a:+d}" for a in np.atleast_1d(axis))


# --- every single axis, C and Fortran order -----------------------------------------------------

SINGLE_AXES = [((5, 6, 7), axis) for axis in (0, 1, 2, -1, -2, -3)] + [
    ((3, 4, 5, 6), axis) for axis in (0, 1, 2, 3, -1, -2, -3, -4)
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(
    ("shape", "axis"), SINGLE_AXES, ids=[f"{len(s)}d-axis{a:+d}" for s, a in SINGLE_AXES]
)
@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_every_axis(name, order, shape, axis, dtype):
    x = data(shape, dtype, seed=len(shape) * 10 + axis, order=order)
    assert x.flags[f"{order}_CONTIGUOUS"]
    check(name, x, axis)
    if name == "logsumexp":
        check(name, x, axis, keepdims=True)


# --- tuples of axes and axis=None ---------------------------------------------------------------

TUPLES = [
    ((5, 6, 7), (0, 1)),
    ((5, 6, 7), (1, 2)),
    ((5, 6, 7), (0, 2)),
    ((5, 6, 7), (-1, -3)),
    ((5, 6, 7), (0, 1, 2)),
    ((5, 6, 7), None),
    ((3, 4, 5, 6), (1, 2)),
    ((3, 4, 5, 6), (2, 3)),
    ((3, 4, 5, 6), (0, 2)),
    ((3, 4, 5, 6), (1, 3)),
    ((3, 4, 5, 6), (0, 3)),
    ((3, 4, 5, 6), (0, 2, 3)),
    ((3, 4, 5, 6), (3, 1, 0)),
    ((3, 4, 5, 6), (0, 1, 2, 3)),
    ((3, 4, 5, 6), None),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("shape", "axis"), TUPLES, ids=[f"{len(s)}d-axis{axis_id(a)}" for s, a in TUPLES])
def test_tuple_axes(name, order, shape, axis):
    x = data(shape, F64, seed=sum(shape), order=order)
    check(name, x, axis)
    if name == "logsumexp":
        check(name, x, axis, keepdims=True)
        where = np.random.default_rng(1).random(shape) < 0.8
        b = np.random.default_rng(2).uniform(0.5, 2.0, shape)
        check(name, x, axis, where=where, b=b)
    else:
        check(name, x, axis, where=np.random.default_rng(1).random(shape) < 0.8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [F16, BFLOAT16, F32], ids=["float16", "bfloat16", "float32"])
def test_tuple_axes_half_and_single_precision(name, dtype):
    x = data((3, 4, 5, 6), dtype, seed=5)
    for axis in ((1, 2), (0, 2), (1, 3), None):
        check(name, x, axis)


# --- broadcast (zero-stride) inputs -------------------------------------------------------------

BROADCASTS = {
    "row-to-matrix": (lambda: np.broadcast_to(data((70,), plant=False), (50, 70))),
    "column-to-matrix": (lambda: np.broadcast_to(data((50, 1), plant=False), (50, 70))),
    "scalar-to-matrix": (lambda: np.broadcast_to(np.float64(1.5), (9, 13))),
    "middle-axis-3d": (lambda: np.broadcast_to(data((4, 1, 90), plant=False), (4, 30, 90))),
    "planted-row": (lambda: np.broadcast_to(np.array([1.0, nan, -inf, 2.0]), (6, 4))),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", list(BROADCASTS))
def test_broadcast_inputs(name, kind):
    x = BROADCASTS[kind]()
    assert 0 in x.strides and not x.flags.writeable
    for axis in range(-x.ndim, 0):
        check(name, x, axis)
    check(name, x, None)


def test_broadcast_where_and_b():
    x = data((40, 100), plant=False)
    where = np.broadcast_to(np.arange(100) % 3 != 0, x.shape)
    b = np.broadcast_to(np.linspace(0.5, 1.5, 40)[:, None], x.shape)
    for axis in (0, 1, None):
        check("logsumexp", x, axis, where=where, b=b)
        check("softmax", x, axis, where=where)


# --- strides that cannot merge (one copy) -------------------------------------------------------

UNMERGEABLE = {
    "step2-middle-reduce-last-two": (lambda: data((4, 12, 10))[:, ::2, :], (1, 2)),
    "step2-middle-reduce-first-two": (lambda: data((4, 12, 10))[:, ::2, :], (0, 1)),
    "step3-first-reduce-first-two": (lambda: data((9, 5, 10))[::3], (0, 1)),
    "step2-last-mergeable-last-two": (lambda: data((4, 6, 10))[:, :, ::2], (1, 2)),
    "transposed-reduce-last-two": (lambda: data((5, 6, 7)).transpose(1, 0, 2), (1, 2)),
    "fortran-slice-reduce-all": (lambda: np.asfortranarray(data((6, 8, 5)))[1:5, ::2], None),
    "negstride-reduce-last-two": (lambda: data((4, 6, 10))[:, ::-1, ::-2], (-2, -1)),
    "4d-step-reduce-middle": (lambda: data((3, 8, 5, 4))[:, ::2, :, 1:], (1, 2)),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", list(UNMERGEABLE))
def test_strides_that_cannot_merge(name, case):
    make, axis = UNMERGEABLE[case]
    x = make()
    before = x.copy()
    check(name, x, axis)
    if name == "logsumexp":
        check(name, x, axis, keepdims=True, return_sign=True)
    np.testing.assert_array_equal(x, before)  # never written through the view


# --- the column kernel: more than 64 columns, not a multiple of 64 ------------------------------

COLUMN_SHAPES = [(7, 65), (5, 100), (9, 130), (3, 200), (33, 257), (2, 7, 129), (3, 40, 70)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", COLUMN_SHAPES, ids=["x".join(map(str, s)) for s in COLUMN_SHAPES])
@pytest.mark.parametrize(
    "dtype", [F16, BFLOAT16, F32, F64], ids=["float16", "bfloat16", "float32", "float64"]
)
def test_column_tiles(name, shape, dtype):
    x = data(shape, F64, seed=shape[-1])
    inner = shape[-1]
    for column in (0, 63, 64, 127, 128, inner - 1):  # specials at the tile boundaries
        if column < inner:
            x[..., 1, column] = [nan, inf, -inf, 100.0][column % 4]
    x = x.astype(dtype)
    axis = -2  # the reduced axis is strided; the inner axis is contiguous
    check(name, x, axis)
    where = np.random.default_rng(3).random(shape) < 0.7
    where[..., :, 5 % inner] = False  # one fully masked column
    check(name, x, axis, where=where)


# --- the short-row kernel: rows of up to SHORT_ROW elements, in chunks of rows --------------------

SHORT_ROW_SHAPES = [(5000, 1), (3000, 3), (600, 31), (300, SHORT_ROW), (200, SHORT_ROW + 1), (7, 5)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", SHORT_ROW_SHAPES, ids=["x".join(map(str, s)) for s in SHORT_ROW_SHAPES])
@pytest.mark.parametrize("dtype", ALL_FLOATS, ids=ALL_FLOAT_IDS)
def test_short_rows(name, shape, dtype):
    x = data(shape, F64, seed=shape[-1])
    rows_per_chunk = chunk_rows(*shape, numba.get_num_threads())
    for row in (0, rows_per_chunk - 1, rows_per_chunk, shape[0] - 1):  # specials at chunk edges
        if row < shape[0]:
            x[row, row % shape[1]] = [nan, inf, -inf, 100.0][row % 4]
    x = x.astype(dtype)
    check(name, x, -1)
    where = np.random.default_rng(6).random(shape) < 0.7
    where[min(rows_per_chunk, shape[0] - 1)] = False  # one fully masked row
    check(name, x, -1, where=where)
    if name == "logsumexp":
        b = np.random.default_rng(7).uniform(0.5, 2.0, shape)
        check(name, x, -1, b=b, keepdims=True)


# --- large inputs: the parallel kernels ---------------------------------------------------------

PARALLEL = [
    ("rows", (300, 200), -1),
    ("columns", (200, 300), 0),
    ("columns-3d", (4, 100, 130), 1),
    ("one-long-row", (40_000,), 0),
    ("one-long-column", (40_000, 1), 0),
    ("few-wide-columns", (2, 20_000), 0),
    ("tuple-adjacent", (40, 30, 50), (1, 2)),
    ("tuple-separated", (40, 30, 50), (0, 2)),
    ("all", (40, 30, 50), None),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("shape", "axis"), [p[1:] for p in PARALLEL], ids=[p[0] for p in PARALLEL])
def test_parallel_sizes(name, shape, axis):
    x = data(shape, F64, seed=17)
    assert x.size > PARALLEL_MIN_ELEMENTS
    check(name, x, axis)
    check(name, x.astype(F32), axis)
    check(name, np.asfortranarray(x), axis)
    where = np.random.default_rng(4).random(shape) < 0.9
    check(name, x, axis, where=where)
    if name == "logsumexp":
        b = np.random.default_rng(5).uniform(0.5, 2.0, shape)
        check(name, x, axis, b=b, keepdims=True)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [F16, BFLOAT16], ids=["float16", "bfloat16"])
def test_parallel_sizes_half_precision(name, dtype):
    x = data((200, 300), dtype, seed=19)
    check(name, x, -1)
    check(name, x, 0)


def test_parallel_and_serial_agree_bitwise():
    """Splitting work over threads must not change any result (each group is summed by one thread)."""
    x = data((400, 100), seed=23)
    for axis in (0, 1):
        small = np.concatenate(
            [lsm.log_softmax(part, axis=axis) for part in np.array_split(x, 40, 1 - axis)], 1 - axis
        )
        assert all(part.size < PARALLEL_MIN_ELEMENTS for part in np.array_split(x, 40, 1 - axis))
        np.testing.assert_array_equal(lsm.log_softmax(x, axis=axis), small)


# --- non-contiguous out= ------------------------------------------------------------------------


def _out_layouts(shape, dtype):
    """Fresh non-contiguous arrays of ``shape``, each a view into a larger buffer of 7s."""
    ndim = len(shape)
    wide = np.full(tuple(2 * n for n in shape), 7.0, dtype=dtype)
    yield "every-other", wide[tuple(slice(None, None, 2) for _ in range(ndim))]
    yield "reversed", np.full(shape, 7.0, dtype=dtype)[tuple(slice(None, None, -1) for _ in range(ndim))]
    yield "fortran", np.asfortranarray(np.full(shape, 7.0, dtype=dtype))
    yield "transposed", np.full(shape[::-1], 7.0, dtype=dtype).T


OUT_CASES = [
    ("rows", (6, 70), -1),
    ("columns", (6, 70), 0),
    ("3d-middle", (3, 9, 70), 1),
    ("3d-separated", (3, 9, 70), (0, 2)),
    ("3d-all", (3, 9, 70), None),
    ("parallel-rows", (200, 170), -1),
    ("parallel-columns", (170, 200), 0),
]


@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
@pytest.mark.parametrize(("shape", "axis"), [c[1:] for c in OUT_CASES], ids=[c[0] for c in OUT_CASES])
@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=["float16", "float32", "float64"])
def test_non_contiguous_out_softmax(name, shape, axis, dtype):
    x = data(shape, dtype, seed=29)
    for layout, out in _out_layouts(shape, dtype):
        assert not out.flags.c_contiguous
        returned = check(name, x, axis, out=out)
        assert returned is out, layout
    wide = np.full(tuple(2 * n for n in shape), 7.0, dtype=dtype)
    getattr(lsm, name)(x, axis=axis, out=wide[tuple(slice(None, None, 2) for _ in shape)])
    untouched = np.ones(wide.shape, dtype=bool)
    untouched[tuple(slice(None, None, 2) for _ in shape)] = False
    assert (wide[untouched] == 7.0).all()  # nothing written outside out


LSE_OUT_CASES = [
    ("rows", (6, 70), -1),
    ("columns", (6, 70), 0),
    ("3d-middle", (3, 9, 70), 1),
    ("3d-adjacent", (3, 9, 70), (1, 2)),
    ("3d-separated", (3, 9, 70), (0, 2)),
    ("4d-separated", (3, 4, 5, 6), (1, 3)),
    ("parallel-columns", (170, 200), 0),
    ("parallel-3d", (20, 40, 50), (0, 2)),
]


@pytest.mark.parametrize("keepdims", [False, True], ids=["flat", "keepdims"])
@pytest.mark.parametrize(("shape", "axis"), [c[1:] for c in LSE_OUT_CASES], ids=[c[0] for c in LSE_OUT_CASES])
def test_non_contiguous_out_logsumexp(shape, axis, keepdims):
    x = data(shape, F64, seed=31)
    result_shape = ref_logsumexp(x, axis=axis, keepdims=keepdims).shape
    for layout, out in _out_layouts(result_shape, F64):
        returned = check("logsumexp", x, axis, out=out, keepdims=keepdims)
        assert returned is out, layout
        value, sign = lsm.logsumexp(x, axis=axis, keepdims=keepdims, return_sign=True, out=out)
        assert value is out and np.shape(sign) == result_shape
