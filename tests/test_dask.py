"""Dask arrays: graph shapes, any chunking against the in-memory results, errors, threads.

The shared test bodies (test_contract.py) already run on Dask arrays through the ``dask-*``
backends of conftest.py, including a two-process ``dask.distributed`` cluster; this module covers
what is particular to Dask.
"""

import os
import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lsm

da = pytest.importorskip("dask.array")
from reference import assert_close, ref_log_softmax, ref_logsumexp, ref_softmax  # noqa: E402

from lsm.dask import _blocks  # noqa: E402

FUNCS = ("log_softmax", "softmax")


def _task_count(array):
    return len(array.__dask_graph__())


def _random(shape, dtype=np.float64, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 20).astype(dtype)


# --- graph shapes ---------------------------------------------------------------------------


@pytest.mark.parametrize("func", FUNCS)
def test_whole_axis_is_one_task_per_block(func):
    x = da.from_array(_random((40, 30)), chunks=(10, 30))
    result = getattr(lsm, func)(x, axis=1)
    assert result.chunks == x.chunks
    assert _task_count(result) == _task_count(x) + x.npartitions


def test_logsumexp_whole_axis_is_one_task_per_block_and_a_view():
    x = da.from_array(_random((40, 30)), chunks=(10, 30))
    result = lsm.logsumexp(x, axis=1)
    assert result.chunks == ((10, 10, 10, 10),)
    # the block tasks, then cheap per-block unpacking (real part, NaN for negative sums, cast)
    assert _task_count(result) <= _task_count(x) + 5 * x.npartitions


@pytest.mark.parametrize("func", FUNCS)
def test_split_axis_never_gathers_the_axis(func):
    x = da.from_array(_random((6, 64)), chunks=(3, 8))
    result = getattr(lsm, func)(x, axis=1)
    assert result.chunks == x.chunks
    graph = result.__dask_graph__()
    assert not any("rechunk" in str(name) for name in graph.layers)
    # per block: a partial, a finalise; per row of blocks: a few merges of the 8 partials
    assert _task_count(result) <= _task_count(x) + 2 * x.npartitions + 4 * x.numblocks[0]


def test_split_axis_is_lazy():
    calls = []

    def block(b):
        calls.append(1)
        return b

    x = da.from_array(_random((8, 8)), chunks=4).map_blocks(block)
    calls.clear()  # map_blocks itself called it on tiny arrays to infer the result type
    results = [lsm.log_softmax(x), lsm.softmax(x, axis=0), lsm.logsumexp(x, axis=1, return_sign=True)[0]]
    assert not calls
    assert all(isinstance(result, da.Array) for result in results)


# --- any chunking agrees with the references ------------------------------------------------


@st.composite
def chunked_arrays(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    elements = st.floats(-80, 80, width=32 if dtype == np.float32 else 64)
    x = draw(hnp.arrays(dtype, shape, elements=st.one_of(elements, elements, st.just(-np.inf))))
    chunks = tuple(draw(st.integers(1, size)) for size in shape)
    kind = draw(st.sampled_from(["int", "tuple", "none"]))
    if kind == "int":
        axis = draw(st.integers(-x.ndim, x.ndim - 1))
    elif kind == "tuple":
        axis = tuple(draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, unique=True)))
    else:
        axis = None
    where = draw(st.one_of(st.none(), hnp.arrays(np.bool_, shape)))
    return x, chunks, axis, where


@settings(deadline=None, max_examples=60)
@given(chunked_arrays())
def test_any_chunking_matches_the_references(case):
    x, chunks, axis, where = case
    dx = da.from_array(x, chunks=chunks)
    softmax_axis = axis if axis is not None else tuple(range(x.ndim))
    assert_close(
        lsm.log_softmax(dx, axis=softmax_axis, where=where).compute(),
        ref_log_softmax(x, axis=softmax_axis, where=where),
        x.dtype,
        "log_softmax",
    )
    assert_close(
        lsm.softmax(dx, axis=softmax_axis, where=where).compute(),
        ref_softmax(x, axis=softmax_axis, where=where),
        x.dtype,
        "softmax",
    )
    assert_close(
        lsm.logsumexp(dx, axis=axis, where=where).compute(),
        ref_logsumexp(x, axis=axis, where=where),
        x.dtype,
        "logsumexp",
    )


