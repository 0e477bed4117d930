"""The timing loop of ``lsm bench`` and the statistics it reports, in pytest-benchmark's terms.

A *round* is ``iterations`` back-to-back calls between two clock readings; the loop first
calibrates ``iterations`` so a round lasts at least ``round_time`` (which keeps the clock's
resolution and, on a GPU, the launch and synchronisation latency out of the per-call figure).
Each round gives one per-call time (its duration / iterations); the statistics are over those, as
pytest-benchmark computes them. GPU work is synchronised before a round starts and before it ends.

:func:`measure_together` times several calls in interleaved rounds: every pass runs one round of
each call in turn, until each has ``min_rounds`` rounds and ``max_time`` seconds per call have
passed. Load from other processes comes in bursts (on a busy 2-core machine a parallel kernel
then waits milliseconds for a descheduled thread); interleaving spreads each burst over all the
calls compared instead of spoiling whichever one was running, so their ratios stay meaningful.

Every round starts with one untimed call. Between two rounds of one call the others ran, and the
worker threads of its thread pool (Numba's, torch's OpenMP pool) may have gone to sleep; waking
them costs milliseconds on a busy machine, which would otherwise land on the round's first call.
The figures are therefore steady-state throughput, as a loop of calls sees it.
"""

import math
import statistics
import time
from dataclasses import asdict, dataclass

MAX_ROUNDS = 10_000


@dataclass(frozen=True)
class TimingOptions:
    """How long to time each case: at least ``min_rounds`` rounds and ``max_time`` seconds."""

    min_rounds: int = 5
    max_time: float = 0.2
    round_time: float = 1e-3

    def as_options(self):
        """The options as a result records them (pytest-benchmark's ``options`` entry)."""
        return {**asdict(self), "timer": "perf_counter"}


def _round_seconds(call, iterations, synchronise):
    call()  # untimed: wakes the thread pool that another call's round let fall asleep
    synchronise()
    start = time.perf_counter()
    for _ in range(iterations):
        call()
    synchronise()
    return time.perf_counter() - start


def calibrate(call, options, synchronise):
    """Calls per round so that one round lasts at least ``options.round_time``.

    A round that lasts long enough is timed once more and the faster of the two counts, so a
    stall caused by another process does not end the calibration early.
    """
    iterations = 1
    while True:
        elapsed = _round_seconds(call, iterations, synchronise)
        if elapsed >= options.round_time:
            elapsed = min(elapsed, _round_seconds(call, iterations, synchronise))
            if elapsed >= options.round_time:
                return iterations
        # Aim 20% past the target, growing at most tenfold per step in case the first round was odd.
        wanted = math.ceil(iterations * 1.2 * options.round_time / max(elapsed, 1e-9))
        iterations = max(iterations + 1, min(wanted, 10 * iterations))


def measure_together(calls, options, synchronise):
    """Time the (warmed-up) ``calls``, a dict of no-argument callables, in interleaved rounds.

    Returns ``{name: (per-call seconds of each round, iterations per round)}``.
    """
    iterations = {name: calibrate(call, options, synchronise) for name, call in calls.items()}
    times = {name: [] for name in calls}
    deadline = time.perf_counter() + options.max_time * len(calls)
    rounds = 0
    while rounds < options.min_rounds or (time.perf_counter() < deadline and rounds < MAX_ROUNDS):
        for name, call in calls.items():
            times[name].append(_round_seconds(call, iterations[name], synchronise) / iterations[name])
        rounds += 1
    return {name: (times[name], iterations[name]) for name in calls}


def measure(call, options, synchronise):
    """Time one (warmed-up) ``call``: ``(per-call seconds of each round, iterations per round)``."""
    return measure_together({"call": call}, options, synchronise)["call"]


def _quartiles(ordered):
    if len(ordered) == 1:
        return ordered[0], ordered[0]
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return q1, q3


def summarize(times, iterations):
    """pytest-benchmark's ``stats`` entry for per-call ``times`` measured in rounds of ``iterations``.

    Quartiles interpolate inclusively; ``ld15iqr``/``hd15iqr`` are the lowest and highest times
    within 1.5 IQR of the quartiles (Tukey's fences); ``outliers`` counts times beyond one
    standard deviation of the mean and beyond the fences, as ``"stddev;iqr"``.
    """
    ordered = sorted(times)
    mean = statistics.fmean(ordered)
    stddev = statistics.stdev(ordered) if len(ordered) > 1 else 0.0
    q1, q3 = _quartiles(ordered)
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    inside = [t for t in ordered if low_fence <= t <= high_fence]
    stddev_outliers = sum(1 for t in ordered if abs(t - mean) > stddev)
    iqr_outliers = len(ordered) - len(inside)
    total = sum(ordered)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": len(ordered),
        "median": statistics.median(ordered),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": inside[0],
        "hd15iqr": inside[-1],
        "ops": len(ordered) / total if total > 0 else 0.0,
        "total": total,
        "iterations": iterations,
    }
