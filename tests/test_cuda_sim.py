"""The CUDA backend's own behaviour, in the CUDA simulator run (``NUMBA_ENABLE_CUDASIM=1``).

The shared test bodies (``backend`` fixture) check the numerical contract on device arrays; the
tests here check what only the GPU path has: which kernel family each shape takes (under the
shrunken tunables of ``conftest.SIM_CONFIG``, so every family runs on tiny inputs), ``out=``,
in-place and scattered outputs, device-side conversions and gathers, the kind of the results,
streams, and the errors of device calls.
"""

import threading

import numba
import numpy as np
import pytest
from numba import cuda as device_code
from reference import (
    assert_close,
    assert_loss_close,
    assert_scaled_close,
    ref_backward,
    ref_cross_entropy,
    ref_log_softmax,
    ref_logsumexp,
    ref_softmax,
)
from test_cuda_paths import PATHS, SHARED_ROWS
from test_losses import make_problem

import lsm
from conftest import same_layout_bytes

pytestmark = pytest.mark.cuda_sim

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)


@pytest.fixture(scope="module")
def cuda():
    from numba import cuda

    return cuda


def device(cuda, array):
    """``array`` on the (simulated) device with its exact layout."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    buffer, start = same_layout_bytes(array)
    first = buffer[start : start + array.dtype.itemsize].view(array.dtype)
    return FakeCUDAArray(np.lib.stride_tricks.as_strided(first, array.shape, array.strides))


def host(array):
    assert type(array).__name__ == "FakeCUDAArray", type(array)
    return array.copy_to_host()


class _Recorded(np.ndarray):
    """A view of a launch's dynamic shared memory that records, for each element, the ``(block,
    warp)`` of every thread that reads or writes it (``touched``, one dict a launch)."""

    def __array_finalize__(self, obj):
        self.touched = getattr(obj, "touched", None)

    def _record(self, index):
        thread = threading.current_thread()
        self.touched.setdefault(int(index), set()).add((thread.blockIdx.x, thread.threadIdx.x // 32))

    def __getitem__(self, index):
        self._record(index)
        return super().__getitem__(index)

    def __setitem__(self, index, value):
        self._record(index)
        super().__setitem__(index, value)


@pytest.fixture
def shared_memory_users(monkeypatch):
    """The ``touched`` dicts of every launch's dynamic shared memory from here on (the simulator
    gives a launch one buffer, which its blocks use one after another)."""
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    launches = []
    array = FakeCUDAShared.array

    def recorded(shared, shape, dtype, alignment=None):
        found = array(shared, shape, dtype, alignment)
        if shape != 0:
            return found
        if not hasattr(shared, "touched"):
            shared.touched = {}
            launches.append(shared.touched)
        view = found.view(_Recorded)
        view.touched = shared.touched
        return view

    monkeypatch.setattr(FakeCUDAShared, "array", recorded)
    return launches


@pytest.mark.parametrize(("shape", "axis", "path"), PATHS)
def test_kernel_choice(shape, axis, path, monkeypatch):
    """The shapes of tests/test_cuda_paths.py take the intended kernel family."""
    from lsm.cuda import _config, _launch

    for name, value in SHARED_ROWS.items():
        monkeypatch.setattr(_config, name, value)

    outer = int(np.prod(shape[: axis % len(shape)]))
    inner = int(np.prod(shape[axis % len(shape) + 1 :]))
    for acc in (numba.float32, numba.float64):
        assert _launch.choose(outer, shape[axis], inner, acc) == path


def test_out_and_in_place(cuda):
    x = np.random.default_rng(1).standard_normal((4, 20)).astype(F32)
    dx = device(cuda, x)
    out = cuda.device_array((4, 20), F32)
    assert lsm.log_softmax(dx, out=out) is out
    assert_close(host(out), ref_log_softmax(x), F32)
    assert lsm.softmax(dx, out=dx) is dx  # in place
    assert_close(host(dx), ref_softmax(x), F32)


def test_out_with_unviewable_strides_is_scattered(cuda):
    """An out= whose strides cannot take the canonical view gets the result through a copy."""
    x = np.random.default_rng(2).standard_normal((3, 4, 5))
    out = device(cuda, np.zeros((5, 4, 3)).transpose(2, 1, 0))  # Fortran-like: axes (0, 2) do not merge
    lsm.log_softmax(device(cuda, x), axis=(0, 2), out=out)
    assert_close(host(out), ref_log_softmax(x, axis=(0, 2)), F64)
    lse_out = device(cuda, np.zeros((4, 3)).T)  # keepdims=False result (3, 4) with swapped strides
    lsm.logsumexp(device(cuda, x), axis=2, out=lse_out)
    assert_close(host(lse_out), ref_logsumexp(x, axis=2), F64)


def test_conversions_and_gathers_stay_on_the_device(cuda):
    rng = np.random.default_rng(3)
    ints = rng.integers(-5, 5, (4, 6))
    got = lsm.softmax(device(cuda, ints))
    assert got.dtype == F64
    assert_close(host(got), ref_softmax(ints.astype(F64)), F64)
    as32 = lsm.logsumexp(device(cuda, ints.astype(F64)), axis=0, dtype=np.float32)
    assert_close(host(as32), ref_logsumexp(ints.astype(F32), axis=0), F32)
    # separated axes of a strided 5-d view: the gather copy merges no axes and loops over two
    x = rng.standard_normal((2, 3, 2, 3, 4))[..., ::2]
    assert_close(
        host(lsm.log_softmax(device(cuda, x), axis=(0, 2, 4))), ref_log_softmax(x, axis=(0, 2, 4)), F64
    )


def test_keepdims_and_0d(cuda):
    x = np.random.default_rng(4).standard_normal((3, 4))
    got = lsm.logsumexp(device(cuda, x), axis=1, keepdims=True)
    assert got.shape == (3, 1)
    assert_close(host(got), ref_logsumexp(x, axis=1, keepdims=True), F64)
    scalar = lsm.logsumexp(device(cuda, x))
    assert scalar.shape == ()  # a 0-d device array, not a host scalar
    assert_close(host(scalar), ref_logsumexp(x), F64)


def test_inputs_are_not_modified(cuda):
    x = np.random.default_rng(6).standard_normal((5, 40)).astype(F16)
    dx = device(cuda, x)
    lsm.log_softmax(dx)
    lsm.logsumexp(dx, axis=0, return_sign=True)
    np.testing.assert_array_equal(host(dx), x)


def test_stream_of_the_input_is_used(cuda):
    from lsm.cuda._kinds import kind_of

    stream = cuda.stream()
    dx = cuda.to_device(np.zeros(4)).bind(stream)
    assert kind_of(dx).stream is stream
    assert host(lsm.softmax(dx)).tolist() == [0.25] * 4


def test_device_call_errors(cuda):
    dx = device(cuda, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="'out' has shape"):
        lsm.softmax(dx, out=cuda.device_array((4, 3)))
    with pytest.raises(TypeError, match="'out' has dtype"):
        lsm.softmax(dx, out=cuda.device_array((3, 4), F32))
    with pytest.raises(ValueError, match="overlaps an input"):
        lsm.logsumexp(dx, axis=1, out=dx[:, 0])
    with pytest.raises(TypeError, match="'where' must be a boolean array"):
        lsm.softmax(dx, where=device(cuda, np.ones((3, 4))))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        lsm.logsumexp(dx, b=device(cuda, np.ones(3)))
    with pytest.raises(TypeError, match="its dtype does not say bfloat16"):
        lsm.softmax(cuda.to_device(np.zeros((3, 4), dtype="V2")))
    with pytest.raises(np.exceptions.AxisError):
        lsm.softmax(dx, axis=2)


SHUFFLE_OFFSETS = (16, 8, 4, 2, 1)


def _shuffles(out):
    """Kernel body: each thread's ``shfl_xor_sync`` of ``10 * threadIdx`` at every offset (the
    simulator swaps its fake module in for ``device_code``, a global bound to ``numba.cuda``)."""
    thread = device_code.threadIdx.x
    for k in range(len(SHUFFLE_OFFSETS)):
        out[thread, k] = device_code.shfl_xor_sync(0xFFFFFFFF, thread * 10, SHUFFLE_OFFSETS[k])


def test_the_simulator_has_a_warp_shuffle(cuda):
    """The simulator runs the warp reductions' real butterfly code through lsm's model of
    ``shfl_xor_sync``: each thread reads the value of the thread whose index differs from its
    own by the offset, within its warp, for every offset, in two warps of one block."""
    import lsm.cuda._numba  # noqa: F401 (installs the model)

    out = cuda.device_array((64, len(SHUFFLE_OFFSETS)), np.int64)
    cuda.jit(_shuffles)[1, 64](out)
    expected = [[(thread ^ offset) * 10 for offset in SHUFFLE_OFFSETS] for thread in range(64)]
    assert host(out).tolist() == expected


def test_stream_handles_mean_what_cupy_and_torch_mean(cuda):
    """0 (CuPy's and torch's null stream) and 1 are the legacy default stream, 2 the per-thread
    one, whatever Numba's own default is; one handle always gives the same stream object (so a
    call never waits for its own stream)."""
    from lsm.cuda import _numba

    assert _numba.stream(0) is _numba.stream(1)
    assert _numba.stream(2) is _numba.stream(2)
    assert _numba.stream(0) is not _numba.stream(2)
    stream = cuda.stream()
    assert _numba.stream(stream) is stream


def _edge_rows(dtype):
    """Rows of 48 (9 of them: neither split nor warp-sized under SIM_CONFIG) with every special
    group of the contract, a mask (one row all out) and weights (infinite where masked out)."""
    rng = np.random.default_rng(19)
    x = (rng.standard_normal((9, 48)) * 3).astype(dtype)
    x[1] = -np.inf
    x[2, 5] = np.nan
    x[3, 7] = np.inf
    x[4, [1, 9]] = np.inf
    x[4, 20] = -np.inf
    x[5] = 2.5
    x[6, ::5] = -np.inf
    where = rng.random(x.shape) < 0.7
    where[7] = False
    where[3, 7] = False  # the row's +inf masked out
    b = rng.uniform(-1, 2, x.shape)
    b[~where] = np.inf  # never read: outside the mask
    b[8, ::3] = 0
    return x, where, b


def _forward_calls(cuda, x, where, b, in_place):
    """The forward calls two row kernels are compared on, by name: log_softmax, softmax and
    logsumexp with and without a mask, logsumexp with weights and the sign, and ``in_place``
    (``lsm.softmax`` or ``lsm.log_softmax``) masked, in place."""

    def in_place_call():
        dx = device(cuda, x)
        in_place(dx, where=device(cuda, where), out=dx)
        return dx

    return {
        "log_softmax": lambda: lsm.log_softmax(device(cuda, x)),
        "softmax": lambda: lsm.softmax(device(cuda, x)),
        "softmax, where": lambda: lsm.softmax(device(cuda, x), where=device(cuda, where)),
        "log_softmax, where": lambda: lsm.log_softmax(device(cuda, x), where=device(cuda, where)),
        "logsumexp": lambda: lsm.logsumexp(device(cuda, x), axis=-1),
        "logsumexp, where": lambda: lsm.logsumexp(device(cuda, x), axis=-1, where=device(cuda, where)),
        "logsumexp, b": lambda: lsm.logsumexp(
            device(cuda, x), axis=-1, b=device(cuda, np.where(where, b, 0))
        ),
        "logsumexp, where, b, sign": lambda: lsm.logsumexp(
            device(cuda, x), axis=-1, where=device(cuda, where), b=device(cuda, b), return_sign=True
        ),
        f"{in_place.__name__}, where, in place": in_place_call,
    }


def _outputs(calls):
    """Every call's results as host arrays, by name (a tuple result part by part)."""
    outputs = {}
    for call, run in calls.items():
        got = run()
        outputs[call] = [host(part) for part in (got if isinstance(got, tuple) else (got,))]
    return outputs


