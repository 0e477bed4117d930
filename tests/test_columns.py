"""The host's column path (reductions over a strided axis, issue 14) at its own edges.

``lsm/cpu/_forward.py`` cuts every column of the canonical ``(outer, n, inner)`` view into cache
blocks of ``BLOCK_ROWS`` rows, takes each block's ``(m, A, R)`` in one read from memory, and
merges the blocks with the column's true maximum (``_stats.merge_block_stats``); tiles of up to
``COLUMN_STATE_BYTES`` of per-column state go to the threads whole, or, when there are fewer than
``SPLIT_BELOW_TILES`` of them, block by block (the *split* path: statistics, merge, outputs).

These tests put what could go wrong in a merge where it would show: NaN, +inf, -inf, ties and
fully masked columns on both sides of the block and tile boundaries, a maximum that rises in
every block (each block then rescaled by the final maximum), tiny and huge magnitudes, a column
of 2^20 float32 elements whose block contributions are all equal (an uncompensated total drifts),
weights that are zero at infinities or negative with ``return_sign``, ``out=x`` in place, and
the same bits from the serial and parallel drivers, from the split and the per-tile paths and
from one or two Numba threads (in subprocesses), cross-entropy's column tiles included. The host
only: other backends have no such blocks.
"""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from reference import (
    BFLOAT16,
    LONG,
    assert_close,
    assert_scaled_close,
    ref_backward,
    ref_log_softmax,
    ref_logsumexp,
    ref_softmax,
    to_long,
)

import lsm
from lsm.cpu import _forward, _losses
from lsm.cpu._config import PARALLEL_MIN_ELEMENTS
from lsm.cpu._forward import BLOCK_BYTES, BLOCK_ROWS, COLUMN_STATE_BYTES, SPLIT_BELOW_TILES
from lsm.cpu._stats import COLUMN_BLOCK

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
DTYPES = [F16, BFLOAT16, F32, F64]
nan, inf = np.nan, np.inf
N = 3 * BLOCK_ROWS + 5  # three whole blocks and a short one


