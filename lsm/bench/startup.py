"""Startup cost (goal 8): ``import lsm`` and the first call in a fresh process, warm and cold.

Each measurement is a new Python process running :data:`CHILD`: it builds a small float32 input
with NumPy, then times ``import lsm`` and one call of one op, and prints both as JSON.

- *warm*: the kernel cache as this installation has it, after one untimed process has filled
  it: what every later process of a user pays. The median of ``repeats`` processes.
- *cold*: ``NUMBA_CACHE_DIR`` pointed at a new, empty folder, so Numba compiles every kernel the
  call needs. Numba then caches there instead of beside the sources, so the installation's own
  cache (and ``lsm/cpu/_cache.py``'s fingerprint of it) is left as it was.

``python scripts/measure_startup.py`` prints the table; ``lsm bench --goals`` and
``benchmarks/bench_goals.py`` record the same figures (:func:`startup_info`) for the goal table.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .cases import OPS, shape_id
from .report import markdown
from .timing import summarize

SHAPE = (8, 32)  # small: the serial kernels, which is what a first call on little data compiles
TARGET_S = 1.0
_LSM_PARENT = Path(__file__).resolve().parent.parent.parent  # the child imports this same lsm

# The child times ``import lsm`` and the first call only; NumPy and the input come before.
CHILD = """\
import json, sys, time
import numpy as np

op, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32)
operands = {
    "log_softmax_backward": (x, x),
    "softmax_backward": (x, x),
    "cross_entropy": (x, np.arange(rows) % cols),
}.get(op, (x,))
start = time.perf_counter()
import lsm
imported = time.perf_counter()
getattr(lsm, op)(*operands, axis=-1)
called = time.perf_counter()
print(json.dumps({"import_s": imported - start, "first_call_s": called - imported}))
"""


def parse(stdout):
    """The child's figures from its output: the JSON object on its last line.

    Raises
    ------
    ValueError
        If the last line is not a JSON object with ``import_s`` and ``first_call_s``.
    """
    lines = stdout.strip().splitlines()
    try:
        figures = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        figures = None
    if not isinstance(figures, dict) or not {"import_s", "first_call_s"} <= set(figures):
        raise ValueError(f"no startup figures in the child's output: {stdout[-500:]!r}")
    return figures


def run_child(op, shape=SHAPE, cache_dir=None):
    """One fresh process: ``{"import_s", "first_call_s", "process_s"}`` (the last: its wall time).

    ``cache_dir`` sets ``NUMBA_CACHE_DIR`` for it (an empty folder: a cold compile).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_LSM_PARENT), env.get("PYTHONPATH")]))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    command = [sys.executable, "-c", CHILD, op, *map(str, shape)]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    process_s = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"lsm.{op} in a fresh process failed:\n{completed.stderr[-2000:]}")
    return {**parse(completed.stdout), "process_s": process_s}


def run_cold(op, shape=SHAPE):
    """:func:`run_child` with an empty kernel cache of its own, deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="lsm-cold-cache-") as folder:
        return run_child(op, shape, folder)


def startup_info(op, warm, cold=None, shape=SHAPE):
    """The figures of ``op`` from its warm runs (a list of :func:`run_child` results) and cold run.

    ``warm_s`` (the goal's figure) is the median of import plus first call (``warm_runs_s``: each
    run's); ``cold_s`` the same with an empty cache. ``measure: "startup"`` marks them in a
    results document.
    """
    runs = [run["import_s"] + run["first_call_s"] for run in warm]
    info = {
        "measure": "startup",
        "op": op,
        "impl": "lsm",
        "dtype": "float32",
        "shape": list(shape),
        "rounds": len(warm),
        "import_s": statistics.median(run["import_s"] for run in warm),
        "first_call_s": statistics.median(run["first_call_s"] for run in warm),
        "warm_s": statistics.median(runs),
        "warm_runs_s": runs,
        "process_s": statistics.median(run["process_s"] for run in warm),
    }
    if cold is not None:
        info["cold_s"] = cold["import_s"] + cold["first_call_s"]
    return info


def measure(op, repeats=3, cold=True, shape=SHAPE):
    """Time ``op``'s startup: one untimed process, ``repeats`` warm ones, and a cold one."""
    run_child(op, shape)  # fills the cache if it was cold, so the timed runs find it warm
    warm = [run_child(op, shape) for _ in range(repeats)]
    return startup_info(op, warm, run_cold(op, shape) if cold else None, shape)


def entry(info):
    """A results-document entry (pytest-benchmark's layout) of one op's startup figures; its
    ``stats`` are those of the warm runs' import plus first call."""
    name = f"startup-{info['op']}"
    return {
        "group": "startup",
        "name": name,
        "fullname": f"lsm bench::{name}",
        "params": {"case": name},
        "param": name,
        "extra_info": info,
        "options": {"timer": "perf_counter"},
        "stats": summarize(info["warm_runs_s"], iterations=1),
    }


def startup_table(infos):
    """The startup table: one row per op's :func:`startup_info`."""
    headers = ["op", "input", "import lsm (s)", "first call (s)", "import + call (s)", "process (s)"]
    headers += ["cold: import + call (s)", f"warm <= {TARGET_S:g} s"]
    rows = []
    for info in infos:
        cold = info.get("cold_s")
        cells = [
            info["op"],
            f"{info['dtype']} {shape_id(info['shape'])}",
            f"{info['import_s']:.3f}",
            f"{info['first_call_s']:.3f}",
            f"{info['warm_s']:.3f}",
            f"{info['process_s']:.3f}",
            "-" if cold is None else f"{cold:.2f}",
            "yes" if info["warm_s"] <= TARGET_S else "no",
        ]
        rows.append(cells)
    return markdown(headers, rows)


def main(argv=None):
    """``scripts/measure_startup.py``: print the startup table (and optionally save it as JSON)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="measure_startup.py",
        description="Time import lsm + the first call of each op on a small float32 array in fresh "
        "processes: with the kernel cache warm (median of --repeats) and cold (an empty "
        "NUMBA_CACHE_DIR, so every kernel the call needs is compiled).",
    )
    parser.add_argument("--op", nargs="+", choices=list(OPS), default=list(OPS), metavar="OP")
    parser.add_argument("--repeats", type=int, default=3, help="warm processes per op (default 3)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold compile")
    parser.add_argument("--shape", type=int, nargs=2, default=list(SHAPE), metavar=("ROWS", "COLS"))
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    infos = [measure(op, args.repeats, not args.no_cold, tuple(args.shape)) for op in args.op]
    print(startup_table(infos))
    if args.json:
        Path(args.json).write_text(json.dumps(infos, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0