def _assert_bitwise_equal(expected, got):
    for call, parts in expected.items():
        for expected_part, got_part in zip(parts, got[call], strict=True):
            np.testing.assert_array_equal(got_part, expected_part, err_msg=call)


@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_shared_rows_agree_with_block_rows(cuda, monkeypatch, dtype):
    """The shared-memory row kernels (two exact passes over the row kept on chip) and the
    block-per-row kernels (a one-pass summary over global memory) give the same special values
    at the same places and finite values within the contract's tolerance of each other, on every
    special group, with and without a mask and weights, with the sign, and in place."""
    from lsm.cuda import _config, _launch

    x, where, b = _edge_rows(dtype)
    calls = _forward_calls(cuda, x, where, b, lsm.softmax)
    acc = numba.float64 if dtype == F64 else numba.float32
    runs = []
    for limit in (0, 64):  # block per row, then the row in shared memory
        for name in ("SHARED_ROW_MAX", "SHARED_ROW_MAX_FLOAT64"):
            monkeypatch.setattr(_config, name, limit)
        assert _launch.choose(9, 48, 1, acc) == ("shared" if limit else "block")
        runs.append(_outputs(calls))
    block, shared = runs
    for call, parts in block.items():
        for block_part, shared_part in zip(parts, shared[call], strict=True):
            assert_close(shared_part, block_part, dtype, call)
    assert_close(shared["log_softmax"][0], ref_log_softmax(x), dtype)


