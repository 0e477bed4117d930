"""lsm.log_softmax on Dask arrays on a two-process LocalCluster, beside the in-memory NumPy call.

Run
---
Smoke run (part of the normal test run: benchmarks disabled, a small array, each case once)::

    python -m pytest benchmarks/bench_dask.py -q

Timed run: a 1 GB float32 array of 8192 rows x 32768 columns, 64 MB chunks::

    python -m pytest benchmarks/bench_dask.py --benchmark-enable --benchmark-columns=median,iqr

What is measured
----------------
- ``numpy``: ``lsm.log_softmax`` on the in-memory NumPy array, allocating its result;
- ``dask-rows``: the same array on a ``LocalCluster(n_workers=2, threads_per_worker=1)``,
  chunked by rows (each row in one chunk: a blockwise graph), result persisted on the workers;
- ``dask-split``: chunked along the reduced axis as well (tree reduction, then a finalise).

The Dask input is created and persisted on the workers before timing, so the timings contain
the graph construction, scheduling and the kernels, not shipping the input. Each worker process
runs with ``NUMBA_NUM_THREADS=1``: two processes of one thread use the two cores once each (the
setting lsm's README recommends). ``extra_info`` holds ``gbps`` (2 x bytes of the input /
median) and, for the Dask cases, ``ratio_to_numpy`` (Dask time / in-memory time, measured in
the same session).
"""

import time

import numpy as np
import pytest

import lsm
from benchmarks.conftest import benchmarks_enabled
from lsm.bench.table import SEED

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

TIMED_SHAPE, TIMED_CHUNKS = (8192, 32768), {"rows": (512, 32768), "split": (2048, 8192)}  # 64 MB chunks
SMOKE_SHAPE, SMOKE_CHUNKS = (256, 4096), {"rows": (64, 4096), "split": (128, 1024)}
ROUNDS = 5


@pytest.fixture(scope="module")
def setup(request):
    timed = benchmarks_enabled(request.config)
    shape, chunks = (TIMED_SHAPE, TIMED_CHUNKS) if timed else (SMOKE_SHAPE, SMOKE_CHUNKS)
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # a free port: None still takes 8787, where two clusters collide
        env={"NUMBA_NUM_THREADS": "1"},
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield {"client": client, "shape": shape, "chunks": chunks, "medians": {}}
    finally:
        client.close()
        cluster.close()


def _held_chunks(dask_worker):
    return len(dask_worker.data)


def test_numpy(benchmark, setup):
    x = np.random.default_rng(SEED).standard_normal(setup["shape"], dtype=np.float32)
    result = benchmark.pedantic(lsm.log_softmax, args=(x,), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    np.testing.assert_allclose(np.exp(result).sum(axis=-1), 1, rtol=1e-4)
    benchmark.extra_info["impl"] = "numpy"
    if benchmark.stats:  # timed (not a smoke run)
        median = benchmark.stats.stats.median
        setup["medians"]["numpy"] = median
        benchmark.extra_info["gbps"] = 2 * x.nbytes / median / 1e9


@pytest.mark.parametrize("layout", ["rows", "split"])
def test_dask_cluster(benchmark, setup, layout):
    client = setup["client"]
    rng = da.random.default_rng(SEED)
    x = rng.standard_normal(setup["shape"], dtype=np.float32, chunks=setup["chunks"][layout])
    x = client.persist(x)
    with client.as_current():  # distributed.wait finds the client through default_client()
        distributed.wait(x)

    def run():
        result = client.persist(lsm.log_softmax(x))
        with client.as_current():
            distributed.wait(result)

    def forget_previous_result():
        # The graph's keys are deterministic: a result the workers still hold would be handed
        # back instead of computed again. Wait (untimed) until only the input is left.
        while sum(client.run(_held_chunks).values()) > x.npartitions:
            time.sleep(0.01)

    benchmark.pedantic(run, setup=forget_previous_result, rounds=ROUNDS, warmup_rounds=1)
    sums = client.compute(da.exp(lsm.log_softmax(x).astype(np.float64)).sum(axis=-1)).result()
    np.testing.assert_allclose(sums, 1, rtol=1e-4)
    benchmark.extra_info.update(impl=f"dask-{layout}", chunks=str(x.chunksize))
    if benchmark.stats:
        median = benchmark.stats.stats.median
        benchmark.extra_info["gbps"] = 2 * x.nbytes / median / 1e9
        if "numpy" in setup["medians"]:
            benchmark.extra_info["ratio_to_numpy"] = median / setup["medians"]["numpy"]
