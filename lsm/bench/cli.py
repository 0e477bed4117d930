"""``lsm bench``: time a selection of the comparison table, print it, write JSON, markdown and PNG.

Each case is warmed up and checked (:mod:`lsm.bench.engine`); a case whose implementation
refuses the input (an unsupported dtype, or lsm without a backend for the arrays) is skipped
and listed; a case with a wrong result is not timed, is listed, and makes the command exit with
status 1, as does an error raised by lsm.
"""

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path

from .backends import BACKENDS
from .engine import Timing, document, run_cases
from .report import cliffs_table, markdown_table, write_report
from .table import (
    ALL_DTYPES,
    AXES,
    DTYPES,
    OPS,
    ROW_LENGTHS,
    ROW_SWEEP_ELEMENTS,
    SHAPES,
    make_cases,
    row_sweep,
    shapes_of,
)

DEFAULT_MAX_SIZE = 10**7  # the default sweep; --large adds 1e8 (several GB of memory)
QUICK_SHAPES = ((100, 100), (1000, 1000))
QUICK_TIMING = Timing(min_rounds=3, max_time=0.02)
DEFAULT_TIMING = Timing(min_rounds=5, max_time=0.2)
TOOLS = {"tqdm": "tqdm", "pytest_benchmark": "pytest-benchmark", "matplotlib": "matplotlib"}

DESCRIPTION = """\
Time lsm and its peers over op x dtype x size x axis, each case as a fraction of a
same-run memory copy of its input and as a ratio to the peers timed with it. Prints a
markdown table and writes lsm-bench-<backend>.json (pytest-benchmark's layout), .md and
.png into --out."""

EPILOG = """\
implementations (per backend; those whose library is not installed are left out):
{implementations}

The regression gate compares two results files case by case on their fractions of copy:
  python -m lsm.bench.compare BASELINE.json CURRENT.json [--threshold 10%] [--impl lsm]

examples:
  lsm bench --quick                      about half a minute on 2 cores
  lsm bench --op softmax --dtype float32 --size 1e6 1e7
  lsm bench --large --out results/       up to 1e8 elements (several GB of memory)
  lsm bench --backend cuda               CuPy arrays on the GPU (needs CuPy and a GPU)
  lsm bench --backend cuda --row-sweep   rows of 32 to 262144, 2^24 elements each, and the cliffs
"""


def _size(text):
    try:
        value = int(float(text))
    except ValueError:
        value = None
    if value not in SHAPES:
        choices = " ".join(f"{size:.0e}".replace("e+0", "e") for size in SHAPES)
        raise argparse.ArgumentTypeError(f"size {text!r} is not one of {choices}")
    return value


def _elements(text):
    """A count of elements at least the sweep's shortest row (``1.6e7`` accepted)."""
    try:
        value = int(float(text))
    except ValueError:
        value = None
    if value is None or value < ROW_LENGTHS[0]:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of {ROW_LENGTHS[0]} elements or more")
    return value


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {kind.__name__}")
        return value

    return parse