@settings(deadline=None, max_examples=40)
@given(chunked_arrays(), st.booleans(), st.integers(0, 2**32 - 1))
def test_any_chunking_logsumexp_with_weights(case, keepdims, seed):
    x, chunks, axis, where = case
    # non-negative weights, some 0: signed sums that cancel are ill-conditioned, and chunking
    # changes their rounding (the test below checks signs on well-conditioned sums)
    b = np.abs(np.random.default_rng(seed).standard_normal(x.shape)).round(1)
    dx = da.from_array(x, chunks=chunks)
    value, sign = lsm.logsumexp(dx, axis=axis, b=b, where=where, keepdims=keepdims, return_sign=True)
    ref_value, ref_sign = ref_logsumexp(x, axis=axis, b=b, where=where, keepdims=keepdims, return_sign=True)
    assert_close(value.compute(), ref_value, x.dtype, "value")
    assert_close(sign.compute(), ref_sign, x.dtype, "sign")


def test_negative_sums_across_chunks():
    x = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    b = np.array([[1.0, 1.0, 1.0, -2.0], [-2.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0]])
    value, sign = lsm.logsumexp(da.from_array(x, chunks=(1, 1)), axis=1, b=b, return_sign=True)
    ref_value, ref_sign = ref_logsumexp(x, axis=1, b=b, return_sign=True)
    assert_close(value.compute(), ref_value, x.dtype)
    np.testing.assert_array_equal(sign.compute(), [-1.0, -1.0, 0.0])
    np.testing.assert_array_equal(ref_sign, [-1.0, -1.0, 0.0])
    without_sign = lsm.logsumexp(da.from_array(x, chunks=(1, 1)), axis=1, b=b).compute()
    assert np.isnan(without_sign[:2]).all() and without_sign[2] == -np.inf


def test_split_axis_keeps_full_precision_at_large_magnitudes():
    # rounding max + log(sum) to one float64 would lose log(sum) next to 1e300 entirely
    x = np.array([[1e300, 1e300, 1e300, 1e300 - 1e285]])
    got = lsm.log_softmax(da.from_array(x, chunks=(1, 2))).compute()
    assert_close(got, ref_log_softmax(x), np.dtype(np.float64))


def test_dask_where_and_b_may_be_dask_arrays():
    x = _random((12, 10))
    where = x > -10
    b = np.linspace(-1, 1, 10)
    dx = da.from_array(x, chunks=(4, 3))
    got = lsm.log_softmax(dx, where=da.from_array(where, chunks=5)).compute()
    np.testing.assert_allclose(got, lsm.log_softmax(x, where=where))
    got = lsm.logsumexp(dx, axis=1, b=da.from_array(b, chunks=4), return_sign=True)
    want = lsm.logsumexp(x, axis=1, b=b, return_sign=True)
    np.testing.assert_allclose(got[0].compute(), want[0])
    np.testing.assert_array_equal(got[1].compute(), want[1])


def test_numpy_x_with_dask_where_builds_a_graph():
    x = _random((4, 5))
    where = da.from_array(x > 0, chunks=2)
    result = lsm.softmax(x, where=where)
    assert isinstance(result, da.Array)
    np.testing.assert_allclose(result.compute(), lsm.softmax(x, where=x > 0))


