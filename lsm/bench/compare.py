"""The regression gate: compare two ``lsm bench`` results case by case on copy-normalised throughput.

``python -m lsm.bench.compare BASELINE.json CURRENT.json [--threshold 10%]`` matches the cases
of two results by their ``extra_info`` (op, backend, dtype, shape, axis, impl) and compares
``fraction_of_copy``: each run's throughput as a fraction of a memory copy timed in the same
run, so a baseline stays comparable when the machine is busier or a little different. A case
regresses when its figure falls by more than the threshold (current < (1 - threshold) x baseline).

Exit status: 0 when nothing regressed, 1 naming each regressed case, 2 when the inputs cannot
be compared (unreadable file, bad threshold, no case in common). Cases in only one of the two
results are listed and otherwise ignored.
"""

import argparse
import sys
from dataclasses import dataclass

from .engine import load, timed_cases
from .report import describe_run

FIGURES = ("fraction_of_copy", "best_fraction_of_copy")


def parse_threshold(text):
    """``"10%"`` or ``"0.1"`` as the fraction 0.1; raise ValueError outside (0, 1)."""
    stripped = text.strip()
    try:
        value = float(stripped[:-1]) / 100 if stripped.endswith("%") else float(stripped)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise ValueError(f"threshold {text!r}: give a percentage like 10% or a fraction like 0.1, below 100%")
    return value


@dataclass
class Comparison:
    """What :func:`compare` found: ``changes`` maps each common case to (baseline, current)."""

    changes: dict
    regressed: list
    improved: list
    only_baseline: list
    only_current: list


def compare(baseline, current, threshold, figure="fraction_of_copy", impls=None):
    """Compare two results documents (see the module docstring)."""

    def cases(doc):
        return {
            key: info[figure]
            for key, info in timed_cases(doc).items()
            if impls is None or info["impl"] in impls
        }

    before, after = cases(baseline), cases(current)
    changes = {key: (before[key], after[key]) for key in before if key in after}
    ratio = {key: new / old for key, (old, new) in changes.items()}
    return Comparison(
        changes=changes,
        regressed=sorted((key for key in changes if ratio[key] < 1 - threshold), key=ratio.get),
        improved=sorted(
            (key for key in changes if ratio[key] > 1 / (1 - threshold)), key=lambda key: -ratio[key]
        ),
        only_baseline=sorted(set(before) - set(after)),
        only_current=sorted(set(after) - set(before)),
    )


def machine_differences(baseline, current):
    """Machine facts that differ between the runs (the figures then compare less well)."""
    old, new = baseline.get("machine_info", {}), current.get("machine_info", {})
    facts = {
        "cpu": lambda machine: machine.get("cpu", {}).get("brand_raw"),
        "cpu count": lambda machine: machine.get("cpu", {}).get("count"),
        "numba threading layer": lambda machine: machine.get("numba_threading_layer"),
        "numba threads": lambda machine: machine.get("numba_num_threads"),
        "gpu": lambda machine: machine.get("gpu"),
    }
    return [f"{name}: {fact(old)} -> {fact(new)}" for name, fact in facts.items() if fact(old) != fact(new)]


def report(comparison, threshold, figure, stream):
    """Print the comparison: regressions, improvements, and cases missing on either side."""
    print(
        f"{len(comparison.changes)} cases compared on {figure}, threshold {100 * threshold:g}%", file=stream
    )
    sections = (
        ("REGRESSED", comparison.regressed),
        ("improved", comparison.improved),
        ("only in the baseline (ignored)", comparison.only_baseline),
        ("only in the current run (ignored)", comparison.only_current),
    )
    for title, keys in sections:
        if keys:
            print(f"{title} ({len(keys)}):", file=stream)
        for key in keys:
            if key in comparison.changes:
                old, new = comparison.changes[key]
                print(f"  {key}: {old:.3f} -> {new:.3f} ({100 * (new / old - 1):+.1f}%)", file=stream)
            else:
                print(f"  {key}", file=stream)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lsm.bench.compare",
        description="Fail when a case's copy-normalised throughput fell by more than a threshold.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("baseline", metavar="BASELINE.json", help="the reference results")
    parser.add_argument("current", metavar="CURRENT.json", help="the results to check")
    parser.add_argument("--threshold", default="10%", help="largest allowed fall, e.g. 10%% (default) or 0.1")
    parser.add_argument(
        "--figure",
        choices=FIGURES,
        default=FIGURES[0],
        help="compare medians (fraction_of_copy, default) or the fastest rounds (best_fraction_of_copy)",
    )
    parser.add_argument("--impl", nargs="+", metavar="IMPL", help="only these implementations (e.g. lsm)")
    args = parser.parse_args(argv)
    try:
        threshold = parse_threshold(args.threshold)
        baseline, current = load(args.baseline), load(args.current)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    print(f"baseline: {args.baseline}: {describe_run(baseline)}")
    print(f"current:  {args.current}: {describe_run(current)}")
    for difference in machine_differences(baseline, current):
        print(f"warning: different machine: {difference}")
    comparison = compare(baseline, current, threshold, args.figure, args.impl)
    report(comparison, threshold, args.figure, sys.stdout)
    if not comparison.changes:
        print("error: no timed case in common")
        return 2
    if comparison.regressed:
        print(f"FAILED: {len(comparison.regressed)} cases regressed by more than {args.threshold}")
        return 1
    print("OK: no case regressed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