@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_warp_row_buckets_match_the_largest(cuda, monkeypatch, dtype):
    """The warp-per-row kernels whose lanes take a row in the same packs (16 bytes: 8 float16, 4
    float32 or 2 float64 elements) give the same results bit for bit, in registers (the bucket of
    as many slots as a pack) or in shared memory (16 slots, and the largest bucket: 32 elements a
    lane, 16 for float64), on rows of 48 with every special group, with and without a mask and
    weights, with the sign, and in place: the padding slots that the first kernels add and the
    others skip hold only exact zeros."""
    from lsm.cuda import _config, _forward, _launch

    monkeypatch.setattr(_config, "WARP_ROW_MAX", 1024)
    monkeypatch.setattr(_config, "WARP_ROW_MAX_FLOAT64", 512)
    x, where, b = _edge_rows(dtype)
    acc = numba.float64 if dtype == F64 else numba.float32
    assert _launch.choose(9, 48, 1, acc) == "warp"
    pack = 16 // dtype.itemsize
    assert not _forward.row_in_shared("logsumexp", acc, pack)
    assert all(_forward.row_in_shared(family, acc, 16) for family in ("softmax", "logsumexp"))
    calls = _forward_calls(cuda, x, where, b, lsm.log_softmax)
    runs = []
    for slots in sorted({pack, 16, _launch.per_lane(acc)}):
        monkeypatch.setattr(_launch, "warp_slots", lambda n, slots=slots: slots)
        runs.append(_outputs(calls))
    bucket, *in_shared = runs
    for other in in_shared:
        _assert_bitwise_equal(other, bucket)
    assert_close(bucket["log_softmax"][0], ref_log_softmax(x), dtype)