@pytest.mark.parametrize("dtype", [np.float16, np.int32, "bfloat16"])
def test_dtypes_follow_the_numpy_rules(dtype):
    x = _random((6, 8)).astype(dtype)
    for chunks in [(3, 8), (3, 3)]:
        dx = da.from_array(x, chunks=chunks)
        for func in ("log_softmax", "softmax", "logsumexp"):
            got = getattr(lsm, func)(dx, axis=1)
            want = getattr(lsm, func)(x, axis=1)
            assert got.dtype == want.dtype
            computed = got.compute()
            assert computed.dtype == want.dtype
            np.testing.assert_allclose(
                computed.astype(np.float64), want.astype(np.float64), rtol=1e-2, atol=1e-2
            )


def test_input_is_not_modified():
    x = _random((8, 9))
    original = x.copy()
    dx = da.from_array(x, chunks=(4, 4))
    lsm.log_softmax(dx).compute()
    lsm.softmax(dx, axis=0).compute()
    lsm.logsumexp(dx, axis=1, b=np.ones(9)).compute()
    np.testing.assert_array_equal(x, original)


# --- errors ---------------------------------------------------------------------------------


def test_errors_name_the_problem():
    dx = da.from_array(_random((4, 6)), chunks=2)
    with pytest.raises(TypeError, match="out= is not supported for Dask"):
        lsm.log_softmax(dx, out=np.empty((4, 6)))
    with pytest.raises(TypeError, match="out= is not supported for Dask"):
        lsm.logsumexp(dx, out=np.empty(()))
    with pytest.raises(TypeError, match="'where' must be a boolean array"):
        lsm.softmax(dx, where=np.ones((4, 6)))
    with pytest.raises(ValueError, match="'where' with shape \\(5,\\) cannot be broadcast"):
        lsm.softmax(dx, where=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="'b' with shape \\(3,\\) cannot be broadcast"):
        lsm.logsumexp(dx, b=np.ones(3))
    with pytest.raises(np.exceptions.AxisError):
        lsm.log_softmax(dx, axis=2)
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        lsm.logsumexp(da.from_array(np.ones(3, dtype=complex)))
    with pytest.raises(TypeError, match="dtype must be"):
        lsm.softmax(dx, dtype=np.int64)


# --- threads --------------------------------------------------------------------------------


