"""lsm on C- and Fortran-ordered inputs of the same values, beside torch and a copy, on the CPU.

Run
---
Smoke run (part of the normal test run: benchmarks disabled, a small shape, each case once, the
results of both orders compared)::

    python -m pytest benchmarks/bench_memory_order.py -q

Timed run, float32 (8192, 1024) (32 MB), reduced along each axis::

    python -m pytest benchmarks/bench_memory_order.py --benchmark-enable --benchmark-columns=median,iqr

What is measured
----------------
The same values as a C-ordered array and as a Fortran-ordered one, each reduced along axis -1
and axis 0, by lsm's call with ``out=`` (an array in the input's memory order, as lsm allocates
one), by torch's kernel writing into a C-ordered ``out`` (its input ``torch.from_numpy`` of the same
memory: a strided tensor for the Fortran order; torch 2.13's ``_softmax`` and ``_log_softmax``
write wrong values into a Fortran-ordered ``out``), and by ``np.copyto`` into an array of the
input's order (the speed of memory for that layout). Each implementation's Fortran-order result
is checked against its C-order one.
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
ROUNDS = 21
# lsm's function, and torch's kernel writing into ``out`` (the one ``lsm bench``'s torch_out times)
OPS = {
    "log_softmax": (lsm.log_softmax, lambda t, dim, out: torch._log_softmax(t, dim, False, out=out)),
    "softmax": (lsm.softmax, lambda t, dim, out: torch._softmax(t, dim, False, out=out)),
    "logsumexp": (lsm.logsumexp, lambda t, dim, out: torch.logsumexp(t, dim, out=out)),
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
    """``{impl: no-argument call}`` for ``op`` on ``x`` along ``axis``, writing into results
    allocated beforehand (element-wise ones in ``x``'s memory order)."""
    ours, theirs = OPS[op]
    out = np.empty_like(x) if op != "logsumexp" else np.empty(np.delete(x.shape, axis), x.dtype)
    their_out = torch.empty(out.shape)  # C order: torch's softmax kernels write a strided out wrongly
    tensor, dim = torch.from_numpy(x), axis % x.ndim
    copy = np.empty_like(x)
    return {
        "lsm": lambda: ours(x, axis=axis, out=out),
        "torch": lambda: theirs(tensor, dim, their_out).numpy(),
        "copy": lambda: np.copyto(copy, x),
    }


# (op, axis, order, impl), one implementation after the other: torch's OpenMP threads keep
# spinning a while after its calls, which would slow whatever runs next on a small machine. The
# copy depends on the input only: timed once per order.
CASES = [
    (op, axis, order, impl)
    for impl in ("lsm", "torch", "copy")
    for op in OPS
    for axis in (-1, 0)
    for order in ("C", "F")  # C first: the Fortran case's ratio needs it
    if impl != "copy" or (op, axis) == ("log_softmax", -1)
]


@pytest.mark.parametrize(
    ("op", "axis", "order", "impl"), CASES, ids=["-".join(map(str, case)) for case in CASES]
)
def test_memory_order(benchmark, setup, op, axis, order, impl):
    x = setup["inputs"][order]
    call = _calls(op, x, axis)[impl]
    result = benchmark.pedantic(call, rounds=ROUNDS, iterations=1, warmup_rounds=3)
    if impl != "copy":
        if impl == "lsm" and op != "logsumexp":  # a new result takes the input's memory order
            assert getattr(lsm, op)(x, axis=axis).flags[f"{order}_CONTIGUOUS"]
        # the other order runs the other path (rows or columns): the same values within rounding
        reference = setup["results"].setdefault((op, axis, impl), np.asarray(result))
        np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())
    benchmark.extra_info.update(op=op, axis=axis, order=order, impl=impl, shape=list(x.shape))
    if benchmark.stats:  # timed (not a smoke run)
        median = benchmark.stats.stats.median
        written = x.nbytes if op != "logsumexp" else x.nbytes // x.shape[axis]
        benchmark.extra_info["gbps"] = (x.nbytes + written) / median / 1e9
        medians = setup["medians"].setdefault((op, axis, impl), {})
        medians[order] = median
        if order == "F":
            benchmark.extra_info["f_over_c"] = medians["C"] / median