@pytest.mark.parametrize("n", [300, 600])
@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_warp_rows_kept_in_shared_memory_hold_the_contract(cuda, monkeypatch, shared_memory_users, dtype, n):
    """Rows of 300 and 600 take the warp-per-row kernels that keep a lane's 16 or 32 slots in
    shared memory (float64 rows of 600 take the shared-memory row kernels instead), and the
    backward rows of up to 1024 (512 float64) a warp each, the row in shared memory: four rows of
    a block at once, with a mask, weights and the sign. Each warp keeps to its own stretch of the
    block's shared memory: no element of it is read or written by two warps of a block (the
    simulator runs a block's warps one after another often enough that sharing would go
    unseen in the results)."""
    from lsm.cuda import _config, _forward, _launch

    monkeypatch.setattr(_config, "WARP_ROW_MAX", 1024)
    monkeypatch.setattr(_config, "WARP_ROW_MAX_FLOAT64", 512)
    monkeypatch.setattr(_config, "WARPS_PER_BLOCK", 4)
    acc = numba.float64 if dtype == F64 else numba.float32
    if n <= _launch.per_lane(acc) * 32:
        assert _launch.choose(9, n, 1, acc) == "warp"
        assert _forward.row_in_shared("softmax", acc, _launch.warp_slots(n))
    rng = np.random.default_rng(29)
    x = (rng.standard_normal((9, n)) * 4).astype(dtype)
    x.flat[::7] = -np.inf
    x[2] = -np.inf
    where = rng.random(x.shape) < 0.8
    b = rng.uniform(-1, 2, x.shape)
    assert_close(host(lsm.log_softmax(device(cuda, x))), ref_log_softmax(x), dtype)
    got = host(lsm.softmax(device(cuda, x), where=device(cuda, where)))
    assert_close(got, ref_softmax(x, where=where), dtype)
    assert_close(host(lsm.logsumexp(device(cuda, x), axis=-1)), ref_logsumexp(x, axis=-1), dtype)
    value, sign = lsm.logsumexp(
        device(cuda, x), axis=-1, where=device(cuda, where), b=device(cuda, b), return_sign=True
    )
    weights = b.astype(F64 if dtype == F64 else F32)  # lsm converts b to the accumulation type
    ref_value, ref_sign = ref_logsumexp(x, axis=-1, where=where, b=weights, return_sign=True)
    assert_close(host(value), ref_value, dtype)
    assert_close(host(sign), ref_sign, dtype)
    grad = rng.standard_normal(x.shape).astype(dtype)
    for log, forward in ((True, ref_log_softmax), (False, ref_softmax)):
        y = forward(np.where(np.isinf(x), 0, x)).astype(dtype)
        backward = lsm.log_softmax_backward if log else lsm.softmax_backward
        got = host(backward(device(cuda, grad), device(cuda, y), where=device(cuda, where)))
        expected, scale = ref_backward(grad, y, where=where, log=log)
        assert_scaled_close(got, expected, scale, dtype, what=backward.__name__)
    # the six launches above keep their rows in shared memory, but where the rows are too long
    # for a warp (float64 rows of 600: block rows, longer than the simulator's SHARED_ROW_MAX)
    assert len(shared_memory_users) == (6 if n <= _launch.per_lane(acc) * 32 else 0)
    for touched in shared_memory_users:
        warps = {}
        for users in touched.values():
            for block, warp in users:
                warps.setdefault(block, set()).add(warp)
            blocks = [block for block, _ in users]
            assert len(blocks) == len(set(blocks)), f"shared by two warps of a block: {sorted(users)}"
        assert any(len(used) > 1 for used in warps.values())  # blocks of several warps ran


