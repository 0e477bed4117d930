"""lsm on C- and Fortran-ordered inputs of the same values, beside torch and a copy, on the CPU.

Run
---
Smoke run (part of the normal test run: benchmarks disabled, small shapes, each case once, the
results of both orders compared)::

    python -m pytest benchmarks/bench_memory_order.py -q

Timed run, float32 (8192, 1024) (32 MB), reduced along each axis::

    python -m pytest benchmarks/bench_memory_order.py --benchmark-enable --benchmark-columns=median,iqr

What is measured
----------------
The same values as a C-ordered array and as a Fortran-ordered one, each reduced along axis -1
and axis 0, by lsm's allocating call (whose result takes the input's memory order), by torch's
(``torch.from_numpy`` of the same memory: a strided tensor for the Fortran order), and by
``np.copyto`` into an array of the input's order (the speed of memory for that layout).
``extra_info`` holds ``gbps`` (input read + result written / median) and, for the Fortran order
once the C order ran, ``f_over_c`` (the C order's median / the Fortran order's: 1 means no
penalty for the layout). torch runs on as many threads as Numba.
"""

import numba
import numpy as np
import pytest

import lsm
from benchmarks.conftest import benchmarks_enabled
from lsm.bench.table import SEED

torch = pytest.importorskip("torch")

TIMED_SHAPE = (8192, 1024)
SMOKE_SHAPE = (96, 70)
ROUNDS = 9
OPS = {
    "log_softmax": (lsm.log_softmax, torch.log_softmax),
    "softmax": (lsm.softmax, torch.softmax),
    "logsumexp": (lsm.logsumexp, torch.logsumexp),
}


@pytest.fixture(scope="module")
def setup(request):
    timed = benchmarks_enabled(request.config)
    threads = torch.get_num_threads()
    torch.set_num_threads(numba.get_num_threads())  # both libraries on the same threads
    shape = TIMED_SHAPE if timed else SMOKE_SHAPE
    values = (np.random.default_rng(SEED).standard_normal(shape, dtype=np.float32) * 4).astype(np.float32)
    try:
        yield {"inputs": {"C": values, "F": np.asfortranarray(values)}, "medians": {}, "results": {}}
    finally:
        torch.set_num_threads(threads)


def _calls(op, x, axis):
    """``{impl: no-argument call}`` for ``op`` on ``x`` along ``axis``."""
    ours, theirs = OPS[op]
    tensor = torch.from_numpy(x)
    copy = np.empty_like(x)
    return {
        "lsm": lambda: ours(x, axis=axis),
        "torch": lambda: theirs(tensor, axis if axis >= 0 else x.ndim + axis).numpy(),
        "copy": lambda: np.copyto(copy, x),
    }


# (op, axis, order, impl); the copy depends on the input only: timed once per order
CASES = [
    (op, axis, order, impl)
    for op in OPS
    for axis in (-1, 0)
    for order in ("C", "F")  # C first: the Fortran case's ratio needs it
    for impl in ("lsm", "torch", "copy")
    if impl != "copy" or (op, axis) == ("log_softmax", -1)
]


@pytest.mark.parametrize(
    ("op", "axis", "order", "impl"), CASES, ids=["-".join(map(str, case)) for case in CASES]
)
def test_memory_order(benchmark, setup, op, axis, order, impl):
    x = setup["inputs"][order]
    call = _calls(op, x, axis)[impl]
    result = benchmark.pedantic(call, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    if impl != "copy":
        if impl == "lsm" and op != "logsumexp":  # lsm's result takes the input's memory order
            assert result.flags[f"{order}_CONTIGUOUS"]
        reference = setup["results"].setdefault((op, axis), np.asarray(result))
        np.testing.assert_allclose(result, reference, rtol=2e-6, atol=2e-6 * np.abs(reference).max())
    benchmark.extra_info.update(op=op, axis=axis, order=order, impl=impl, shape=list(x.shape))
    if benchmark.stats:  # timed (not a smoke run)
        median = benchmark.stats.stats.median
        written = x.nbytes if op != "logsumexp" else x.nbytes // x.shape[axis]
        benchmark.extra_info["gbps"] = (x.nbytes + written) / median / 1e9
        medians = setup["medians"].setdefault((op, axis, impl), {})
        medians[order] = median
        if order == "F":
            benchmark.extra_info["f_over_c"] = medians["C"] / median
