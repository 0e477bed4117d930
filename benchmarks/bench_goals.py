"""The cases of issue 3's speed goals (``lsm.bench.goals``), with every peer and a same-run copy.

Run
---
Smoke run (part of the normal test run: benchmarks disabled, each goal's inputs shrunk to at most
32 along every axis, every case once and checked, one startup process)::

    python -m pytest benchmarks/bench_goals.py -q

Timed run, then the goal-by-goal table (``--bench-large`` adds goal 7's 1e8-element and 1 GiB
inputs)::

    python -m pytest benchmarks/bench_goals.py --benchmark-enable --benchmark-json=goals.json
    python scripts/bench_goals.py goals.json

``lsm bench --goals`` runs the same cases with its own timing loop and prints the same table.

What is measured
----------------
``test_goal``: the goal inputs (262144x32, 8192x1024, 1024x32768 and 32x1048576 along the last
axis, 8192x1024 along axis 0, 64x1024x256 along axis 1; logsumexp's three; a 100-element array;
goal 7's series of rows of 1000) in the goals' dtypes, for lsm and every installed peer (naive
NumPy, scipy.special, torch, torch's ``out=`` kernels, jitted jax), timed by ``run_case`` in
``conftest.py``: ``extra_info`` carries ``gbps``, ``fraction_of_copy`` (a same-run parallel
copy of the input), ``ratio_to_<impl>`` for every peer of its group (lsm's cases come last) and,
for lsm, ``traced_peak_bytes`` (goal 5's float32 temporaries).

``test_startup`` (goal 8): ``import lsm`` and a first call in fresh processes with the kernel
cache warm (pytest-benchmark times the whole process; ``extra_info["warm_s"]``, the goal's
figure, is the median of what the process measured itself) and, in a timed run, once with an
empty ``NUMBA_CACHE_DIR`` (``cold_s``). See ``lsm.bench.startup``.
"""

import dataclasses

from benchmarks.conftest import benchmarks_enabled, large_enabled, parametrize
from lsm.bench import startup
from lsm.bench.backends import BACKENDS
from lsm.bench.goals import STARTUP_OPS, goal_cases

SMOKE_LENGTH = 32  # an untimed run shrinks every axis to at most this: same layouts, tiny arrays
STARTUP_ROUNDS = 5


def _shrunk(cases):
    """The cases on tiny versions of their inputs (same rank and axis), duplicates dropped."""
    found = {}
    for case in cases:
        small = dataclasses.replace(case, shape=tuple(min(length, SMOKE_LENGTH) for length in case.shape))
        found.setdefault(small.id, small)
    return list(found.values())


def pytest_generate_tests(metafunc):
    timed = benchmarks_enabled(metafunc.config)
    if "case" in metafunc.fixturenames:
        cases = goal_cases(BACKENDS["cpu"], large=large_enabled(metafunc.config))
        parametrize(metafunc, cases if timed else _shrunk(cases))
    if "startup_op" in metafunc.fixturenames:
        # untimed: one op, to run the child process once
        metafunc.parametrize("startup_op", STARTUP_OPS if timed else STARTUP_OPS[-1:])


def test_goal(run_case, case):
    run_case(case)


def test_startup(benchmark, startup_op):
    runs = []
    benchmark.group = "startup"
    benchmark.pedantic(
        lambda: runs.append(startup.run_child(startup_op)),
        rounds=STARTUP_ROUNDS,
        iterations=1,
        warmup_rounds=1,  # fills the kernel cache if it was cold
    )
    timed = not benchmark.disabled
    cold = startup.run_cold(startup_op) if timed else None
    info = startup.startup_info(startup_op, runs[-STARTUP_ROUNDS:], cold)
    benchmark.extra_info.update(info)
