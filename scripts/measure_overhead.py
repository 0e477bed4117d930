"""Measure lsm's fixed per-call overhead and where its parallel kernels start to pay off.

Usage::

    python scripts/measure_overhead.py                   # print two markdown tables
    python scripts/measure_overhead.py --json out.json   # also save the numbers
    python scripts/measure_overhead.py --dtype float32 --cols 32 1024 --passes 8

Purpose
-------
1. *Per-call overhead.* ``lsm.log_softmax``, ``lsm.softmax`` and ``lsm.logsumexp`` on a
   100-element float64 array against ``scipy.special``: at that size the arithmetic is a few
   hundred nanoseconds, so the time is almost all argument checking, planning and dispatch.
2. *Serial/parallel crossover.* ``lsm/cpu/_backend.py`` runs the serial kernel below
   ``PARALLEL_MIN_ELEMENTS`` elements and the ``prange`` kernel above. This times one call of
   each row kernel of ``lsm/cpu/_forward.py`` directly on the canonical view
   ``x.reshape(rows, cols)`` (``where=None``) for sizes from 1k to 256k elements and a few
   row lengths, next to the public call, and reports the smallest size at which the parallel
   kernel wins (and any larger size where it lost again). Use it to check or retune
   ``PARALLEL_MIN_ELEMENTS``.

The 100-element figures are the best (minimum) per-call time over ``--repeats`` repeats of
``timeit`` with an automatically chosen loop count. The crossover figures time single calls one
by one, about 0.1 s per kernel and size spread over ``--passes`` sweeps, and report the best
(the cost on a quiet machine) and, in the JSON and the "medians" column, the median (what a
busy machine gives: a parallel call stalls whenever one of its worker threads is descheduled).
Every measurement follows a warm-up call that compiles the kernels. Run it on an otherwise idle
machine before changing the threshold.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
import timeit

import numba
import numpy as np
import scipy
import scipy.special

import lsm
from lsm.cpu import _config, _forward

OPS = ("log_softmax", "softmax", "logsumexp")
CROSSOVER_SIZES = tuple(1 << p for p in range(10, 19))  # 1k .. 256k elements
DEFAULT_COLS = (32, 1024)


def best_seconds(func, repeats):
    """Best per-call seconds of ``func`` over ``repeats`` timeit repeats (after one warm-up call)."""
    func()
    timer = timeit.Timer(func)
    loops, _ = timer.autorange()  # loops lasting at least 0.2 s in all
    loops = max(1, loops // 4)  # ... cut to about 50 ms per repeat to keep the script quick
    return min(timer.repeat(repeat=repeats, number=loops)) / loops


def single_call_times(func, budget_s, min_calls=5, max_calls=1000):
    """Seconds of single calls of ``func``, timed one by one for about ``budget_s``."""
    clock = time.perf_counter
    times = []
    deadline = clock() + budget_s
    while len(times) < max_calls and (len(times) < min_calls or clock() < deadline):
        start = clock()
        func()
        times.append(clock() - start)
    return times


def overhead_rows(repeats):
    x = np.random.default_rng(0).standard_normal(100)
    rows = []
    for op in OPS:
        ours = getattr(lsm, op)
        theirs = getattr(scipy.special, op)
        lsm_s = best_seconds(lambda ours=ours: ours(x), repeats)
        scipy_s = best_seconds(lambda theirs=theirs: theirs(x), repeats)
        rows.append({"op": op, "elements": x.size, "lsm_us": lsm_s * 1e6, "scipy_us": scipy_s * 1e6})
    return rows


def kernel_calls(op, x2):
    """``(serial, parallel)`` no-argument calls of ``op``'s row kernels on the 2-D rows ``x2``:
    the short-row (chunked) kernels for rows of up to ``SHORT_ROW`` elements, as
    ``lsm/cpu/_backend.py`` picks them."""
    rows, cols = x2.shape
    short = cols <= _forward.SHORT_ROW
    chunks = (_forward.chunk_rows(rows, cols, 1), _forward.chunk_rows(rows, cols, numba.get_num_threads()))
    if op == "logsumexp":
        lse = np.empty(rows, dtype=x2.dtype)
        if short:
            serial, parallel = _forward.logsumexp_short_rows_serial, _forward.logsumexp_short_rows_parallel
            return (
                lambda: serial(x2, None, None, lse, None, chunks[0]),
                lambda: parallel(x2, None, None, lse, None, chunks[1]),
            )
        return (
            lambda: _forward.logsumexp_rows_serial(x2, None, None, lse, None),
            lambda: _forward.logsumexp_rows_parallel(x2, None, None, lse, None),
        )
    out2 = np.empty_like(x2)
    log = op == "log_softmax"
    if short:
        serial, parallel = _forward.softmax_short_rows_serial, _forward.softmax_short_rows_parallel
        return (
            lambda: serial(x2, None, out2, log, chunks[0]),
            lambda: parallel(x2, None, out2, log, chunks[1]),
        )
    keep = not log  # softmax keeps its exponentials in out, as lsm/cpu/_backend.py lets it
    return (
        lambda: _forward.softmax_rows_serial(x2, None, out2, keep, None, log),
        lambda: _forward.softmax_rows_parallel(x2, None, out2, keep, None, log),
    )


def public_call(op, x):
    func = getattr(lsm, op)
    if op == "logsumexp":
        out = np.empty(x.shape[0], dtype=x.dtype)
        return lambda: func(x, axis=-1, out=out)
    out = np.empty_like(x)
    return lambda: func(x, axis=-1, out=out)


def crossover_rows(dtype, cols_list, passes, budget_s=0.1):
    """Time serial kernel, parallel kernel and public call for every (op, cols, size).

    Calls are timed one at a time, so a call that waits for a descheduled worker thread spoils
    only itself, and in ``passes`` sweeps over all configurations, so a burst of load from
    another process spoils only part of a configuration's samples. The best time is the cost on
    a quiet machine; the median is what a busy one gives.
    """
    rng = np.random.default_rng(1)
    configs = []
    for op in OPS:
        for cols in cols_list:
            for size in CROSSOVER_SIZES:
                n_rows = max(1, size // cols)
                x = rng.standard_normal((n_rows, cols)).astype(dtype)
                serial, parallel = kernel_calls(op, x.reshape(n_rows, cols))
                calls = {"serial": serial, "parallel": parallel, "public": public_call(op, x)}
                for call in calls.values():
                    call()  # warm-up: compile (or load from Numba's cache), fault in the output
                configs.append((op, x, calls, {name: [] for name in calls}))
    for _ in range(passes):
        for _op, _x, calls, samples in configs:
            for name, call in calls.items():
                samples[name] += single_call_times(call, budget_s / passes)
    rows = []
    for op, x, _calls, samples in configs:
        best = {name: min(times) for name, times in samples.items()}
        median = {name: statistics.median(times) for name, times in samples.items()}
        rows.append(
            {
                "op": op,
                "dtype": x.dtype.name,
                "rows": x.shape[0],
                "cols": x.shape[1],
                "elements": x.size,
                "serial_us": best["serial"] * 1e6,
                "parallel_us": best["parallel"] * 1e6,
                "speedup": best["serial"] / best["parallel"],
                "serial_median_us": median["serial"] * 1e6,
                "parallel_median_us": median["parallel"] * 1e6,
                "median_speedup": median["serial"] / median["parallel"],
                "lsm_uses": "parallel" if x.size >= _config.PARALLEL_MIN_ELEMENTS else "serial",
                "public_us": best["public"] * 1e6,
                "public_median_us": median["public"] * 1e6,
                "samples": len(samples["parallel"]),
            }
        )
    return rows


def crossovers(rows):
    """Per (op, cols): the smallest size where the parallel kernel wins, and larger sizes where it lost.

    On a quiet machine the second list is empty; on a busy one it names the sizes whose
    parallel timings a descheduled worker thread spoiled (rerun those).
    """
    found = {}
    for key in sorted({(row["op"], row["cols"]) for row in rows}, key=lambda k: (OPS.index(k[0]), k[1])):
        series = sorted((row for row in rows if (row["op"], row["cols"]) == key), key=lambda r: r["elements"])
        wins = [row["elements"] for row in series if row["speedup"] > 1]
        first = wins[0] if wins else None
        above = [row for row in series if first and row["elements"] > first]
        lost = [row["elements"] for row in above if row["speedup"] <= 1]
        found[f"{key[0]} cols={key[1]}"] = {"parallel_wins_from": first, "parallel_loses_above_that_at": lost}
    return found


OVERHEAD_HEADERS = ["op", "lsm (us)", "scipy.special (us)", "lsm / scipy"]
CROSSOVER_HEADERS = [
    "op",
    "elements",
    "shape",
    "serial (us)",
    "parallel (us)",
    "serial / parallel",
    "same, medians",
    "lsm uses",
    "lsm call (us)",
]


def overhead_cells(row):
    ratio = row["lsm_us"] / row["scipy_us"]
    return [row["op"], f"{row['lsm_us']:.2f}", f"{row['scipy_us']:.2f}", f"{ratio:.2f}"]


def crossover_cells(row):
    return [
        row["op"],
        row["elements"],
        f"{row['rows']}x{row['cols']}",
        f"{row['serial_us']:.1f}",
        f"{row['parallel_us']:.1f}",
        f"{row['speedup']:.2f}",
        f"{row['median_speedup']:.2f}",
        row["lsm_uses"],
        f"{row['public_us']:.1f}",
    ]


def markdown(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def environment():
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "unknown"
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": layer,
        "parallel_min_elements": _config.PARALLEL_MIN_ELEMENTS,
        "machine": platform.machine(),
        "processor": platform.processor(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the measurements to PATH as JSON")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"], help="crossover dtype")
    parser.add_argument(
        "--cols", type=int, nargs="+", default=list(DEFAULT_COLS), help="row lengths for the crossover"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timeit repeats for the 100-element calls")
    parser.add_argument("--passes", type=int, default=4, help="sweeps over the crossover configurations")
    args = parser.parse_args(argv)

    overhead = overhead_rows(args.repeats)
    crossover = crossover_rows(args.dtype, args.cols, args.passes)
    env = environment()  # after the parallel kernels ran, so the threading layer is known
    found = crossovers(crossover)

    print(
        f"numba {env['numba']} ({env['numba_threading_layer']}, {env['numba_threads']} threads), "
        f"numpy {env['numpy']}, scipy {env['scipy']}, {env['cpu_count']} CPUs\n"
    )
    print("## Per-call time, 100 float64 elements (best of repeats)\n")
    print(markdown(OVERHEAD_HEADERS, [overhead_cells(row) for row in overhead]))
    print(f"\n## Serial vs parallel row kernels, {args.dtype} (one call: best of single calls)\n")
    print(markdown(CROSSOVER_HEADERS, [crossover_cells(row) for row in crossover]))
    print(f"\nPARALLEL_MIN_ELEMENTS = {env['parallel_min_elements']}. The parallel kernel is faster from:")
    for key, result in found.items():
        first = result["parallel_wins_from"]
        line = f"- {key}: {first} elements" if first else f"- {key}: never, within the sizes measured"
        if result["parallel_loses_above_that_at"]:
            line += f" (but slower again at {result['parallel_loses_above_that_at']}: noise? rerun)"
        print(line)

    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"environment": env, "overhead": overhead, "crossover": crossover, "crossover_from": found},
                handle,
                indent=2,
            )
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