@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_rows_sharing_a_warp_match_a_warp_per_row(cuda, monkeypatch, dtype):
    """Rows of 7 elements taken 4 to a warp (8 lanes each, segment reductions) give the results
    of one warp per row bit for bit, on every special group, with and without a mask and
    weights, with the sign, and in place: the butterfly's other lanes would only add zeros."""
    from lsm.cuda import _launch

    x, where, b = (a[:, :7] for a in _edge_rows(dtype))
    acc = numba.float64 if dtype == F64 else numba.float32
    assert _launch.choose(9, 7, 1, acc) == "warp" and _launch.row_lanes(7) == 8
    calls = _forward_calls(cuda, x, where, b, lsm.log_softmax)
    runs = []
    for lanes in (8, 32):
        monkeypatch.setattr(_launch, "row_lanes", lambda n, lanes=lanes: lanes)
        runs.append(_outputs(calls))
    shared, whole = runs
    _assert_bitwise_equal(whole, shared)
    assert_close(shared["log_softmax"][0], ref_log_softmax(x), dtype)


@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_shared_backward_rows_match_block_rows(cuda, monkeypatch, dtype):
    """The shared-memory backward kernels, by block and by warp (four a block, each row in its
    warp's stretch of the cache, the last block's warps partly without a row), give
    ``backward_rows``'s results bit for bit (under the simulator's 32-thread blocks a block and a
    warp sum a row alike), with a mask, special values and in place (``out`` is ``grad`` or
    ``y``)."""
    from lsm.cuda import _config

    rng = np.random.default_rng(23)
    grad = rng.standard_normal((5, 30)).astype(dtype)
    grad[1, 3], grad[2, 4] = np.inf, np.nan
    y = np.log(rng.random((5, 30))).astype(dtype)
    y[3, 2] = -np.inf
    where = rng.random(grad.shape) < 0.7
    where[4] = False

    def calls():
        for func in (lsm.log_softmax_backward, lsm.softmax_backward):
            yield func(device(cuda, grad), device(cuda, y))
            yield func(device(cuda, grad), device(cuda, y), where=device(cuda, where))
            for into in ("grad", "y"):
                operands = {"grad": device(cuda, grad), "y": device(cuda, y)}
                yield func(operands["grad"], operands["y"], where=device(cuda, where), out=operands[into])

    results = []
    # block per row, then g (and y) of 30 kept in shared memory, then a warp per row
    for warp_rows, shared_rows in ((16, 0), (16, 64), (32, 0)):
        for name in ("WARP_ROW_MAX", "WARP_ROW_MAX_FLOAT64"):
            monkeypatch.setattr(_config, name, warp_rows)
        for name in ("SHARED_ROW_MAX", "SHARED_ROW_MAX_FLOAT64"):
            monkeypatch.setattr(_config, name, shared_rows)
        monkeypatch.setattr(_config, "WARPS_PER_BLOCK", 4)
        results.append([host(result) for result in calls()])
    block, *others = results
    for other in others:
        for expected, got in zip(block, other, strict=True):
            np.testing.assert_array_equal(got, expected)


def _rising_groups(dtype):
    """Groups whose running maximum rises at (almost) every element: 4096 ascending values 1/1024
    apart, four runs of 1024 ascending values 20 apart (each rise past the rescale gap), and a
    random one, as the columns of a ``(4096, 3)`` array."""
    rng = np.random.default_rng(31)
    steps = np.arange(4096)
    columns = [steps / 1024, (steps % 1024) * 20.0 - 1e4, rng.standard_normal(4096) * 4]
    return np.stack(columns, axis=1).astype(dtype)


