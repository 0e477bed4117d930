"""Vector loads (``lsm/cuda/_runs.py``) in the simulator run: which arrays the kernels read in
16-byte runs, and that reading them so changes no bit of any result.

Every kernel pass that loads runs is run twice on the same numbers: once from rows that start on
16-byte boundaries (runs taken, counted through the kernels' ``load_run``) and once from a copy
shifted by one element (no run can be aligned: every element read alone). The results must be
the same bits, NaN, infinities, masks, a partial last run and in-place outputs included. That
the runs compile to vector instructions is ``tests/test_cuda_resources.py``'s part.
"""

import ml_dtypes
import numba
import numpy as np
import pytest

import lsm
from lsm.cuda import _backward, _forward, _launch, _losses

pytestmark = pytest.mark.cuda_sim

DTYPES = [np.dtype(t) for t in (np.float16, ml_dtypes.bfloat16, np.float32, np.float64)]
RUN_BYTES = 16


@pytest.fixture
def runs(monkeypatch):
    """The number of runs the kernels load, as a list that grows by one a run."""
    loaded = []
    for module in (_forward, _backward, _losses):
        original = module.load_run

        def load_run(array, row, j, original=original):
            loaded.append(j)
            return original(array, row, j)

        monkeypatch.setattr(module, "load_run", load_run)
    return loaded


def on_device(values, shift):
    """``values`` (2-d) as a simulated device array whose rows start ``shift`` elements after a
    16-byte boundary, ``pitch`` elements apart (the row length rounded up to 16 bytes)."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    rows, n = values.shape
    itemsize = values.dtype.itemsize
    pitch = -(-n * itemsize // RUN_BYTES) * RUN_BYTES // itemsize
    buffer = np.zeros(rows * pitch + RUN_BYTES, values.dtype)
    start = (-buffer.ctypes.data % RUN_BYTES) // itemsize + shift
    view = buffer[start : start + rows * pitch].reshape(rows, pitch)[:, :n]
    view[...] = values
    return FakeCUDAArray(view)


def logits(shape, dtype):
    """Random logits with the special values: -inf here and there, a row with NaN, a row with
    +inf, a row of -inf."""
    x = np.random.default_rng(3).standard_normal(shape) * 4
    x.flat[::7] = -np.inf
    x[0, 3], x[1, 5], x[2] = np.nan, np.inf, -np.inf
    return x.astype(dtype)


def bits(array):
    host = array.copy_to_host() if hasattr(array, "copy_to_host") else np.asarray(array)
    return host.view(np.uint8)


def path_of(shape, dtype):
    """The kernel family of rows of ``shape`` (the simulator run's tunables)."""
    return _launch.choose(shape[0], shape[1], 1, numba.float64 if dtype == np.float64 else numba.float32)


# name, call on (x, where), shape, the kernel family it must take; the rows leave a partial last
# run in every dtype (their lengths are odd)
CALLS = {
    "log_softmax shared": (lambda x, where: lsm.log_softmax(x, where=where), (4, 37), "shared"),
    "softmax shared": (lambda x, where: lsm.softmax(x), (4, 37), "shared"),
    "logsumexp shared": (lambda x, where: lsm.logsumexp(x, axis=-1, where=where), (4, 37), "shared"),
    "softmax block": (lambda x, where: lsm.softmax(x, where=where), (8, 67), "block"),
    # the one-pass summaries: a thread sums the same runs whatever the layout
    "logsumexp block": (lambda x, where: lsm.logsumexp(x, axis=-1, where=where), (8, 67), "block"),
    "logsumexp block, weights": (lambda x, where: lsm.logsumexp(x, axis=-1, b=where), (8, 67), "block"),
    "log_softmax split": (lambda x, where: lsm.log_softmax(x), (4, 41), "split"),
    "logsumexp split": (lambda x, where: lsm.logsumexp(x, axis=-1, where=where), (4, 41), "split"),
    # rows of one warp each (under WARP_TUNABLES): a lane takes the row in packs of a run
    # whatever the layout; 157 elements take 8 slots a lane (registers: a pack of 8 float16, 4
    # float32, 2 float64 elements), 300 take 16 (shared memory)
    "log_softmax warp": (lambda x, where: lsm.log_softmax(x, where=where), (6, 157), "warp"),
    "logsumexp warp, weights": (lambda x, where: lsm.logsumexp(x, axis=-1, b=where), (6, 157), "warp"),
    "softmax warp, shared memory": (lambda x, where: lsm.softmax(x, where=where), (6, 300), "warp"),
    "logsumexp warp, shared memory": (
        lambda x, where: lsm.logsumexp(x, axis=-1, where=where),
        (6, 300),
        "warp",
    ),
}
# the warp path for rows up to 1024 (512 float64), four rows a block
WARP_TUNABLES = {"WARP_ROW_MAX": 1024, "WARP_ROW_MAX_FLOAT64": 512, "WARPS_PER_BLOCK": 4}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CALLS))
def test_forward_runs_change_no_bit(name, dtype, runs, monkeypatch):
    from lsm.cuda import _config

    call, shape, path = CALLS[name]
    for setting, value in (WARP_TUNABLES if path == "warp" else {}).items():
        monkeypatch.setattr(_config, setting, value)
    assert path_of(shape, dtype) == path
    x = logits(shape, dtype)
    where = np.random.default_rng(4).random(shape) < 0.8
    aligned = call(on_device(x, 0), on_device(where, 0))
    assert runs, "the aligned rows were not read in runs"
    runs.clear()
    shifted = call(on_device(x, 1), on_device(where, 0))
    assert not runs, "rows off a 16-byte boundary were read in runs"
    assert np.array_equal(bits(aligned), bits(shifted))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_softmax_in_place_over_runs(dtype, runs):
    x = logits((4, 37), dtype)
    expected = lsm.softmax(on_device(x, 1))
    dx = on_device(x, 0)
    assert lsm.softmax(dx, out=dx) is dx
    assert runs
    assert np.array_equal(bits(dx), bits(expected))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("shape", "log"), [((2, 29), True), ((2, 37), True), ((2, 29), False), ((2, 67), True), ((2, 67), False)]
)
def test_backward_runs_change_no_bit(shape, log, dtype, runs):
    """Rows of a warp each, kept in the warp's shared memory (29, under the simulator's
    ``WARP_ROW_MAX`` of 32), rows of a block kept in shared memory (37 for log_softmax; softmax
    keeps y too, so no row is both too long for a warp and short enough here) and longer."""
    rng = np.random.default_rng(6)
    grad, y = rng.standard_normal(shape).astype(dtype), -rng.random(shape).astype(dtype)
    if not log:
        y = np.exp(y.astype(np.float64)).astype(dtype)
    where = rng.random(shape) < 0.8
    backward = lsm.log_softmax_backward if log else lsm.softmax_backward

    def call(shift, in_place):
        dgrad, dy = on_device(grad, shift), on_device(y, shift)
        out = dgrad if in_place else None
        return backward(dgrad, dy, where=on_device(where, 0), out=out)

    aligned = call(0, False)
    assert runs
    runs.clear()
    shifted = call(1, False)
    assert not runs
    assert np.array_equal(bits(aligned), bits(shifted))
    assert np.array_equal(bits(call(0, True)), bits(shifted))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("return_grad", [True, False], ids=["gradient", "loss"])
