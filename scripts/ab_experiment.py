"""Does ``lsm bench compare`` tell a real slowdown from noise? Self-compares and an injected slowdown.

The experiment of issue 20, repeatable::

    python scripts/ab_experiment.py --runs 5 --share 0.05 --json ab-experiment.json --markdown ab.md

1. ``--runs`` comparisons of this checkout's ``HEAD`` against itself (worker processes over the same
   extracted tree): every case should be ``no change`` or ``no detectable change``;
2. ``--runs`` comparisons of ``HEAD`` against a copy whose ``log_softmax_backward`` runs its
   kernel once more over ``--share`` of the input (:func:`slowed_copy`): that op's cases should
   be ``slower``, and no other op's. On the 2-core development VM a share of 0.05 measured 4% to
   13% slower per case (benchmarks/RESULTS.md).

Each comparison starts fresh worker processes, so a process's own luck (memory placement,
thread timing) is part of what the experiment sees. Nothing is timed while anything else runs
on the machine by this script; say in the record how loaded the machine was (``uptime``).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lsm.bench import ab  # noqa: E402

SLOWED_OP = "log_softmax_backward"
SLOWED_FILE = Path("lsm") / "cpu" / "_backend.py"
SLOWED_TEXT = "    def softmax_backward(self, grad, y, where, out, log):\n"
# Run first in the slowed method: the same kernel once more over a contiguous `share` of the
# canonical (outer, n, inner) views, into a scratch array: the first `share` of the groups for
# rows (inner == 1), the first `share` of every group for columns. The flag keeps the extra call
# from slowing itself.
EXTRA_WORK = """\
        if log and where is None and not getattr(self, "_slowed", False):
            self._slowed = True
            try:
                rows = grad.shape[2] == 1
                m = max(1, round({share!r} * grad.shape[0 if rows else 1]))
                part = (slice(0, m),) if rows else (slice(None), slice(0, m))
                self.softmax_backward(grad[part], y[part], None, np.empty_like(out[part]), log)
            finally:
                self._slowed = False
"""


def slowed_copy(source_root, destination, share=0.05):
    """Copy the ``lsm`` package under ``source_root`` to ``destination/lsm``, its log_softmax
    gradient slowed: each call also runs the gradient kernel over ``share`` of its input (into a
    scratch array), so the op does about ``1 + share`` times its work, in its own kernel, while
    its results stay the same.

    Returns ``destination``; ``lsm bench compare`` takes it as a revision.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share={share}: give a fraction in (0, 1]")
    destination = Path(destination)
    shutil.copytree(
        Path(source_root) / "lsm", destination / "lsm", ignore=shutil.ignore_patterns("__pycache__")
    )
    backend = destination / SLOWED_FILE
    text = backend.read_text(encoding="utf-8")
    if text.count(SLOWED_TEXT) != 1:
        raise RuntimeError(f"{SLOWED_FILE}: {SLOWED_TEXT!r} is not there exactly once; update this script")
    backend.write_text(
        text.replace(SLOWED_TEXT, SLOWED_TEXT + EXTRA_WORK.format(share=share)), encoding="utf-8"
    )
    return destination


def flagged(doc):
    """``{verdict: [case ids]}`` of the cases called slower or faster."""
    found = {}
    for case in doc["cases"]:
        if case["verdict"] in ("slower", "faster"):
            found.setdefault(case["verdict"], []).append(case["case"])
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="comparisons of each kind (default: 5)")
    parser.add_argument(
        "--share", type=float, default=0.05, help="extra work of the slowed kernel (default: 0.05)"
    )
    parser.add_argument("--budget", type=float, default=ab.Settings.budget, help="seconds per comparison")
    parser.add_argument("--threshold", type=float, default=ab.Settings.threshold, help="e.g. 0.05")
    parser.add_argument("--suite", default="gate", choices=list(ab.SUITES))
    parser.add_argument("--json", help="write every comparison's document here")
    parser.add_argument("--markdown", help="write the summary table here")
    args = parser.parse_args(argv)

    settings = ab.Settings(threshold=args.threshold, budget=args.budget)
    cases = ab.cases_for(args.suite)
    head = ab.resolve("HEAD", ROOT)
    scratch = Path(tempfile.mkdtemp(prefix="lsm-ab-experiment-"))
    slowed = slowed_copy(head.root, scratch / "slowed", args.share)
    runs = []
    try:
        for kind, other in (("self", "HEAD"), ("slowed", str(slowed))):
            for index in range(args.runs):
                load = os.getloadavg()[0]
                start = time.perf_counter()
                doc = ab.run("HEAD", other, cases, settings, repo=ROOT)
                summary = flagged(doc)
                runs.append({"kind": kind, "run": index + 1, "load_at_start": load, "doc": doc, **summary})
                print(
                    f"{kind} run {index + 1}: {time.perf_counter() - start:.0f} s, load {load:.2f}, "
                    f"slower {summary.get('slower', [])}, faster {summary.get('faster', [])}",
                    flush=True,
                )
                if args.json:  # after every run: a long experiment stopped early keeps its data
                    Path(args.json).write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(scratch)
    lines = [
        f"| comparison | run | load at start | seconds | slower | faster | largest {SLOWED_OP} ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        slowed_ratios = [c["ratio"] for c in run["doc"]["cases"] if c["case"].startswith(SLOWED_OP + "-")]
        lines.append(
            f"| {run['kind']} | {run['run']} | {run['load_at_start']:.2f} | {run['doc']['seconds']} "
            f"| {', '.join(run.get('slower', [])) or 0} | {', '.join(run.get('faster', [])) or 0} "
            f"| {max(slowed_ratios):.3f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