@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_one_pass_summaries_stay_accurate_on_rising_groups(cuda, monkeypatch, dtype):
    """The one-pass ``(m, A, R)`` of the column and block-per-row kernels keeps the contract's
    4 eps on groups whose maximum rises at every element. Rescaling the running sum at each rise
    (``_group.RESCALE_GAP = 0``) multiplies it by one rounded factor per rise: the float64
    log_softmax then misses the tolerance on 4096 of these 12288 values; a rescale at most once
    per gap keeps every dtype within it."""
    from lsm.cuda import _config, _launch

    monkeypatch.setattr(_config, "SPLIT_MIN_LENGTH", 10**6)  # three rows of 4096: one block each
    x = _rising_groups(dtype)
    acc = numba.float64 if dtype == F64 else numba.float32
    assert _launch.choose(1, 4096, 3, acc) == "columns" and _launch.choose(3, 4096, 1, acc) == "block"
    weights = np.linspace(0.5, 2, x.size).reshape(x.shape)
    for layout, axis in ((x, 0), (np.ascontiguousarray(x.T), -1)):
        for func, ref in ((lsm.log_softmax, ref_log_softmax), (lsm.softmax, ref_softmax)):
            got = host(func(device(cuda, layout), axis=axis))
            assert_close(got, ref(layout, axis=axis), dtype, func.__name__)
        b = weights if axis == 0 else np.ascontiguousarray(weights.T)
        got = host(lsm.logsumexp(device(cuda, layout), axis=axis, b=device(cuda, b)))
        assert_close(got, ref_logsumexp(layout, axis=axis, b=b), dtype, "logsumexp, b")


@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_column_kernels_hold_the_contract_however_the_columns_are_split(cuda, monkeypatch, dtype):
    """The forward column kernels keep the contract whether each column's 48 elements are
    summarised by one warp or split among 3 or 5 warps (unequal shares) and merged, on every
    special group (the rows of ``_edge_rows`` as columns), with and without a mask and weights,
    with the sign (one negative sum)."""
    from lsm.cuda import _config, _launch

    x, where, b = (np.ascontiguousarray(a.T) for a in _edge_rows(dtype))
    # weights in the accumulation type, of one sign per column (column 6 all negative): a sum
    # whose terms cancel loses accuracy however it is taken, and differently in each order
    weights = np.abs(np.where(where, b, 0)).astype(F64 if dtype == F64 else F32)
    weights[:, 6] *= -1
    expected = [
        ref_log_softmax(x, axis=0),
        ref_softmax(x, axis=0, where=where),
        *ref_logsumexp(x, axis=0, where=where, b=weights, return_sign=True),
    ]
    monkeypatch.setattr(_config, "COLUMN_PART_MIN", 1)
    for parts in (1, 3, 5):
        monkeypatch.setattr(_config, "COLUMN_PARTS", parts)
        assert _launch.column_parts(48) == parts
        lse = lsm.logsumexp(
            device(cuda, x), 0, where=device(cuda, where), b=device(cuda, weights), return_sign=True
        )
        got = [
            host(lsm.log_softmax(device(cuda, x), axis=0)),
            host(lsm.softmax(device(cuda, x), axis=0, where=device(cuda, where))),
            *map(host, lse),
        ]
        for name, value, reference in zip(
            ("log_softmax", "softmax", "lse", "sign"), got, expected, strict=True
        ):
            assert_close(value, reference, dtype, f"{name}, {parts} parts")


@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_backward_columns_hold_the_contract_however_the_columns_are_split(cuda, monkeypatch, dtype):
    """``backward_columns`` gives the reference gradients, with a mask and in place, whether each
    column's 48 elements are summed by one warp or split among 3 or 5 warps (unequal shares)."""
    from lsm.cuda import _config, _launch

    rng = np.random.default_rng(29)
    grad = rng.standard_normal((48, 7)).astype(dtype)
    y = np.log(rng.dirichlet(np.ones(48), 7).T).astype(dtype)  # each column a log-probability
    where = rng.random(grad.shape) < 0.8
    where[:, 3] = False
    monkeypatch.setattr(_config, "COLUMN_PART_MIN", 1)
    for parts in (1, 3, 5):
        monkeypatch.setattr(_config, "COLUMN_PARTS", parts)
        assert _launch.column_parts(48) == parts
        for func, log in ((lsm.log_softmax_backward, True), (lsm.softmax_backward, False)):
            forward = y if log else np.exp(y.astype(F64)).astype(dtype)
            expected, scale = ref_backward(grad, forward, axis=0, where=where, log=log)
            dg, dy = device(cuda, grad), device(cuda, forward)
            got = host(func(dg, dy, axis=0, where=device(cuda, where), out=dg))  # in place
            assert_scaled_close(got, expected, scale, dtype, what=f"{func.__name__}, {parts} parts")
            assert np.all(got[~where] == 0)


