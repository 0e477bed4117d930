"""``lsm bench record`` and ``lsm bench history``: each commit's figures kept, plotted over commits.

``record`` times a suite of :mod:`lsm.bench.suites` (default ``gate``) with the ordinary engine
(:mod:`lsm.bench.engine`: lsm beside a same-run copy of each input) and writes the results
document to ``DIR/<machine>/<commit>.json``, ``<machine>`` naming the processor and thread count
(figures of different machines are never mixed) and ``<commit>`` the checked-out commit (with
``-dirty`` when the tree has uncommitted changes).

``history`` reads one machine's folder, orders the documents by commit time and, for each case,
draws its figure over the commits (PNG) and flags *steps*: a commit where the figure, and the
median of the figure at it and up to two later commits, both differ by more than the threshold
(the same way) from the median at up to three earlier ones. A step must hold over the commits
after it, so one noisy run is not flagged unless it is the newest (then it is flagged as
unconfirmed). This is the overview of when something changed, as asv draws it; whether a
change is real is for ``lsm bench compare`` of the two commits, which times them side by side.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from .engine import Timing, document, run_cases, timed_cases
from .suites import SUITES, suite_cases
from .verdict import median

FIGURES = ("fraction_of_copy", "gbps", "median_s")
BEFORE, AFTER = 3, 3  # commits compared on either side of a candidate step


def machine_key(machine_info):
    """A folder name for the machine: processor, logical CPU count and Numba threads."""
    cpu = machine_info.get("cpu", {})
    words = f"{cpu.get('brand_raw') or machine_info.get('processor') or 'cpu'}"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", words).strip("-").lower()
    return f"{slug}-{cpu.get('count', 0)}cpu-{machine_info.get('numba_num_threads', 0)}threads"


def record(folder, suite="gate", timing=None):
    """Time ``suite`` on this checkout and write it under ``folder``; return the file's path.

    Raises
    ------
    RuntimeError
        If a case fails or is skipped (lsm runs every case of a suite; a history with holes
        would hide the change it should show).
    """
    from .backends import BACKENDS

    backend = BACKENDS["cpu"]
    entries, skipped, failed = run_cases(backend, suite_cases(SUITES[suite]), timing or Timing())
    if failed or skipped:
        raise RuntimeError(f"{len(failed)} cases failed, {len(skipped)} skipped: {(failed + skipped)[:3]}")
    doc = document(entries, backend)
    commit = doc["commit_info"]
    name = f"{commit.get('id') or 'unknown'}{'-dirty' if commit.get('dirty') else ''}.json"
    path = Path(folder) / machine_key(doc["machine_info"]) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def load_history(folder):
    """The documents of one machine's folder, oldest commit first: ``[(label, doc)]``."""
    docs = []
    for path in Path(folder).glob("*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        commit = doc.get("commit_info", {})
        label = (commit.get("id") or path.stem)[:8] + ("+" if commit.get("dirty") else "")
        docs.append((commit.get("time") or doc.get("datetime", ""), label, doc))
    docs.sort(key=lambda item: item[0])
    return [(label, doc) for _, label, doc in docs]


def series(history, figure):
    """``{case key: [figure or None per commit]}`` over the history."""
    keys = {}
    per_commit = [timed_cases(doc) for _, doc in history]
    for cases in per_commit:
        for key in cases:
            keys.setdefault(key, None)
    return {key: [cases[key][figure] if key in cases else None for cases in per_commit] for key in keys}


def steps(values, threshold):
    """``[(index, ratio, confirmed)]``: the commits where ``values`` steps (module docstring)."""
    found = []
    for index in range(1, len(values)):
        before = [v for v in values[max(0, index - BEFORE) : index] if v is not None]
        after = [v for v in values[index : index + AFTER] if v is not None]
        if not before or not after or values[index] is None:
            continue
        ratio, own = median(after) / median(before), values[index] / median(before)
        if abs(ratio - 1) > threshold and abs(own - 1) > threshold and (ratio > 1) == (own > 1):
            confirmed = len(after) > 1
            # one step per change: skip a neighbour already flagged in the same direction
            if found and found[-1][0] == index - 1 and (found[-1][1] > 1) == (ratio > 1):
                continue
            found.append((index, ratio, confirmed))
    return found


def plot(history, figure, path):
    """Draw every case's ``figure`` over the commits into ``path`` (PNG), one panel per op."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = series(history, figure)
    ops = sorted({key.split("-cpu-")[0] for key in lines})
    fig, axes = plt.subplots(len(ops), 1, figsize=(10, 3 * len(ops)), squeeze=False, sharex=True)
    labels = [label for label, _ in history]
    for ax, op in zip(axes[:, 0], ops, strict=True):
        for key, values in lines.items():
            if key.split("-cpu-")[0] == op:
                points = [(i, v) for i, v in enumerate(values) if v is not None]
                ax.plot(*zip(*points, strict=True), marker="o", label=key.split("-cpu-")[1])
        ax.set_title(op)
        ax.set_ylabel(figure)
        ax.legend(fontsize=6, ncol=2)
    axes[-1, 0].set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(command, argv):
    """Run ``lsm bench record`` or ``lsm bench history``; return the exit status."""
    from .compare import parse_threshold

    parser = argparse.ArgumentParser(prog=f"lsm bench {command}", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", default="lsm-bench-history", help="the history folder (default: ./lsm-bench-history)"
    )
    if command == "record":
        parser.add_argument(
            "--suite", choices=list(SUITES), default="gate", help="case selection (default: gate)"
        )
        args = parser.parse_args(argv)
        path = record(args.dir, args.suite)
        print(f"wrote {path}")
        return 0
    parser.add_argument("--machine", help="the machine's folder under --dir (default: the only one)")
    parser.add_argument("--figure", choices=FIGURES, default=FIGURES[0], help="the figure to follow")
    parser.add_argument(
        "--threshold", type=parse_threshold, default=0.1, help="smallest step flagged (default: 10%%)"
    )
    parser.add_argument("--out", default="lsm-bench-history.png", help="the plot (PNG)")
    args = parser.parse_args(argv)
    machines = sorted(path.name for path in Path(args.dir).iterdir() if path.is_dir())
    machine = args.machine or (machines[0] if len(machines) == 1 else None)
    if machine is None:
        print(f"lsm bench history: error: pass --machine, one of: {' '.join(machines)}", file=sys.stderr)
        return 2
    history = load_history(Path(args.dir) / machine)
    if not history:
        print(f"lsm bench history: error: no results under {Path(args.dir) / machine}", file=sys.stderr)
        return 2
    plot(history, args.figure, args.out)
    print(f"{len(history)} commits on {machine}; wrote {args.out}")
    labels = [label for label, _ in history]
    for key, values in series(history, args.figure).items():
        for index, ratio, confirmed in steps(values, args.threshold):
            note = "" if confirmed else " (newest commit only: unconfirmed)"
            print(f"step at {labels[index]}: {key} {args.figure} x{ratio:.2f}{note}")
    return 0
