"""log_softmax, softmax and logsumexp over memory layouts and axis combinations.

Every call reaches the kernels as a canonical ``(outer, n, inner)`` view: the row kernel when
``inner == 1``, the column kernel (tiles of 64 columns) otherwise, each serial below
``PARALLEL_MIN_ELEMENTS`` elements and parallel above. These tests drive each path through C
and Fortran order, every axis, tuples of axes, broadcast (zero-stride) inputs, strides that
cannot merge and non-contiguous ``out=`` arrays, and compare with the long double references.
A NaN, a +inf and a -inf are planted in single groups so that a group mapped to the wrong place
shows up.

Every test but one runs on each backend (tests/conftest.py); the host runs every case, the
other backends a core of each matrix. The matrices run on the backends of ``sweep_backend`` (the
Dask cluster computes the graphs of ``dask-halves``); cases over the simulator's element budget
are ``heavy``; the bulk of each matrix (softmax beside log_softmax, second dtypes, Fortran order,
negative axes, more axes, shapes and layouts of the same kind, the host's tile and chunk edges
and parallel sizes) is ``heavy(dask=True)``: off the simulator, whose calls take a large
fraction of a second, and off Dask, whose blocks reach the host kernels that the ``cpu`` backend
runs these cases on. bfloat16 cases are deselected on CuPy, which has no bfloat16; Dask skips
the ``out=`` tests.
"""

import subprocess
import sys

import numba
import numpy as np
import pytest
from adversarial import BFLOAT16
from reference import assert_close, ref_log_softmax, ref_logsumexp, ref_softmax

import lsm
from lsm.cpu._config import PARALLEL_MIN_ELEMENTS
from lsm.cpu._forward import SHORT_ROW, chunk_rows

nan, inf = np.nan, np.inf
F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
REFERENCES = {"log_softmax": ref_log_softmax, "softmax": ref_softmax, "logsumexp": ref_logsumexp}
ALL_FLOATS = [F16, BFLOAT16, F32, F64]
ALL_FLOAT_IDS = ["float16", "bfloat16", "float32", "float64"]
BULK = pytest.mark.heavy(dask=True)


def oversize(*values, **kwargs):
    """A case over the simulator's element budget (Dask runs it)."""
    return pytest.param(*values, marks=pytest.mark.heavy, **kwargs)


def bulk(*values, **kwargs):
    """A case of a matrix's bulk: the host runs it, the simulator and Dask run the core."""
    return pytest.param(*values, marks=BULK, **kwargs)


NAMES = ["log_softmax", bulk("softmax"), "logsumexp"]  # softmax shares log_softmax's paths


def data(shape, dtype=F64, seed=0, order="C", plant=True):
    """Random data of ``shape`` (order ``order``), with a NaN, a +inf and a -inf in single places."""
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape) * 4, order=order)
    if plant and x.size >= 3:
        flat = x.reshape(-1, order="A")  # a view: writes reach x
        nan_at, inf_at, neginf_at = rng.choice(x.size, 3, replace=False)
        flat[nan_at], flat[inf_at], flat[neginf_at] = nan, inf, -inf
    return x.astype(dtype, order="K")


def check(backend, name, x, axis, **kwargs):
    """Run ``<name>`` on ``backend`` and compare with its reference (``x`` converted to the result
    dtype; ``x`` may be a NumPy array or one already on the backend)."""
    got = getattr(backend, name)(x, axis=axis, **kwargs)
    x = backend.to_numpy(x) if not isinstance(x, np.ndarray) else x
    dtype = F64 if x.dtype.kind in "biu" else x.dtype
    kwargs.pop("out", None)
    want = REFERENCES[name](x.astype(dtype), axis=axis, **kwargs)
    if kwargs.get("return_sign"):
        assert_close(got[0], want[0], dtype, f"{name} axis={axis} value")
        assert_close(got[1], want[1], dtype, f"{name} axis={axis} sign")
    else:
        assert_close(got, want, dtype, f"{name} axis={axis}")


