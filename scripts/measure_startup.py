"""Startup cost of lsm: ``import lsm`` and the first call in a fresh process, warm and cold.

Usage::

    python scripts/measure_startup.py                      # every op, 3 warm processes each
    python scripts/measure_startup.py --op log_softmax --no-cold --json startup.json

Each measurement is a new Python process running :data:`CHILD`: it builds a small float32 input
with NumPy, then times ``import lsm`` and one call of one op, and prints both as JSON.

- *warm*: the kernel cache as this checkout has it, after one untimed process has filled it:
  what every later process of a user pays. The median of ``--repeats`` processes.
- *cold*: ``NUMBA_CACHE_DIR`` pointed at a new, empty folder, so Numba compiles every kernel the
  call needs. Numba then caches there instead of beside the sources, so the checkout's own cache
  is left as it was.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

OPS = ("log_softmax", "softmax", "logsumexp", "log_softmax_backward", "softmax_backward", "cross_entropy")
SHAPE = (8, 32)  # small: the serial kernels, which is what a first call on little data compiles
ROOT = Path(__file__).resolve().parent.parent  # the child imports this checkout's lsm

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
    """The child's figures: the JSON object on the last line of its output.

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
    """One fresh process: ``{"import_s", "first_call_s"}``; ``cache_dir`` sets ``NUMBA_CACHE_DIR``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    command = [sys.executable, "-c", CHILD, op, *map(str, shape)]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if completed.returncode != 0:
        raise RuntimeError(f"lsm.{op} in a fresh process failed:\n{completed.stderr[-2000:]}")
    return parse(completed.stdout)


def summary(op, warm, cold=None, shape=SHAPE):
    """The figures of ``op`` from its warm runs (a list of :func:`run_child` results) and cold run.

    ``warm_s`` is the median of import plus first call; ``cold_s`` the same with an empty cache.
    """
    info = {
        "op": op,
        "shape": list(shape),
        "import_s": statistics.median(run["import_s"] for run in warm),
        "first_call_s": statistics.median(run["first_call_s"] for run in warm),
        "warm_s": statistics.median(run["import_s"] + run["first_call_s"] for run in warm),
    }
    if cold is not None:
        info["cold_s"] = cold["import_s"] + cold["first_call_s"]
    return info


def measure(op, repeats=3, cold=True, shape=SHAPE):
    """Time ``op``'s startup: one untimed process, ``repeats`` warm ones, and a cold one."""
    run_child(op, shape)  # fills the cache if it was cold, so the timed runs find it warm
    warm = [run_child(op, shape) for _ in range(repeats)]
    if not cold:
        return summary(op, warm, None, shape)
    with tempfile.TemporaryDirectory(prefix="lsm-cold-cache-") as folder:
        return summary(op, warm, run_child(op, shape, folder), shape)


def table(infos):
    """A markdown table of :func:`summary` results, one row per op."""
    lines = [
        "| op | input | import lsm (s) | first call (s) | import + call (s) | cold: import + call (s) |",
        "|---|---|---|---|---|---|",
    ]
    for info in infos:
        cold = f"{info['cold_s']:.2f}" if "cold_s" in info else "-"
        cells = [info["op"], "float32 " + "x".join(map(str, info["shape"]))]
        cells += [f"{info[key]:.3f}" for key in ("import_s", "first_call_s", "warm_s")] + [cold]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="measure_startup.py",
        description="Time import lsm + the first call of each op on a small float32 array in fresh "
        "processes: with the kernel cache warm (median of --repeats) and cold (an empty "
        "NUMBA_CACHE_DIR, so every kernel the call needs is compiled).",
    )
    parser.add_argument("--op", nargs="+", choices=OPS, default=list(OPS), metavar="OP")
    parser.add_argument("--repeats", type=int, default=3, help="warm processes per op (default 3)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold compile")
    parser.add_argument("--shape", type=int, nargs=2, default=list(SHAPE), metavar=("ROWS", "COLS"))
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    infos = [measure(op, args.repeats, not args.no_cold, tuple(args.shape)) for op in args.op]
    print(table(infos))
    if args.json:
        Path(args.json).write_text(json.dumps(infos, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