def tile_width(dtype):
    """The widest tile of the column path for ``dtype``."""
    dtype = np.dtype(dtype)
    state = COLUMN_STATE_BYTES // (8 if dtype == F64 else 4)
    return min(state, BLOCK_BYTES // (BLOCK_ROWS * dtype.itemsize))


def plan(x3):
    """``(tiles, rows, blocks, split)`` of the column path for a canonical 3-d array."""
    bits = x3.view(np.uint16) if x3.dtype.itemsize == 2 else x3
    tiles, rows, blocks = _forward._column_plan(bits)
    return tiles, rows, blocks, bool(_forward._split(bits, tiles, blocks))


def adversarial_columns(dtype, n=N, inner=40, seed=0):
    """An ``(n, inner)`` float64 array (exact in ``dtype``) whose columns put special values at
    the block boundaries; column ``k`` of the list below, the rest random.

    0. NaN in the first row of the second block;  1. +inf in the last row of the first block;
    2. every element -inf;  3. -inf at each block boundary, the rest finite;
    4. rising in every row (the maximum rises in every block, in the last row last);
    5. the maximum 0 once, in the last row, the rest 20 to 30 below (one dominant term, the
       terms below it in blocks of their own maxima);
    6. integers, the maximum tied across blocks;  7. a NaN with its sign bit set at a boundary;
    8. huge magnitudes (a third of the largest value, of both signs);  9. tiny magnitudes;
    10. -inf everywhere but one element in the last block.
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, inner)) * 3
    big = float(np.finfo(np.float32 if dtype == BFLOAT16 else dtype).max) / 3
    x[BLOCK_ROWS, 0] = nan
    x[BLOCK_ROWS - 1, 1] = inf
    x[:, 2] = -inf
    x[BLOCK_ROWS - 1 :: BLOCK_ROWS, 3] = -inf
    x[:, 4] = np.linspace(-4.0, 4.0, n)
    x[:, 5] = -rng.uniform(20.0, 30.0, n)
    x[-1, 5] = 0.0
    x[:, 6] = rng.integers(-6, 3, n)
    x[[5, BLOCK_ROWS + 1, n - 1], 6] = 3.0
    x[2 * BLOCK_ROWS, 7] = np.copysign(nan, -1.0)
    x[:, 8] = rng.choice([-big, big / 2, big], n)
    x[:, 9] = rng.uniform(-1.0, 1.0, n) * 1e-6
    x[:, 10] = -inf
    x[n - 2, 10] = 1.5
    with np.errstate(over="ignore"):
        return x.astype(dtype).astype(np.float64)


def as_dtype(x, dtype):
    with np.errstate(over="ignore"):
        return np.asarray(x).astype(dtype)


def check_all(x, axis, dtype, where=None):
    """log_softmax, softmax and logsumexp of ``x`` (already in ``dtype``) against the references."""
    references = {"log_softmax": ref_log_softmax, "softmax": ref_softmax, "logsumexp": ref_logsumexp}
    for name, ref in references.items():
        got = getattr(lsm, name)(x, axis=axis, where=where)
        assert_close(got, ref(x, axis=axis, where=where), dtype, name)


# --- the split path (few tiles: blocks spread over threads) and the per-tile path --------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_split_path_at_block_boundaries(dtype):
    x = as_dtype(adversarial_columns(dtype), dtype)
    assert plan(x[None])[2:] == (4, True)
    check_all(x, 0, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_per_tile_path_with_several_blocks(dtype):
    """Enough tiles to go round: each thread takes whole tiles, their blocks one after another."""
    outer = SPLIT_BELOW_TILES
    x = np.stack([adversarial_columns(dtype, inner=12, seed=s) for s in range(outer)])
    x = as_dtype(x, dtype)
    assert plan(x)[2:] == (4, False)
    check_all(x, 1, dtype)


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_tile_edges(dtype):
    """Two tiles across ``inner``: the special columns sit on both sides of the edge."""
    width = tile_width(dtype)
    inner = width + 6
    base = adversarial_columns(dtype, n=2 * BLOCK_ROWS + 3, inner=inner, seed=1)
    edge = inner // 2  # the second tile's first column (two near-equal tiles)
    specials = base[:, :11].copy()
    base[:, edge - 11 : edge] = specials
    base[:, edge : edge + 11] = specials[:, ::-1]
    x = as_dtype(base, dtype)
    assert plan(x[None])[0] == 2
    check_all(x, 0, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_masks_at_block_boundaries(dtype):
    """``where``: a fully masked column holding NaN and infinities, masks hiding the special
    values, a column whose only included element is in its last block."""
    x = as_dtype(adversarial_columns(dtype), dtype)
    where = np.random.default_rng(7).random(x.shape) < 0.8
    where[:, 0] = False
    where[BLOCK_ROWS, 11] = False
    x[BLOCK_ROWS, 11] = as_dtype(nan, dtype)
    where[BLOCK_ROWS - 1, 1] = False
    where[:, 12] = False
    where[-1, 12] = True
    where[:, 13] = False
    x[[0, BLOCK_ROWS, 2 * BLOCK_ROWS], 13] = as_dtype([nan, inf, -inf], dtype)
    check_all(x, 0, dtype, where=where)
    assert np.all(lsm.softmax(x, axis=0, where=where)[:, 13] == 0)


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_weights_at_block_boundaries(dtype):
    """``b``: zero weights at +inf, NaN and at a value far above the rest (in another block than
    the true maximum), negative weights, weights that cancel across blocks, with ``return_sign``."""
    x = as_dtype(adversarial_columns(dtype), dtype)
    rng = np.random.default_rng(8)
    b = rng.uniform(0.5, 2.0, x.shape)
    b[BLOCK_ROWS, 0] = 0.0  # the NaN
    b[BLOCK_ROWS - 1, 1] = 0.0  # the +inf
    x[2, 11], b[2, 11] = 1e4 if dtype == F64 else 1e3, 0.0
    b[:, 12] = -b[:, 12]  # a negative sum
    b[: BLOCK_ROWS + 1, 13] = np.where(np.arange(BLOCK_ROWS + 1) % 2 == 0, 1.0, -1.0)
    x[:, 13] = 0.0  # ties that cancel: one element of weight +1 left over in the second block
    b[BLOCK_ROWS + 1 :, 13] = 0.0
    b[:, 14] = 0.0  # nothing included
    for return_sign in (False, True):
        got = lsm.logsumexp(x, axis=0, b=b, return_sign=return_sign)
        reference = ref_logsumexp(x, axis=0, b=b.astype(dtype), return_sign=return_sign)
        if return_sign:
            assert_close(got[0], reference[0], dtype, "logsumexp")
            assert_close(got[1], reference[1], dtype, "sign")
        else:
            assert_close(got, reference, dtype, "logsumexp")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "shape, axis", [((N, 40), 0), ((SPLIT_BELOW_TILES, N, 3), 1)], ids=["split", "tiles"]
)
def test_out_is_x_in_place(dtype, shape, axis):
    rng = np.random.default_rng(9)
    for name, ref in (("log_softmax", ref_log_softmax), ("softmax", ref_softmax)):
        x = as_dtype(rng.standard_normal(shape) * 4, dtype)
        x[(slice(None),) * axis + (BLOCK_ROWS,)] = as_dtype(9.0, dtype)  # a maximum at a boundary
        reference = ref(x, axis=axis)
        result = getattr(lsm, name)(x, axis=axis, out=x)
        assert result is x
        assert_close(x, reference, dtype, name)


# --- the gradients' column path: the same tiles and blocks, sums instead of statistics --------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("log", [True, False], ids=["log_softmax", "softmax"])
@pytest.mark.parametrize(
    "shape, axis", [((N, 40), 0), ((SPLIT_BELOW_TILES, N, 3), 1)], ids=["split", "tiles"]
)
def test_backward_over_blocks(dtype, log, shape, axis):
    """Gradients over several blocks, with a mask hiding NaN and inf in ``grad`` at a block
    boundary and a fully masked column, then in place over ``grad``."""
    rng = np.random.default_rng(13)
    x = as_dtype(rng.standard_normal(shape) * 3, dtype)
    y = lsm.log_softmax(x, axis=axis) if log else lsm.softmax(x, axis=axis)
    grad = as_dtype(rng.standard_normal(shape), dtype)
    where = rng.random(shape) < 0.85
    boundary = (slice(None),) * axis + (BLOCK_ROWS,)
    grad[boundary] = as_dtype(nan, dtype)
    where[boundary] = False
    where[(slice(None),) * (axis + 1) + (1,)] = False  # column 1 of every group: fully masked
    backward = lsm.log_softmax_backward if log else lsm.softmax_backward
    expected, scale = ref_backward(grad, y, axis=axis, where=where, log=log)
    assert_scaled_close(backward(grad, y=y, axis=axis, where=where), expected, scale, dtype)
    grad[boundary] = as_dtype(1.0, dtype)
    expected, scale = ref_backward(grad, y, axis=axis, log=log)
    result = backward(grad, y=y, axis=axis, out=grad)
    assert result is grad
    assert_scaled_close(grad, expected, scale, dtype, what="in place")


def test_backward_serial_and_parallel_agree_bitwise():
    rng = np.random.default_rng(14)
    for dtype in DTYPES:
        for shape, axis in (
            ((5 * BLOCK_ROWS + 9, 70), 0),
            ((SPLIT_BELOW_TILES + 1, 2 * BLOCK_ROWS + 1, 5), 1),
        ):
            y = lsm.log_softmax(as_dtype(rng.standard_normal(shape), dtype), axis=axis)
            grad = as_dtype(rng.standard_normal(shape), dtype)
            parallel = lsm.log_softmax_backward(grad, y=y, axis=axis)
            numba.set_num_threads(1)
            try:
                serial = lsm.log_softmax_backward(grad, y=y, axis=axis)
            finally:
                numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            assert parallel.tobytes() == serial.tobytes(), (dtype, shape)


# --- accuracy over many blocks ------------------------------------------------------------------


def test_max_rising_in_every_block_keeps_the_contract():
    """A float32 column whose maximum rises by a tiny step in every row: a running rescale would
    round once per rise (thousands of times, in the same direction); each block rescaled once by
    the final maximum stays within the contract. Also a column whose terms all sit just below
    their block's maximum and far below the last block's (the dominant term arrives last)."""
    n = 64 * BLOCK_ROWS
    steps = np.arange(n, dtype=np.float64)
    x = np.stack([steps * 2.0**-20, steps * 2.0**-12, -30.0 + steps * 2.0**-20], axis=1).astype(F32)
    x[-1, 2] = 0.0
    check_all(x, 0, F32)


def test_float32_column_of_a_million_needs_the_compensation():
    """2^20 float32 rows, the same pattern in every block but a maximum 1.0 in the last row:
    every block is rescaled by the same factor and adds the same float32 number, so a plain total
    of 2,048 block contributions drifts; the compensated one stays within the contract."""
    rng = np.random.default_rng(10)
    pattern = rng.uniform(-3.0, 0.0, (BLOCK_ROWS, 2)).astype(F32)
    repeats = 2**20 // BLOCK_ROWS
    x = np.tile(pattern, (repeats, 1))
    x[-1] = 1.0
    exact = to_long(pattern)
    last = exact[-1]
    body = repeats * np.exp(exact - 1).sum(axis=0) - np.exp(last - 1) + 1  # exp(1 - 1) for the max
    reference = 1 + np.log(body)
    assert_close(lsm.logsumexp(x, axis=0), reference, F32, "logsumexp")
    got = lsm.log_softmax(x, axis=0)
    assert_close(got[-1], 1 - reference.astype(LONG), F32, "log_softmax at the maximum")


# --- the same bits however the work is spread ---------------------------------------------------


def _bits_of(result):
    return [np.asarray(r).tobytes() for r in (result if isinstance(result, tuple) else (result,))]


def _split_cases():
    """Calls that take the split path (and one the per-tile path), each dtype, the gradients too."""
    rng = np.random.default_rng(11)
    cases = []
    for dtype in DTYPES:
        x = as_dtype(rng.standard_normal((5 * BLOCK_ROWS + 9, 70)) * 3, dtype)
        b = rng.uniform(-0.5, 2.0, x.shape)
        where = rng.random(x.shape) < 0.9
        target = rng.integers(0, x.shape[0], x.shape[1])
        target[::7] = -100  # ignored
        cases += [
            ("log_softmax", x, {"axis": 0}),
            ("softmax", x, {"axis": 0, "where": where}),
            ("logsumexp", x, {"axis": 0, "b": b, "return_sign": True}),
            ("logsumexp", x.reshape(1, *x.shape), {"axis": 1, "where": where[None]}),
            ("softmax_backward", x, {"axis": 0, "y": lsm.softmax(x, axis=0), "where": where}),
            # 70 classes' columns: one tile on one thread, two tiles of 35 on two threads
            ("cross_entropy", x, {"axis": 0, "target": target, "label_smoothing": 0.1, "return_grad": True}),
        ]
    x = rng.standard_normal((SPLIT_BELOW_TILES + 1, 2 * BLOCK_ROWS + 1, 5)).astype(F32)
    cases.append(("log_softmax", x, {"axis": 1}))
    return cases


def test_serial_and_parallel_drivers_agree_bitwise():
    for name, x, kwargs in _split_cases():
        assert x.size >= PARALLEL_MIN_ELEMENTS
        parallel = _bits_of(getattr(lsm, name)(x, **kwargs))
        numba.set_num_threads(1)  # the backend then runs the serial driver
        try:
            serial = _bits_of(getattr(lsm, name)(x, **kwargs))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        assert parallel == serial, (name, x.dtype, x.shape, sorted(kwargs))


def test_the_parallel_drivers_hand_the_helpers_signed_indices():
    """A ``prange`` index can be unsigned; the parallel drivers hand it on as int64, so the serial
    and parallel drivers share each helper's compiled code (an unsigned index compiled every
    helper a second time: 136 of 2,117 cached signatures of a test run)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread: the backend runs the serial drivers only")
    from test_cache import _lsm_dispatchers

    rng = np.random.default_rng(12)
    for x in (rng.standard_normal((64, 700)), rng.standard_normal((2048, 8))):  # long, short rows
        for dtype in (F16, F32):  # float16 rows stage through a buffer per worker
            rows = x.astype(dtype)
            lsm.log_softmax(rows)
            lsm.logsumexp(rows, axis=-1)
            lsm.softmax_backward(rows, lsm.softmax(rows))
            lsm.cross_entropy(rows, rng.integers(0, rows.shape[1], rows.shape[0]), return_grad=True)
    for name, x, kwargs in _split_cases():  # the column paths, split and per tile
        getattr(lsm, name)(x, **kwargs)
    drivers = [d for d in _lsm_dispatchers() if d.py_func.__name__.endswith("_parallel")]
    assert len(drivers) >= 10 and all(d.signatures for d in drivers), [
        d.py_func.__name__ for d in drivers if not d.signatures
    ]
    unsigned = [
        (d.py_func.__qualname__, signature)
        for d in _lsm_dispatchers()
        for signature in d.signatures
        if numba.types.uint64 in signature
    ]
    assert unsigned == []