def axis_id(axis):
    if axis is None:
        return "None"
    return "".join(f"{a:+d}" for a in np.atleast_1d(axis))


# --- every single axis, C and Fortran order -----------------------------------------------------

SINGLE_AXES = [  # the core: every axis of the 4-d shape
    pytest.param(
        shape, axis, id=f"{len(shape)}d-axis{axis:+d}", marks=[] if len(shape) == 4 and axis >= 0 else BULK
    )
    for shape in ((5, 6, 7), (3, 4, 5, 6))
    for axis in (*range(len(shape)), *range(-1, -len(shape) - 1, -1))
]
ORDERS = ["C", bulk("F")]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("shape", "axis"), SINGLE_AXES)
@pytest.mark.parametrize("dtype", [bulk(F32, id="float32"), F64], ids=["float32", "float64"])
def test_every_axis(sweep_backend, name, order, shape, axis, dtype):
    x = data(shape, dtype, seed=len(shape) * 10 + axis, order=order)
    assert x.flags[f"{order}_CONTIGUOUS"]
    check(sweep_backend, name, x, axis)
    if name == "logsumexp":
        check(sweep_backend, name, x, axis, keepdims=True)


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
CORE_TUPLES = [((3, 4, 5, 6), (1, 3)), ((3, 4, 5, 6), (3, 1, 0)), ((5, 6, 7), None)]
TUPLE_CASES = [
    pytest.param(s, a, id=f"{len(s)}d-axis{axis_id(a)}", marks=[] if (s, a) in CORE_TUPLES else BULK)
    for s, a in TUPLES
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("shape", "axis"), TUPLE_CASES)
def test_tuple_axes(sweep_backend, name, order, shape, axis):
    x = data(shape, F64, seed=sum(shape), order=order)
    check(sweep_backend, name, x, axis)
    if name == "logsumexp":
        check(sweep_backend, name, x, axis, keepdims=True)
        where = np.random.default_rng(1).random(shape) < 0.8
        b = np.random.default_rng(2).uniform(0.5, 2.0, shape)
        check(sweep_backend, name, x, axis, where=where, b=b)
    else:
        check(sweep_backend, name, x, axis, where=np.random.default_rng(1).random(shape) < 0.8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [F16, BFLOAT16, bulk(F32)], ids=["float16", "bfloat16", "float32"])
def test_tuple_axes_half_and_single_precision(backend, name, dtype):
    x = data((3, 4, 5, 6), dtype, seed=5)
    for axis in ((1, 2), (0, 2), (1, 3), None):
        check(backend, name, x, axis)


# --- broadcast (zero-stride) inputs -------------------------------------------------------------

