"""The timing engine: cases timed group by group beside a copy of their input, in pytest-benchmark's JSON.

A *group* is the implementations of one op on one input and axis. Each case is prepared, called
once (compiling lsm's kernels, loading the peer's library) and its result checked against the
float64 reference; then the group and a memory copy of the input are timed together:

- a *round* is ``iterations`` back-to-back calls between two clock readings, ``iterations``
  calibrated so that a round lasts at least ``round_time`` (keeping the clock's resolution and a
  GPU's launch latency out of the per-call time); device work is synchronised around it;
- every pass times one round of each call in turn, until each has ``min_rounds`` rounds and
  ``max_time`` seconds per call have passed. Load from other processes comes in bursts (on a
  busy 2-core machine a parallel call then waits milliseconds for a descheduled thread);
  interleaving spreads a burst over all the calls compared instead of spoiling one of them;
- every round starts with an untimed call: between two rounds of one call the others ran and its
  thread pool (Numba's, torch's) may have gone to sleep, and waking it would land on the round.
  The figures are steady-state throughput, as a loop of calls sees it.

The statistics are pytest-benchmark's (``pytest_benchmark.stats.Stats``) over the rounds'
per-call times, and the results document has the layout of ``pytest --benchmark-json``. Each
case's ``extra_info`` holds :meth:`lsm.bench.table.Case.describe` and the figures to compare:
``median_s`` (per call); ``gbps`` (bytes moved / median time); ``copy_gbps`` (the copy reads and
writes the input, 2 x its bytes: the fastest of the backend's copies timed in the same rounds,
named by ``copy_kind``, all of them in ``copy_gbps_by_kind``; on the CPU a Numba parallel loop,
``np.copyto`` and torch's ``copy_``); ``fraction_of_copy`` = gbps / copy_gbps, which carries across
machines; ``best_gbps`` and ``best_fraction_of_copy`` from the fastest rounds (steadier on a busy
machine); ``ratio_to_<impl>``, its GB/s over each other implementation's in the group; and, for
lsm on the CPU, ``traced_peak_bytes``: the most memory NumPy held during one call, which shows a
full-size temporary.
"""

import datetime
import json
import math
import os
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

import numba

from .. import __version__
from .table import OPS, case_key, check_result, make_input, reference

MAX_ROUNDS = 10_000
CHECK_MAX_ELEMENTS = 10**7  # larger results are not checked: the float64 reference costs GBs


@dataclass(frozen=True)
class Timing:
    """How long to time a group: ``min_rounds`` rounds and ``max_time`` seconds per call at least."""

    min_rounds: int = 5
    max_time: float = 0.2
    round_time: float = 1e-3


def _round(call, iterations, synchronise):
    call()  # untimed: wakes the thread pool that another call's round let fall asleep
    synchronise()
    start = time.perf_counter()
    for _ in range(iterations):
        call()
    synchronise()
    return time.perf_counter() - start


def _calibrate(call, timing, synchronise):
    """Calls per round so that a round lasts ``timing.round_time``; a round long enough is timed
    again and the faster counts, so a stall caused by another process does not end it early."""
    iterations = 1
    while True:
        elapsed = _round(call, iterations, synchronise)
        if elapsed >= timing.round_time:
            elapsed = min(elapsed, _round(call, iterations, synchronise))
            if elapsed >= timing.round_time:
                return iterations
        # Aim 20% past the target, growing at most tenfold per step in case the first round was odd.
        wanted = math.ceil(iterations * 1.2 * timing.round_time / max(elapsed, 1e-9))
        iterations = max(iterations + 1, min(wanted, 10 * iterations))