@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_cross_entropy_columns_hold_the_contract_however_the_columns_are_split(
    cuda, monkeypatch, dtype, kind
):
    """``cross_entropy_columns`` (class axis 1 of ``(3, 48, 5)``: 15 items of 48 classes) gives
    the reference loss and gradient, with class weights, label smoothing and ignored items,
    the gradient written over the logits, whether each item's classes are taken by one warp or
    split among 3 or 5 warps (unequal shares)."""
    from lsm.cuda import _config, _launch

    options = {"weight": True, "label_smoothing": 0.2, "reduction": "none", "ignore_index": 2}
    logits, target, kwargs = make_problem((3, 48, 5), 1, dtype, kind, options)
    loss, grad, scale = ref_cross_entropy(logits, target, axis=1, **kwargs)
    device_kwargs = {key: device(cuda, value) if key == "weight" else value for key, value in kwargs.items()}
    monkeypatch.setattr(_config, "COLUMN_PART_MIN", 1)
    for parts in (1, 3, 5):
        monkeypatch.setattr(_config, "COLUMN_PARTS", parts)
        assert _launch.column_parts(48) == parts
        dx = device(cuda, logits)
        got_loss, got_grad = lsm.cross_entropy(
            dx, device(cuda, target), axis=1, return_grad=True, grad_out=dx, **device_kwargs
        )
        assert_loss_close(host(got_loss), loss, dtype, f"loss, {parts} parts")
        assert_scaled_close(host(got_grad), grad, scale, dtype, what=f"gradient, {parts} parts")


@pytest.mark.parametrize("n_classes", [6, 20, 48], ids=["segment-per-row", "warp-per-row", "block-per-row"])
@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_cross_entropy_rows_hold_the_contract_by_warp_and_by_block(cuda, monkeypatch, dtype, kind, n_classes):
    """Rows of 6 classes take ``cross_entropy_rows_lanes8`` (8 lanes a row: one block of 4 warps
    takes all 11 rows, its last 5 segments without a row), rows of 20 ``cross_entropy_rows_warp``
    (4 warps a block, 11 rows: the last block's last warp has no row) and rows of 48
    ``cross_entropy_rows`` (under ``WARP_ROW_MAX`` = 32), two blocks striding over the rows; all
    give the reference loss and gradient with class weights, label smoothing and ignored items,
    the gradient written over the logits."""
    from lsm.cuda import _config, _launch, _losses, _numba

    monkeypatch.setattr(_config, "WARPS_PER_BLOCK", 4)
    monkeypatch.setattr(_config, "MAX_BLOCKS", 2)
    launched = []
    launch = _numba.launch

    def recorded(kernel, *args, **options):
        launched.append(kernel.py_func.__name__)
        launch(kernel, *args, **options)

    monkeypatch.setattr(_numba, "launch", recorded)
    options = {"weight": True, "label_smoothing": 0.2, "reduction": "none", "ignore_index": 2}
    logits, target, kwargs = make_problem((11, n_classes), 1, dtype, kind, options)
    loss, grad, scale = ref_cross_entropy(logits, target, axis=1, **kwargs)
    device_kwargs = {key: device(cuda, value) if key == "weight" else value for key, value in kwargs.items()}
    dx = device(cuda, logits)
    got_loss, got_grad = lsm.cross_entropy(
        dx, device(cuda, target), axis=1, return_grad=True, grad_out=dx, **device_kwargs
    )
    lanes = _launch.row_lanes(n_classes) if n_classes <= _config.WARP_ROW_MAX else None
    assert _losses.rows_kernel_name(lanes) in launched
    assert_loss_close(host(got_loss), loss, dtype, "loss")
    assert_scaled_close(host(got_grad), grad, scale, dtype, what="gradient")