def test_thread_share_splits_numba_threads_between_concurrent_tasks():
    total = numba.config.NUMBA_NUM_THREADS
    before = numba.get_num_threads()
    inside, barrier = [], threading.Barrier(2)

    def task():
        with _blocks.thread_share():
            barrier.wait()  # both tasks are inside before either reads its share
            inside.append(numba.get_num_threads())
            barrier.wait()

    threads = [threading.Thread(target=task) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(inside) == 2
    # the first task entered alone (every thread), the second beside it (half of them)
    assert sorted(inside) == [max(1, total // 2), total]
    with _blocks.thread_share():  # alone, a task gets every thread
        assert numba.get_num_threads() == total
    assert numba.get_num_threads() == before


def test_threaded_scheduler_runs_parallel_kernels_concurrently():
    x = _random((64, 4096), np.float32)  # blocks above the parallel threshold
    dx = da.from_array(x, chunks=(8, 4096))
    got = lsm.log_softmax(dx).compute(scheduler="threads", num_workers=4)
    np.testing.assert_array_equal(got, lsm.log_softmax(x))
    split = da.from_array(x, chunks=(16, 1024))
    got = lsm.softmax(split).compute(scheduler="threads", num_workers=4)
    np.testing.assert_allclose(got, lsm.softmax(x), rtol=1e-5, atol=1e-30)


_WORKQUEUE_CHILD = textwrap.dedent(
    """
    import dask.array as da
    import numba
    import numpy as np

    import lsm

    x = np.random.default_rng(0).standard_normal((64, 8192))
    whole = da.from_array(x, chunks=(4, 8192))
    split = da.from_array(x, chunks=(8, 2048))
    for chunks in (whole, split):
        got = lsm.log_softmax(chunks).compute(scheduler="threads", num_workers=8)
        assert np.allclose(got, lsm.log_softmax(x), rtol=0, atol=1e-12)
    print("layer:", numba.threading_layer())
    """
)


def test_threaded_scheduler_under_the_workqueue_layer():
    # workqueue aborts the process when two threads enter parallel kernels at once
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    done = subprocess.run(
        [sys.executable, "-c", _WORKQUEUE_CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"child exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "layer: workqueue" in done.stdout


def test_gradient_and_loss_errors_name_the_problem():
    logits = _random((6, 5))
    split = da.from_array(logits, chunks=(3, 2))
    whole = da.from_array(logits, chunks=(3, 5))
    target = np.array([0, 1, 2, 3, 4, 0])
    with pytest.raises(ValueError, match=r"class axis 1 of 'logits' is split across 3 chunks"):
        lsm.cross_entropy(split, target)
    with pytest.raises(TypeError, match="grad_out= is not supported for Dask"):
        lsm.cross_entropy(whole, target, return_grad=True, grad_out=np.empty((6, 5)))
    with pytest.raises(TypeError, match="out= is not supported for Dask"):
        lsm.log_softmax_backward(whole, whole, out=np.empty((6, 5)))
    with pytest.raises(ValueError, match=r"class-index 'target' must have shape \(6,\)"):
        lsm.cross_entropy(whole, target[:4])
    with pytest.raises(TypeError, match="'target' must hold integer class indices or floating"):
        lsm.cross_entropy(whole, target.astype(bool))
    with pytest.raises(TypeError, match="'target' must hold integer class indices"):
        lsm.nll_loss(whole, target.astype(np.float64))
    with pytest.raises(TypeError, match="axis must be an integer"):
        lsm.nll_loss(whole, target, axis=1.0)
    with pytest.raises(ValueError, match="'grad' has shape"):
        lsm.softmax_backward(whole, whole[:, :4])
    lazy = lsm.cross_entropy(whole, np.array([0, 1, 2, 3, 9, 0]))  # built without error
    with pytest.raises(IndexError, match=r"target 9 at position \(4,\) is out of range for 5 classes"):
        lazy.compute()


@pytest.mark.parametrize("call", ["cross_entropy", "cross_entropy_grad", "nll_loss"])
def test_out_of_range_target_names_its_position_in_the_whole_array(call):
    # classes on axis 1; the bad target lies in block (1, 1) of the target, at (1, 1) within it
    logits = da.from_array(_random((4, 5, 6)), chunks=(2, 5, 3))
    target = np.zeros((4, 6), dtype=np.int64)
    target[0, 0] = -100  # ignored, not out of range
    target[3, 4] = -1
    if call == "nll_loss":
        lazy = lsm.nll_loss(logits, target, axis=1, reduction="none")
    else:
        lazy = lsm.cross_entropy(logits, target, axis=1, return_grad=call == "cross_entropy_grad")
    with pytest.raises(IndexError, match=r"target -1 at position \(3, 4\) is out of range for 5 classes"):
        da.compute(lazy)


@pytest.mark.parametrize("return_grad", [False, True], ids=["loss", "loss-and-grad"])
def test_zero_classes_every_target_ignored_gives_the_in_memory_nan_mean(return_grad):
    """Regression: the Dask total weight indexed an empty weight row (IndexError) where the
    in-memory call returns the documented 0 / 0 = NaN mean."""
    logits, target = np.zeros((3, 0)), np.full(3, -100)
    expected = lsm.cross_entropy(logits, target, return_grad=return_grad)
    lazy = lsm.cross_entropy(
        da.from_array(logits, chunks=(2, -1)), da.from_array(target, chunks=2), return_grad=return_grad
    )
    got = da.compute(*lazy) if return_grad else (lazy.compute(),)
    expected = expected if return_grad else (expected,)
    assert np.isnan(got[0]) and np.isnan(expected[0])
    if return_grad:
        assert got[1].shape == expected[1].shape == (3, 0)
