"""Calling lsm from several Python threads at once.

Inputs of at least ``PARALLEL_MIN_ELEMENTS`` elements run Numba ``parallel=True`` kernels, smaller
ones the serial kernels. Concurrent calls must give exactly the results of sequential calls, under
the default threading layer and under ``workqueue``, which aborts the whole process if two Python
threads enter parallel kernels at once (lsm serialises parallel launches when it is active).
"""

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import lsm
from lsm.cpu._config import PARALLEL_MIN_ELEMENTS

THREADS = 8


def _cases():
    """Mixed ops, dtypes, layouts and sizes on both sides of the parallel threshold."""
    rng = np.random.default_rng(20240611)
    big_rows = rng.standard_normal((96, 512))  # 49152 elements: parallel row kernels
    big_cols = rng.standard_normal((600, 80)).astype(np.float32)  # 48000: parallel column kernels
    big_3d = rng.standard_normal((4, 120, 80))  # 38400: column kernel over the middle axis
    small = rng.standard_normal((40, 50))  # 2000: serial kernels
    small_f32 = rng.standard_normal((30, 17)).astype(np.float32)
    mask = rng.random(big_rows.shape) < 0.7
    weights = rng.random(big_cols.shape[1])
    assert big_rows.size >= PARALLEL_MIN_ELEMENTS and big_cols.size >= PARALLEL_MIN_ELEMENTS
    assert big_3d.size >= PARALLEL_MIN_ELEMENTS and small.size < PARALLEL_MIN_ELEMENTS
    return [
        (lsm.log_softmax, big_rows, {}),
        (lsm.softmax, big_rows, {"axis": 0}),
        (lsm.logsumexp, big_rows, {"axis": 1}),
        (lsm.log_softmax, big_rows, {"where": mask}),
        (lsm.softmax, big_cols, {"axis": 0}),
        (lsm.logsumexp, big_cols, {"axis": 0}),
        (lsm.logsumexp, big_cols, {"axis": 1, "b": weights, "return_sign": True}),
        (lsm.log_softmax, big_3d, {"axis": 1}),
        (lsm.logsumexp, big_3d, {"axis": (0, 2), "keepdims": True}),
        (lsm.log_softmax, small, {}),
        (lsm.softmax, small, {"axis": 0}),
        (lsm.logsumexp, small, {"axis": None}),
        (lsm.log_softmax, small_f32, {"axis": 0}),
        (lsm.logsumexp, small_f32, {"axis": 1}),
    ]


def _call(case):
    func, x, kwargs = case
    return func(x, **kwargs)


def _assert_same(got, expected):
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            _assert_same(g, e)
        return
    assert np.asarray(got).dtype == np.asarray(expected).dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rounds", [6])
def test_concurrent_calls_match_sequential(rounds):
    cases = _cases()
    inputs_before = [x.copy() for _, x, _ in cases]
    expected = [_call(case) for case in cases]
    # sanity: the sequential results are right, so matching them means something
    np.testing.assert_allclose(np.exp(expected[0]).sum(axis=-1), 1, rtol=1e-12)
    np.testing.assert_allclose(expected[5], np.log(np.exp(cases[5][1].astype(np.float64)).sum(0)), rtol=1e-5)
    order = [i for _ in range(rounds) for i in range(len(cases))]
    np.random.default_rng(1).shuffle(order)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(lambda i: _call(cases[i]), order))
    for i, got in zip(order, results, strict=True):
        _assert_same(got, expected[i])
    for (_, x, _), before in zip(cases, inputs_before, strict=True):
        np.testing.assert_array_equal(x, before)


def test_concurrent_out_arguments():
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((64, 1024)) for _ in range(THREADS)]
    outs = [np.empty_like(x) for x in xs]
    expected = [lsm.log_softmax(x) for x in xs]

    def work(i):
        for _ in range(5):
            lsm.log_softmax(xs[i], out=outs[i])
        return outs[i]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


_CHILD = textwrap.dedent(
    """
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import numba
    import numpy as np

    import lsm

    rng = np.random.default_rng(0)
    cases = [
        (lsm.log_softmax, rng.standard_normal((128, 512)), {}),
        (lsm.softmax, rng.standard_normal((700, 64)), {"axis": 0}),
        (lsm.logsumexp, rng.standard_normal((256, 256)).astype(np.float32), {"axis": 1}),
        (lsm.logsumexp, rng.standard_normal((300, 150)), {"axis": 0, "b": rng.random(150)}),
        (lsm.log_softmax, rng.standard_normal((20, 30)), {}),
    ]
    # run concurrently first: the very first parallel launches race for the pool
    order = [i % len(cases) for i in range(8 * len(cases))]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: cases[i][0](cases[i][1], **cases[i][2]), order))
    expected = [func(x, **kwargs) for func, x, kwargs in cases]
    for i, got in zip(order, results, strict=True):
        assert np.array_equal(got, expected[i]), i
    # and the results are right, not merely consistent
    x = cases[0][1]
    reference = x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
    assert np.allclose(expected[0], reference, rtol=0, atol=1e-12)
    print("layer:", numba.threading_layer())
    """
)


def _run_child(extra_env):
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_THREADING_LAYER"}
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300
    )


def test_workqueue_layer_survives_concurrent_calls():
    done = _run_child({"NUMBA_THREADING_LAYER": "workqueue"})
    assert done.returncode == 0, f"child exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "layer: workqueue" in done.stdout


def test_default_layer_concurrent_calls_in_subprocess():
    done = _run_child({})
    assert done.returncode == 0, f"child exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "layer: " in done.stdout