def test_cross_entropy_runs_change_no_bit(return_grad, dtype, runs):
    """The loss's one-pass summary and the gradient pass (block rows)."""
    x = logits((4, 37), dtype)
    x[:3] = 0  # no NaN or infinity: every row has a gradient
    target = np.array([5, -100, 36, 0])  # -100: ignored

    def call(shift):
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        device_target = FakeCUDAArray(target)
        results = lsm.cross_entropy(
            on_device(x, shift), device_target, reduction="none", return_grad=return_grad
        )
        return [bits(result) for result in (results if return_grad else (results,))]

    aligned = call(0)
    assert runs
    runs.clear()
    shifted = call(1)
    assert not runs
    assert all(np.array_equal(a, b) for a, b in zip(aligned, shifted, strict=True))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("log", [True, False])
def test_backward_rows_in_shared_memory_match_rows_read_twice(log, dtype, monkeypatch):
    """``backward_rows_shared`` copies the row in runs and then sums it in ``backward_rows``'
    order: the two kernels give the same bits."""
    from lsm.cuda import _config

    rng = np.random.default_rng(8)
    shape = (2, 125)  # 3 or 4 elements a thread (blocks of 32 threads in the simulator run)
    grad, y = rng.standard_normal(shape).astype(dtype), (-rng.random(shape)).astype(dtype)
    where = on_device(rng.random(shape) < 0.8, 0)
    backward = lsm.log_softmax_backward if log else lsm.softmax_backward
    results = []
    for limit in (256, 0):  # the row in shared memory, then read twice from global memory
        for name in ("SHARED_ROW_MAX", "SHARED_ROW_MAX_FLOAT64"):
            monkeypatch.setattr(_config, name, limit)
        results.append(bits(backward(on_device(grad, 0), on_device(y, 0), where=where)))
    assert np.array_equal(*results)