def _prange_indices_passed_on_raw(source):
    """``(line, call)`` of each call in a ``prange`` loop of ``source`` that receives the loop
    index itself rather than ``np.int64(index)``."""
    found = []
    for loop in ast.walk(ast.parse(source)):
        if not (isinstance(loop, ast.For) and isinstance(loop.iter, ast.Call)):
            continue
        if getattr(loop.iter.func, "id", None) != "prange":
            continue
        for call in ast.walk(loop):
            if not isinstance(call, ast.Call) or ast.unparse(call.func) == "np.int64":
                continue
            arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
            if any(
                isinstance(argument, ast.Name) and argument.id == loop.target.id for argument in arguments
            ):
                found.append((call.lineno, ast.unparse(call)))
    return found


def test_no_prange_index_reaches_a_function_unconverted():
    """The static half of the test above, which sees a helper's signatures only where this
    process typed it (a helper loaded inside its driver's cached code shows none): in every
    ``prange`` loop of the CPU kernels, the loop index reaches a call only as ``np.int64(index)``
    (indexing an array with it is fine)."""
    sources = sorted(Path(_forward.__file__).parent.glob("*.py"))
    loops = sum(path.read_text().count("in prange(") for path in sources)
    raw = {path.name: _prange_indices_passed_on_raw(path.read_text()) for path in sources}
    assert loops >= 15
    assert {name: calls for name, calls in raw.items() if calls} == {}
    # the check itself: a raw index passed on is found
    assert _prange_indices_passed_on_raw("for o in prange(n):\n    helper(x, np.int64(o), f(o))\n") == [
        (2, "f(o)")
    ]