def time_together(calls, timing, synchronise):
    """Time the (warmed-up) ``calls``, ``{name: no-argument callable}``, in interleaved rounds.

    Returns ``{name: stats}``: pytest-benchmark's statistics of the per-call time of each round.
    """
    from pytest_benchmark.stats import Stats

    iterations = {name: _calibrate(call, timing, synchronise) for name, call in calls.items()}
    stats = {name: Stats() for name in calls}
    deadline = time.perf_counter() + timing.max_time * len(calls)
    rounds = 0
    while rounds < timing.min_rounds or (time.perf_counter() < deadline and rounds < MAX_ROUNDS):
        for name, call in calls.items():
            stats[name].update(_round(call, iterations[name], synchronise) / iterations[name])
        rounds += 1
    return {name: {**stats[name].as_dict(), "iterations": iterations[name]} for name in calls}


def prepare(backend, case, x_host):
    """``(x, call)``: the case's input on the device and a no-argument call computing the case."""
    op = OPS[case.op]
    implementation = next(impl for impl in backend.implementations if impl.name == case.impl)
    module = backend.load(implementation)
    host_operands = op.inputs(x_host, case.axis)
    if implementation.family == "lsm_in_place":  # each call overwrites it: its own copy
        host_operands = (host_operands[0].copy(), *host_operands[1:])
    operands = tuple(map(backend.to_device, host_operands))
    out = backend.empty(op.result_shape(x_host.shape, case.axis), x_host.dtype)
    x = operands[0]
    operands, out = backend.operands(implementation, operands, out)
    compute, axis = op.impls[implementation.family], case.axis
    return x, lambda: compute(module, operands, axis, out)


def traced_peak(call):
    """Bytes of the most memory NumPy and Python held at once during ``call()``, above the start.

    tracemalloc sees NumPy's allocations (a full-size temporary shows as its size), not what
    Numba's kernels or a device allocate.
    """
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        call()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        if not already:
            tracemalloc.stop()


def _ready(backend, group, x_host, skipped, failed):
    """``{case: (x, call)}`` of the group's cases that run and compute the right result."""
    expected = None
    ready = {}
    for case in group:
        try:
            x, call = prepare(backend, case, x_host)
            result = call()  # warm-up: compiles, faults in memory, loads the library
            backend.synchronise()
        except Exception as error:
            # A peer that does not take this input, or lsm without a backend for these arrays
            # (NotImplementedError), is skipped; any other error from lsm is a failure.
            lsm_broke = case.impl.startswith("lsm") and not isinstance(error, NotImplementedError)
            (failed if lsm_broke else skipped).append((case.id, f"{type(error).__name__}: {error}"))
            continue
        if case.elements <= CHECK_MAX_ELEMENTS:
            if expected is None:
                expected = reference(case.op, x_host, case.axis)
            try:
                check_result(case.dtype, backend.to_host(result), expected)
            except AssertionError as error:
                failed.append((case.id, str(error)))
                continue
        ready[case] = (x, call)
    return ready


