"""Turning a :class:`lsm.bench.cases.Case` into a timed call and its throughput figures.

Shared by ``lsm bench`` (which times with :mod:`lsm.bench.timing`) and the pytest-benchmark suite
(which times with pytest-benchmark), so both measure the same calls and derive the same figures:

- ``gbps``: the bytes the op must move (``Case.bytes_moved``) over the median time;
- ``copy_gbps``: a copy of the same input on the same backend, timed in the same process (a copy
  reads and writes the array: 2 x its bytes). ``lsm bench`` times it in the same interleaved
  rounds as the implementations of each op and axis (see :mod:`lsm.bench.timing`); the pytest
  suite, which times one case at a time, right before the first case of each input
  (:class:`CopyNormaliser`);
- ``fraction_of_copy = gbps / copy_gbps``: the figure that carries across machines. On the CPU,
  ``serial_copy_gbps`` and ``fraction_of_serial_copy`` refer to a single-threaded ``np.copyto``;
- the same from the fastest round instead of the median: ``best_gbps``, ``best_fraction_of_copy``;
- ``traced_peak_bytes`` (lsm's cases): the most memory NumPy held at once during one call, beyond
  what it held before (:func:`traced_peak`), which shows a full-size temporary.
"""

import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field

from .cases import OPS, reference
from .timing import TimingOptions, measure, summarize


@dataclass
class Prepared:
    """A case ready to run: ``call()`` computes it; ``x`` is its input as a backend array (the
    one the copy normaliser copies, also for torch and jax cases); ``info``: facts about the
    implementation's library for ``extra_info``."""

    call: Callable
    x: object
    info: dict = field(default_factory=dict)


def prepare(backend, case, x_host):
    """Allocate the case's operands and output on ``backend`` and build its no-argument call."""
    op = OPS[case.op]
    implementation = next(impl for impl in backend.implementations if impl.name == case.impl)
    module = backend.load(implementation)
    host_operands = op.inputs(x_host, case.axis)
    if implementation.in_place:  # every call overwrites it: a copy, not the shared read-only input
        host_operands = (host_operands[0].copy(), *host_operands[1:])
    operands = tuple(backend.to_device(array) for array in host_operands)
    out = backend.empty(op.result_shape(x_host.shape, case.axis), x_host.dtype)
    x = operands[0]
    operands, out = backend.peer_arrays(implementation, operands, out)
    compute = getattr(op, implementation.family)
    axis = case.axis
    return Prepared(
        call=lambda: compute(module, operands, axis, out),
        x=x,
        info=backend.implementation_info(implementation, module),
    )


def traced_peak(call):
    """Bytes of the most memory NumPy and Python held at once during one ``call()``, above the start.

    tracemalloc sees NumPy's array allocations (a full-size temporary shows as its size), not
    what Numba's kernels allocate inside themselves or what a device allocates.
    """
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already:
            tracemalloc.stop()
    return peak - start


class References:
    """The float64 oracle of each (op, axis) of the current input, computed once for all its cases."""

    def __init__(self):
        self._input = None
        self._results = {}

    def get(self, case, x_host):
        key = (tuple(case.shape), case.dtype)
        if key != self._input:
            self._input, self._results = key, {}
        if (case.op, case.axis) not in self._results:
            self._results[case.op, case.axis] = reference(case, x_host)
        return self._results[case.op, case.axis]


class CopyNormaliser:
    """Copy bandwidths per input, each measured once, when its first case asks for it.

    A copy is timed for at least 5 rounds and 0.05 s even in a quick sweep: one figure serves
    every case of its input, so it is worth the extra rounds.
    """

    def __init__(self, backend, options):
        self._backend = backend
        self._options = TimingOptions(
            min_rounds=max(options.min_rounds, 5),
            max_time=max(options.max_time, 0.05),
            round_time=options.round_time,
        )
        self._measured = {}

    def figures(self, x):
        """``{copy name: (median GB/s, best GB/s)}`` for the backend's copies of ``x`` (a backend array)."""
        key = (tuple(x.shape), str(x.dtype))
        if key not in self._measured:
            figures = {}
            for name, call in self._backend.copy_calls(x).items():
                call()  # warm-up: compile, fault in the destination
                times, iterations = measure(call, self._options, self._backend.synchronise)
                figures[name] = copy_bandwidths(x, summarize(times, iterations))
            self._measured[key] = figures
        return self._measured[key]


def copy_bandwidths(x, stats):
    """``(median GB/s, best GB/s)`` of a copy of ``x`` (it reads and writes ``x.nbytes``)."""
    return 2 * x.nbytes / stats["median"] / 1e9, 2 * x.nbytes / stats["min"] / 1e9


def throughput(case, median_s, min_s, copies):
    """The derived figures of a timed case from its median and best (min) time per call.

    ``gbps`` and ``fraction_of_<copy>`` use medians (the typical call); ``best_gbps`` and
    ``best_fraction_of_<copy>`` the fastest round of the case and of the copy (steadier on a busy
    machine, where a parallel call waits whenever one of its threads is descheduled).
    """
    gbps = case.bytes_moved / median_s / 1e9
    best_gbps = case.bytes_moved / min_s / 1e9
    figures = {"median_s": median_s, "min_s": min_s, "gbps": gbps, "best_gbps": best_gbps}
    for name, (copy_gbps, copy_best_gbps) in copies.items():
        figures[f"{name}_gbps"] = copy_gbps
        figures[f"{name}_best_gbps"] = copy_best_gbps
        figures[f"fraction_of_{name}"] = gbps / copy_gbps
        figures[f"best_fraction_of_{name}"] = best_gbps / copy_best_gbps
    return figures