def test_split_and_per_tile_paths_agree_bitwise():
    """One column set alone (one tile: the split path) and repeated over ``SPLIT_BELOW_TILES``
    outer slices (the per-tile path) gives the same bits in every slice."""
    x = np.random.default_rng(12).standard_normal((2 * BLOCK_ROWS + 3, 9)).astype(F32)
    assert plan(x[None])[3] and not plan(np.stack([x] * SPLIT_BELOW_TILES))[3]
    stacked = np.stack([x] * SPLIT_BELOW_TILES)
    for name in ("log_softmax", "softmax", "logsumexp"):
        alone = getattr(lsm, name)(x, axis=0)
        together = getattr(lsm, name)(stacked, axis=1)
        for part in together:
            np.testing.assert_array_equal(part, alone)


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import lsm
    from test_columns import _bits_of, _split_cases
    with open({path!r}, "wb") as handle:
        for name, x, kwargs in _split_cases():
            for chunk in _bits_of(getattr(lsm, name)(x, **kwargs)):
                handle.write(chunk)
    """
)


def test_one_and_two_numba_threads_agree_bitwise(tmp_path):
    outputs = []
    for threads in ("1", "2"):
        path = tmp_path / f"threads-{threads}.bin"
        child = _CHILD.format(tests=os.path.dirname(__file__), path=str(path))
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        command = [sys.executable, "-c", child]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]


def test_loss_tiles_narrow_only_to_feed_the_threads():
    """The loss column kernels take the forward path's tiles, narrowed (to 64 columns at least)
    only when the groups alone leave threads idle; the bits do not depend on it (above)."""

    def tiles(x, threads):
        return _losses._loss_plan(x, threads)[0]

    assert tiles(np.empty((1, 8, 4096), F32), 2) == 4096 // tile_width(F32)  # wide enough already
    assert tiles(np.empty((1, 8, 200), F32), 1) == 1
    assert tiles(np.empty((1, 8, 200), F32), 2) == 2
    assert tiles(np.empty((1, 8, 200), F32), 16) == 4  # no narrower than 64 columns
    assert tiles(np.empty((64, 8, 49), F32), 16) == 1  # 64 groups feed 16 threads


def test_block_rows_are_whole_compensated_blocks():
    """The blocks hold whole ``COLUMN_BLOCK`` sums, so a column's partial sums line up with those
    of the long-group tests (``test_edges``), and a column no longer than a block is summed as
    one block, exactly as before the blocks existed."""
    assert BLOCK_ROWS % COLUMN_BLOCK == 0
    x = np.zeros((1, BLOCK_ROWS, 3), dtype=F32)
    assert plan(x)[2] == 1
    assert plan(np.zeros((1, BLOCK_ROWS + 1, 3), dtype=F32))[2] == 2