@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_cross_entropy_rows_sharing_a_warp_give_a_warp_per_rows_bits(cuda, monkeypatch, dtype, kind):
    """Rows of 3, 5, 9 and 16 classes take 4, 8, 16 and 16 lanes each (several rows a warp): the
    loss and the gradient are those of a whole warp per row bit for bit (class weights, label
    smoothing, an ignored class), as ``_forward.build_summaries``' segments promise."""
    from lsm.cuda import _launch

    row_lanes = _launch.row_lanes
    options = {"weight": True, "label_smoothing": 0.2, "reduction": "none", "ignore_index": 2}
    for n_classes in (3, 5, 9, 16):
        logits, target, kwargs = make_problem((11, n_classes), 1, dtype, kind, options)
        kwargs["weight"] = device(cuda, kwargs["weight"])
        runs = []
        for lanes in (row_lanes(n_classes), 32):
            monkeypatch.setattr(_launch, "row_lanes", lambda n, lanes=lanes: lanes)
            got = lsm.cross_entropy(
                device(cuda, logits), device(cuda, target), axis=1, return_grad=True, **kwargs
            )
            runs.append([host(part) for part in got])
        assert runs[0][0].tobytes() == runs[1][0].tobytes(), f"loss, {n_classes} classes"
        assert runs[0][1].tobytes() == runs[1][1].tobytes(), f"gradient, {n_classes} classes"


@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
def test_one_pass_summaries_do_not_overflow_with_huge_weights(cuda, monkeypatch, dtype):
    """Weights near the top of the accumulation type (1e35 in float32, 1e303 in float64) give the
    finite logsumexp of the reference on the block rows and the columns: every term of a one-pass
    sum stays at most its weight, as in two passes (unscaled terms against a reference up to 16
    below the maximum reach ``w e^16`` and overflow)."""
    from lsm.cuda import _config

    monkeypatch.setattr(_config, "SPLIT_MIN_LENGTH", 10**6)
    # 96 elements (block rows): each thread (and each warp of a column) meets 0, then 15, then 14
    x = np.repeat(np.array([0.0, 15.0, 14.0]), 32).astype(dtype)
    huge = 1e303 if dtype == F64 else 1e35
    weights = np.full(x.shape, huge, F64 if dtype == F64 else F32)
    for layout, b, axis in ((x[None, :], weights[None, :], -1), (x[:, None], weights[:, None], 0)):
        layout, b = np.repeat(layout, 2, axis=1 + axis), np.repeat(b, 2, axis=1 + axis)
        got = host(lsm.logsumexp(device(cuda, layout), axis=axis, b=device(cuda, b)))
        assert_close(got, ref_logsumexp(layout, axis=axis, b=b), dtype, f"axis {axis}")


# --- the simulator's barrier (tests/_simulator.py) -----------------------------------------------


def _rotate(values, rounds, counts):
    """Kernel body: each round, every thread posts its value and takes its right neighbour's
    (``device_code``: see ``_shuffles``); then a ``syncthreads_count`` of the even values."""
    board = device_code.shared.array(64, numba.int64)
    i = device_code.threadIdx.x
    value = values[i]
    for _ in range(rounds):
        board[i] = value
        device_code.syncthreads()
        value = board[(i + 1) % device_code.blockDim.x]  # every post of the round is seen
        device_code.syncthreads()
    values[i] = value
    counts[i] = device_code.syncthreads_count(value % 2 == 0)


def _fail_after_a_barrier(values):
    device_code.syncthreads()
    if device_code.threadIdx.x == 7:
        values[99] = 1  # out of range: an IndexError in thread 7 while the others wait
    device_code.syncthreads()


def test_the_simulator_blocks_wait_at_barriers_instead_of_polling(cuda):
    """The test suite's barrier is installed (a numba-cuda whose simulator it no longer fits runs
    the stock, polling one: this fails to say so), threads exchange values across barriers as on
    a GPU, and a thread's exception ends the launch with that exception, not a hang."""
    from numba.cuda.simulator import kernel

    from conftest import SIMULATOR_WAITS

    assert SIMULATOR_WAITS and kernel.BlockManager.waits_instead_of_polling
    values = np.arange(64, dtype=np.int64)
    counts = np.zeros(64, dtype=np.int64)
    cuda.jit(_rotate)[1, 64](values, 5, counts)
    assert (values == (np.arange(64) + 5) % 64).all() and (counts == 32).all()
    with pytest.raises(IndexError, match=r"tid=\[7, 0, 0\]"):
        cuda.jit(_fail_after_a_barrier)[1, 32](np.zeros(32))