BROADCASTS = {
    "row-to-matrix": (lambda: np.broadcast_to(data((70,), plant=False), (9, 70))),
    "column-to-matrix": (lambda: np.broadcast_to(data((9, 1), plant=False), (9, 70))),
    "scalar-to-matrix": (lambda: np.broadcast_to(np.float64(1.5), (9, 13))),
    "middle-axis-3d": (lambda: np.broadcast_to(data((4, 1, 90), plant=False), (4, 30, 90))),
    "planted-row": (lambda: np.broadcast_to(np.array([1.0, nan, -inf, 2.0]), (6, 4))),
}
BROADCAST_KINDS = [  # the core: a zero stride on either axis
    "row-to-matrix",
    "column-to-matrix",
    *(bulk(kind) for kind in ("scalar-to-matrix", "middle-axis-3d", "planted-row")),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", BROADCAST_KINDS)
def test_broadcast_inputs(sweep_backend, name, kind):
    x = BROADCASTS[kind]()
    assert 0 in x.strides and not x.flags.writeable
    for axis in range(-x.ndim, 0):
        check(sweep_backend, name, x, axis)
    check(sweep_backend, name, x, None)


def test_broadcast_where_and_b(backend):
    x = data((8, 100), plant=False)
    where = np.broadcast_to(np.arange(100) % 3 != 0, x.shape)
    b = np.broadcast_to(np.linspace(0.5, 1.5, 8)[:, None], x.shape)
    for axis in (0, 1, None):
        check(backend, "logsumexp", x, axis, where=where, b=b)
        check(backend, "softmax", x, axis, where=where)


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


# each case is one gather (a copy) of the input, which log_softmax and logsumexp share
@pytest.mark.parametrize("name", ["log_softmax", bulk("softmax"), bulk("logsumexp")])
@pytest.mark.parametrize("case", list(UNMERGEABLE))
def test_strides_that_cannot_merge(sweep_backend, name, case):
    make, axis = UNMERGEABLE[case]
    before = make()
    x = sweep_backend.move(before.copy())
    check(sweep_backend, name, x, axis)
    if name == "logsumexp":
        check(sweep_backend, name, x, axis, keepdims=True, return_sign=True)
    np.testing.assert_array_equal(sweep_backend.to_numpy(x), before)  # never written through the view


# --- the column kernel: more than 64 columns, not a multiple of 64 ------------------------------

COLUMN_SHAPES = [  # the core: one tile and a part, two tiles and a part (the 4-d cases of
    # test_every_axis put the column kernel to 3-d inputs)
    pytest.param(shape, id="x".join(map(str, shape)), marks=[] if shape in ((7, 65), (9, 130)) else BULK)
    for shape in [(7, 65), (5, 100), (9, 130), (3, 200), (33, 257), (2, 7, 129), (3, 40, 70)]
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", COLUMN_SHAPES)
@pytest.mark.parametrize(
    "dtype",
    [F16, *(bulk(dtype) for dtype in (BFLOAT16, F32, F64))],
    ids=ALL_FLOAT_IDS,
)
def test_column_tiles(sweep_backend, name, shape, dtype):
    x = data(shape, F64, seed=shape[-1])
    inner = shape[-1]
    for column in (0, 63, 64, 127, 128, inner - 1):  # specials at the tile boundaries
        if column < inner:
            x[..., 1, column] = [nan, inf, -inf, 100.0][column % 4]
    x = x.astype(dtype)
    axis = -2  # the reduced axis is strided; the inner axis is contiguous
    check(sweep_backend, name, x, axis)
    where = np.random.default_rng(3).random(shape) < 0.7
    where[..., :, 5 % inner] = False  # one fully masked column
    check(sweep_backend, name, x, axis, where=where)


# --- the short-row kernel: rows of up to SHORT_ROW elements, in chunks of rows --------------------

SHORT_ROW_SHAPES = [  # the core: the shape with fewer rows than a chunk
    pytest.param(shape, id="x".join(map(str, shape)), marks=[] if shape == (7, 5) else BULK)
    for shape in [(5000, 1), (3000, 3), (600, 31), (300, SHORT_ROW), (200, SHORT_ROW + 1), (7, 5)]
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", SHORT_ROW_SHAPES)
@pytest.mark.parametrize("dtype", [F16, *(bulk(dtype) for dtype in ALL_FLOATS[1:])], ids=ALL_FLOAT_IDS)
def test_short_rows(sweep_backend, name, shape, dtype):
    x = data(shape, F64, seed=shape[-1])
    rows_per_chunk = chunk_rows(*shape, numba.get_num_threads())
    for row in (0, rows_per_chunk - 1, rows_per_chunk, shape[0] - 1):  # specials at chunk edges
        if row < shape[0]:
            x[row, row % shape[1]] = [nan, inf, -inf, 100.0][row % 4]
    x = x.astype(dtype)
    check(sweep_backend, name, x, -1)
    where = np.random.default_rng(6).random(shape) < 0.7
    where[min(rows_per_chunk, shape[0] - 1)] = False  # one fully masked row
    check(sweep_backend, name, x, -1, where=where)
    if name == "logsumexp":
        b = np.random.default_rng(7).uniform(0.5, 2.0, shape)
        check(sweep_backend, name, x, -1, b=b, keepdims=True)


# --- large inputs: the parallel kernels ---------------------------------------------------------

PARALLEL = [  # Dask runs the first: its blocks share the host's threads (lsm.dask)
    oversize((300, 200), -1, id="rows"),
    bulk((200, 300), 0, id="columns"),
    bulk((4, 100, 130), 1, id="columns-3d"),
    bulk((40_000,), 0, id="one-long-row"),
    bulk((40_000, 1), 0, id="one-long-column"),
    bulk((2, 20_000), 0, id="few-wide-columns"),
    bulk((40, 30, 50), (1, 2), id="tuple-adjacent"),
    bulk((40, 30, 50), (0, 2), id="tuple-separated"),
    bulk((40, 30, 50), None, id="all"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("shape", "axis"), PARALLEL)
def test_parallel_sizes(sweep_backend, name, shape, axis):
    x = data(shape, F64, seed=17)
    assert x.size > PARALLEL_MIN_ELEMENTS
    check(sweep_backend, name, x, axis)
    check(sweep_backend, name, x.astype(F32), axis)
    check(sweep_backend, name, np.asfortranarray(x), axis)
    where = np.random.default_rng(4).random(shape) < 0.9
    check(sweep_backend, name, x, axis, where=where)
    if name == "logsumexp":
        b = np.random.default_rng(5).uniform(0.5, 2.0, shape)
        check(sweep_backend, name, x, axis, b=b, keepdims=True)


@pytest.mark.heavy
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [F16, BFLOAT16], ids=["float16", "bfloat16"])
def test_parallel_sizes_half_precision(sweep_backend, name, dtype):
    x = data((200, 300), dtype, seed=19)
    check(sweep_backend, name, x, -1)
    check(sweep_backend, name, x, 0)


def test_parallel_and_serial_agree_bitwise():
    """Splitting work over threads must not change any result (each group is summed by one thread).

    The host only: this compares the CPU's parallel and serial kernels, which no other backend has
    (Dask splits groups across chunks, and promises no bitwise agreement between chunkings).
    """
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


# Dask skips these (no out=); the simulator runs the core (rows and columns; its element budget
# holds 2-d cases only, with the wide buffer of 2 ** ndim times the elements of out)
OUT_CASES = [
    pytest.param((6, 70), -1, id="rows"),
    pytest.param((6, 70), 0, id="columns"),
    bulk((3, 9, 70), 1, id="3d-middle"),
    bulk((3, 9, 70), (0, 2), id="3d-separated"),
    bulk((3, 9, 70), None, id="3d-all"),
    bulk((200, 170), -1, id="parallel-rows"),
    bulk((170, 200), 0, id="parallel-columns"),
]


@pytest.mark.parametrize("name", ["log_softmax", bulk("softmax")])
@pytest.mark.parametrize(("shape", "axis"), OUT_CASES)
@pytest.mark.parametrize("dtype", [bulk(F16), F32, bulk(F64)], ids=["float16", "float32", "float64"])
def test_non_contiguous_out_softmax(backend, name, shape, axis, dtype):
    x = data(shape, dtype, seed=29)
    for _, out in _out_layouts(shape, dtype):
        assert not out.flags.c_contiguous
        check(backend, name, x, axis, out=out)  # the backend checks that out is returned
    every_other = tuple(slice(None, None, 2) for _ in shape)
    wide = backend.move(np.full(tuple(2 * n for n in shape), 7.0, dtype=dtype))
    getattr(backend, name)(x, axis=axis, out=wide[every_other])
    untouched = np.ones(wide.shape, dtype=bool)
    untouched[every_other] = False
    assert (backend.to_numpy(wide)[untouched] == 7.0).all()  # nothing written outside out


LSE_OUT_CASES = [
    pytest.param((6, 70), -1, id="rows"),
    bulk((6, 70), 0, id="columns"),
    bulk((3, 9, 70), 1, id="3d-middle"),
    bulk((3, 9, 70), (1, 2), id="3d-adjacent"),
    bulk((3, 9, 70), (0, 2), id="3d-separated"),
    pytest.param((3, 4, 5, 6), (1, 3), id="4d-separated"),
    bulk((170, 200), 0, id="parallel-columns"),
    bulk((20, 40, 50), (0, 2), id="parallel-3d"),
]


@pytest.mark.parametrize("keepdims", [False, bulk(True)], ids=["flat", "keepdims"])
@pytest.mark.parametrize(("shape", "axis"), LSE_OUT_CASES)
def test_non_contiguous_out_logsumexp(backend, shape, axis, keepdims):
    x = data(shape, F64, seed=31)
    result_shape = ref_logsumexp(x, axis=axis, keepdims=keepdims).shape
    for _, out in _out_layouts(result_shape, F64):
        # the backend checks that out is returned (as the value, with return_sign)
        check(backend, "logsumexp", x, axis, out=out, keepdims=keepdims)
        _, sign = backend.logsumexp(x, axis=axis, keepdims=keepdims, return_sign=True, out=out)
        assert np.shape(sign) == result_shape


_STRIDED_CALLS = """
import numpy as np
import lsm
from lsm.cpu import _backward, _forward, _losses

rng = np.random.default_rng(41)
x = rng.standard_normal((40, 400)).astype(np.float32)[:, ::2]  # gapped rows
grad = rng.standard_normal((40, 200)).astype(np.float32)[::-1]  # reversed rows
out = np.empty((40, 400), np.float32)[:, ::2]
y = lsm.log_softmax(x, axis=-1, out=out)
lsm.softmax(x, axis=0, out=np.empty((200, 40), np.float32).T)  # Fortran-ordered
lsm.logsumexp(x, axis=-1), lsm.logsumexp(x, axis=0, b=np.ones((40, 200)))
lsm.log_softmax_backward(grad, y=y, axis=-1, out=out)
lsm.softmax_backward(grad, y=y, axis=0)
lsm.cross_entropy(x, np.arange(40) % 200, axis=-1, return_grad=True)
drivers = ("_serial", "_parallel", "_split")
for module in (_forward, _backward, _losses):
    for name in dir(module):
        if name.endswith(drivers) and not name.startswith("_"):
            for signature in getattr(module, name).signatures:
                data = [t for i, t in enumerate(signature) if getattr(t, "ndim", 0) and (i == 0 or t.mutable)]
                assert all(t.layout == "C" for t in data), (name, signature)
print("checked")
"""


def test_strided_operands_compile_nothing_new():
    """The host kernels are compiled for C-contiguous data only (``_backend._c_order``): in a
    fresh process, calls on gapped and reversed inputs, into strided ``out=`` arrays, compile
    every kernel's input and outputs as C-contiguous arrays; and the calls give the bits of the
    same calls on contiguous copies."""
    done = subprocess.run([sys.executable, "-c", _STRIDED_CALLS], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "checked" in done.stdout, done.stderr[-3000:]
    rng = np.random.default_rng(41)
    x = rng.standard_normal((40, 200)).astype(F32)
    gapped = np.repeat(x, 2, axis=1)[:, ::2]
    strided_out = np.empty((40, 400), F32)[:, ::2]
    assert lsm.log_softmax(gapped, out=strided_out).tobytes() == lsm.log_softmax(x).tobytes()
    assert lsm.softmax(gapped, axis=0).tobytes() == lsm.softmax(x, axis=0).tobytes()
    assert lsm.logsumexp(x[::-1], axis=-1).tobytes() == lsm.logsumexp(x, axis=-1)[::-1].tobytes()