def run_cases(backend, cases, timing, progress=iter):
    """Time ``cases``, group by group; return ``(entries, skipped, failed)``.

    ``entries`` are pytest-benchmark's ``benchmarks`` entries; ``skipped`` and ``failed`` list
    ``(case id, reason)``. ``progress(groups)`` yields the groups (lists of cases) in turn.
    """
    groups = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    entries, skipped, failed = [], [], []
    x_host = None
    for group in progress(list(groups.values())):
        first = group[0]
        if x_host is None or (x_host.shape, x_host.dtype) != (first.shape, first.dtype):
            x_host = make_input(first.shape, first.dtype)  # cases come input by input
        ready = _ready(backend, group, x_host, skipped, failed)
        if not ready:
            continue
        x = next(iter(ready.values()))[0]
        copies = {f"copy:{kind}": copy for kind, copy in backend.copy_calls(x).items()}
        for copy in copies.values():
            copy()  # warm-up: compile, fault in the destination
        calls = {case.impl: call for case, (_, call) in ready.items()}
        stats = time_together({**calls, **copies}, timing, backend.synchronise)
        copy_speeds = {}  # GB/s of each copy: median and fastest round
        for name in copies:
            copy_stats = stats.pop(name)
            median, best = (2 * x.nbytes / copy_stats[key] / 1e9 for key in ("median", "min"))
            copy_speeds[name.removeprefix("copy:")] = {"median": median, "best": best}
        # the reference is the fastest copy of the run (by median), the physical limit as best known
        copy_kind = max(copy_speeds, key=lambda kind: copy_speeds[kind]["median"])
        copy_gbps = copy_speeds[copy_kind]["median"]
        copy_best_gbps = max(speeds["best"] for speeds in copy_speeds.values())
        moved = first.bytes_moved  # the same for every case of a group
        speeds = {impl: moved / impl_stats["median"] / 1e9 for impl, impl_stats in stats.items()}
        for case, (_, call) in ready.items():
            case_stats = stats[case.impl]
            gbps, best_gbps = speeds[case.impl], moved / case_stats["min"] / 1e9
            extra = {
                **case.describe(),
                "median_s": case_stats["median"],
                "gbps": gbps,
                "best_gbps": best_gbps,
                "copy_gbps": copy_gbps,
                "copy_kind": copy_kind,
                "copy_gbps_by_kind": {kind: speeds["median"] for kind, speeds in copy_speeds.items()},
                "fraction_of_copy": gbps / copy_gbps,
                "best_fraction_of_copy": best_gbps / copy_best_gbps,
                **{f"ratio_to_{impl}": gbps / speed for impl, speed in speeds.items() if impl != case.impl},
            }
            if case.impl.startswith("lsm") and backend.traces_memory:
                extra["traced_peak_bytes"] = traced_peak(call)
            entries.append(
                {
                    "group": case.group,
                    "name": case.id,
                    "fullname": f"lsm bench::{case.id}",
                    "params": None,
                    "param": None,
                    "extra_info": extra,
                    "options": {**asdict(timing), "timer": "perf_counter"},
                    "stats": case_stats,
                }
            )
    return entries, skipped, failed


def _threading_layer():
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel ran in this process (a GPU run)
        return None


def lsm_machine_info(backend=None):
    """What lsm adds to pytest-benchmark's ``machine_info``: threads, versions, GPU, load."""
    info = {
        "lsm_version": __version__,
        "numba_threading_layer": _threading_layer(),
        "numba_num_threads": numba.get_num_threads(),
        # the libraries this run loaded
        "versions": {
            name: getattr(sys.modules[name], "__version__", None)
            for name in ("numpy", "numba", "scipy", "torch", "jax", "cupy")
            if name in sys.modules
        },
        **({} if backend is None else backend.info()),
    }
    if "jax" in sys.modules:
        info["xla_flags"] = os.environ.get("XLA_FLAGS", "")  # what limits XLA's threads
    if hasattr(os, "getloadavg"):
        # Other processes' load when the run ended: figures from a busy machine deserve less trust.
        info["load_average"] = round(os.getloadavg()[0], 2)
    return info


def document(entries, backend):
    """The results document of ``entries``, as ``pytest --benchmark-json`` writes it."""
    import pytest_benchmark
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info
    from pytest_benchmark.utils import get_commit_info

    return {
        "machine_info": {**pytest_benchmark_generate_machine_info(), **lsm_machine_info(backend)},
        "commit_info": get_commit_info("lsm"),
        "benchmarks": entries,
        "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "version": pytest_benchmark.__version__,
    }


def load(path):
    """A results document from ``path``.

    Raises
    ------
    ValueError
        If the file is not JSON or has no ``benchmarks`` list.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ValueError(f"{path}: no 'benchmarks' list: not an lsm bench or pytest-benchmark result")
    return doc


def timed_cases(doc):
    """``{case key: extra_info}`` of the document's cases that carry throughput figures."""
    infos = (bench.get("extra_info") or {} for bench in doc["benchmarks"])
    return {case_key(info): info for info in infos if "fraction_of_copy" in info and "op" in info}