def build_parser():
    """The argument parser of ``lsm bench``."""
    implementations = [impl for backend in BACKENDS.values() for impl in backend.implementations_table]
    lines = [
        f"  {backend.name:<5} {impl.name:<13} {impl.description}"
        for backend in BACKENDS.values()
        for impl in backend.implementations_table
    ]
    parser = argparse.ArgumentParser(
        prog="lsm bench",
        description=DESCRIPTION,
        epilog=EPILOG.format(implementations="\n".join(lines)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shapes 100x100 and 1000x1000, 3 rounds and about 0.02 s per case",
    )
    parser.add_argument(
        "--op", nargs="+", choices=list(OPS), metavar="OP", help=f"ops: {' '.join(OPS)} (default: all)"
    )
    parser.add_argument(
        "--dtype",
        nargs="+",
        choices=ALL_DTYPES,
        metavar="DTYPE",
        help=f"dtypes: {' '.join(ALL_DTYPES)} (default: {' '.join(DTYPES)})",
    )
    parser.add_argument(
        "--backend", choices=list(BACKENDS), default="cpu", help="where to run (default: cpu)"
    )
    parser.add_argument(
        "--impl",
        nargs="+",
        choices=sorted({impl.name for impl in implementations}),
        metavar="IMPL",
        help="implementations, listed below (default: all installed)",
    )
    parser.add_argument(
        "--size",
        nargs="+",
        type=_size,
        metavar="N",
        help="element counts to run, from 1e3 1e4 1e5 1e6 1e7 1e8 (default: up to 1e7)",
    )
    parser.add_argument(
        "--axis",
        nargs="+",
        type=int,
        choices=AXES,
        metavar="AXIS",
        help=f"-1 (rows) and/or 0 (columns) (default: {' '.join(map(str, AXES))})",
    )
    parser.add_argument("--large", action="store_true", help="also run 1e8 elements (several GB of memory)")
    parser.add_argument(
        "--row-sweep",
        nargs="?",
        type=_elements,
        const=ROW_SWEEP_ELEMENTS,
        metavar="ELEMENTS",
        help="instead of the sizes: reduced lengths 32 to 262144 (powers of two), every input of "
        f"ELEMENTS elements (default {ROW_SWEEP_ELEMENTS}), with the cliffs between neighbours",
    )
    parser.add_argument(
        "--time",
        type=_positive(float),
        metavar="S",
        help=f"seconds of timed rounds per case (at least) (default: {DEFAULT_TIMING.max_time}; "
        f"--quick: {QUICK_TIMING.max_time})",
    )
    parser.add_argument(
        "--rounds",
        type=_positive(int),
        metavar="N",
        help=f"minimum timed rounds per case (default: {DEFAULT_TIMING.min_rounds}; "
        f"--quick: {QUICK_TIMING.min_rounds})",
    )
    parser.add_argument(
        "--out",
        default="lsm-bench",
        metavar="DIR",
        help="folder for lsm-bench-<backend>.json/.md/.png (default: ./lsm-bench)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot (matplotlib not needed)")
    return parser


def _error(text):
    print(f"lsm bench: error: {text}", file=sys.stderr)
    return 2


def _cases(args, backend):
    if args.row_sweep:
        inputs = row_sweep(args.row_sweep, args.axis or AXES)
        return make_cases(backend, args.op, args.dtype, impls=args.impl, inputs=inputs)
    if args.size:
        shapes = shapes_of(args.size)
    elif args.quick:
        shapes = QUICK_SHAPES
    else:
        shapes = shapes_of([size for size in SHAPES if args.large or size <= DEFAULT_MAX_SIZE])
    return make_cases(backend, args.op, args.dtype, shapes, args.axis, args.impl)


def _timing(args):
    base = QUICK_TIMING if args.quick else DEFAULT_TIMING
    return Timing(
        min_rounds=base.min_rounds if args.rounds is None else args.rounds,
        max_time=base.max_time if args.time is None else args.time,
    )


def main(argv=None):
    """Run ``lsm bench`` with the command line ``argv``; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        from .ab import main as compare

        return compare(argv[1:])
    if argv[:1] in (["record"], ["history"]):
        from .history import main as history

        return history(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    backend = BACKENDS[args.backend]
    reason = backend.unavailable()
    if reason is not None:
        return _error(f"--backend {backend.name} is unavailable: {reason}")
    missing = []
    for module, package in TOOLS.items():
        if not (args.no_plot and module == "matplotlib"):
            try:
                __import__(module)
            except ImportError:
                missing.append(package)
    if missing:
        plot_hint = " (or pass --no-plot)" if missing == ["matplotlib"] else ""
        return _error(f"{' and '.join(missing)} not installed: pip install 'lsm-kernels[bench]'{plot_hint}")
    if args.row_sweep and (args.size or args.large):
        return _error("--row-sweep chooses the shapes: leave out --size and --large")
    cases = _cases(args, backend)
    if not cases:
        return _error("no case matches these options (is the implementation installed?)")
    print(f"lsm bench: {len(cases)} cases on {backend.name}, writing to {args.out}", file=sys.stderr)

    from tqdm import tqdm

    def progress(groups):
        with tqdm(
            total=len(cases), desc=f"lsm bench {backend.name}", unit="case", file=sys.stderr, disable=None
        ) as bar:
            for group in groups:
                bar.set_postfix_str(group[0].group, refresh=False)
                yield group
                bar.update(len(group))

    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    entries, skipped, failed = run_cases(backend, cases, _timing(args), progress)
    doc = document(entries, backend)
    if load_at_start is not None:
        doc["machine_info"]["load_average_at_start"] = round(load_at_start, 2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"lsm-bench-{backend.name}"
    written = [out / f"{stem}.json"]
    written[0].write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if entries:
        written += write_report(doc, out, stem, with_plot=not args.no_plot, with_cliffs=bool(args.row_sweep))
    print(markdown_table(doc))
    if args.row_sweep:
        print(cliffs_table(doc))
    for case_id, why in skipped:
        print(f"skipped {case_id}: {textwrap.shorten(why, 300)}")
    for case_id, why in failed:
        print(f"FAILED {case_id}: {textwrap.shorten(why, 300)}")
    print(f"{len(entries)} cases timed, {len(skipped)} skipped, {len(failed)} failed")
    for path in written:
        print(f"wrote {path}")
    return 1 if failed else 0
