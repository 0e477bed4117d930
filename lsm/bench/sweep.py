"""``lsm bench``: run a sweep of the comparison table, print the table, write JSON, markdown and PNG.

``lsm bench --goals`` runs the cases of issue 3's speed goals instead (:mod:`lsm.bench.goals`),
measures the startup cost in fresh processes (:mod:`lsm.bench.startup`) and prints the
goal-by-goal table.

Each case is warmed up (compiling lsm's kernels on a cold cache) and its result checked against
a float64 NumPy oracle (inputs up to :data:`CHECK_MAX_ELEMENTS`); then the implementations of one
op, input and axis are timed together with a copy of the input, in interleaved rounds
(:func:`lsm.bench.timing.measure_together`). A case whose implementation refuses the input (an
unsupported dtype, or lsm without a backend for the arrays) is skipped and listed; a case with a
wrong result is not timed, is listed, and makes the command exit with status 1, as does an error
raised by lsm.
"""

import argparse
import os
import sys
import textwrap
from pathlib import Path

from . import startup
from .backends import BACKENDS
from .cases import DTYPES, OPS, SHAPES, InputCache, check_result, make_cases, shapes_of
from .goals import STARTUP_OPS, goal_cases, goal_table
from .report import markdown_table, write_report
from .results import document, entry, write
from .runner import References, copy_bandwidths, prepare, throughput, traced_peak
from .timing import TimingOptions, measure_together, summarize

DEFAULT_MAX_SIZE = 10**7  # the default sweep; --large adds 1e8 (several GB of memory)
QUICK_SHAPES = ((100, 100), (1000, 1000))
QUICK_TIMING = TimingOptions(min_rounds=3, max_time=0.02)
DEFAULT_TIMING = TimingOptions(min_rounds=5, max_time=0.2)
CHECK_MAX_ELEMENTS = 10**7

EPILOG = """\
implementations (per backend; those whose library is not installed are left out):
{implementations}

Every case records its bytes moved, GB/s and the fraction of a same-run copy of the same input
(the figure comparable across machines). Compare two runs with
scripts/bench_compare.py BASELINE.json CURRENT.json; redraw with scripts/bench_report.py.

examples:
  lsm bench --quick                      about half a minute on 2 cores
  lsm bench --op softmax --dtype float32 --size 1e6 1e7
  lsm bench --large --out results/       up to 1e8 elements (several GB of memory)
  lsm bench --goals                      issue 3's goal cases and the goal-by-goal table
  lsm bench --backend cuda               CuPy arrays on the GPU (needs CuPy and a GPU)
"""


def _parse_size(text):
    try:
        value = int(float(text))
    except ValueError:
        value = None
    if value not in SHAPES:
        choices = " ".join(f"{size:.0e}".replace("e+0", "e") for size in SHAPES)
        raise argparse.ArgumentTypeError(f"size {text!r} is not one of {choices}")
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


def add_arguments(parser):
    """The options of ``lsm bench`` on an argparse (sub)parser."""
    lines = []
    for backend in BACKENDS.values():
        for impl in backend.implementations_table:
            lines.append(f"  {backend.name:<5} {impl.name:<10} {impl.description}")
    parser.epilog = EPILOG.format(implementations="\n".join(lines))
    impl_names = sorted({impl.name for b in BACKENDS.values() for impl in b.implementations_table})
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short sweep: shapes 100x100 and 1000x1000, 3 rounds and about 0.02 s per case "
        "(with --goals: the short timing only)",
    )
    parser.add_argument(
        "--op", nargs="+", choices=list(OPS), metavar="OP", help=f"ops: {' '.join(OPS)} (default: all)"
    )
    parser.add_argument(
        "--dtype",
        nargs="+",
        choices=DTYPES,
        metavar="DTYPE",
        help=f"dtypes: {' '.join(DTYPES)} (default: all)",
    )
    parser.add_argument(
        "--backend", choices=list(BACKENDS), default="cpu", help="where to run (default: cpu)"
    )
    parser.add_argument(
        "--impl",
        nargs="+",
        choices=impl_names,
        metavar="IMPL",
        help="implementations, listed below (default: all installed)",
    )
    parser.add_argument(
        "--size",
        nargs="+",
        type=_parse_size,
        metavar="N",
        help="element counts to run, from 1e3 1e4 1e5 1e6 1e7 1e8 (default: up to 1e7)",
    )
    parser.add_argument(
        "--axis", nargs="+", type=int, choices=[-1, 0], metavar="AXIS", help="-1 (rows) and/or 0 (columns)"
    )
    parser.add_argument("--large", action="store_true", help="also run 1e8 elements (several GB of memory)")
    parser.add_argument(
        "--goals",
        action="store_true",
        help="the cases of issue 3's speed goals (their own shapes and axes; --large adds 1e8 and "
        "1 GiB), startup in fresh processes, and the goal-by-goal table; CPU only",
    )
    parser.add_argument(
        "--time", type=_positive(float), metavar="S", help="timing budget per case in seconds"
    )
    parser.add_argument("--rounds", type=_positive(int), metavar="N", help="minimum timed rounds per case")
    parser.add_argument(
        "--out",
        default="lsm-bench",
        metavar="DIR",
        help="folder for lsm-bench-<backend>.json/.md/.png (default: ./lsm-bench)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot (matplotlib not needed)")


def _missing_tools(with_plot):
    missing = []
    for module in ("tqdm", "matplotlib") if with_plot else ("tqdm",):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    return missing


def _selected_shapes(args):
    if args.size:
        return shapes_of(args.size)
    if args.quick:
        return QUICK_SHAPES
    largest = max(SHAPES) if args.large else DEFAULT_MAX_SIZE
    return shapes_of([size for size in SHAPES if size <= largest])


def _timing(args):
    base = QUICK_TIMING if args.quick else DEFAULT_TIMING
    return TimingOptions(
        min_rounds=base.min_rounds if args.rounds is None else args.rounds,
        max_time=base.max_time if args.time is None else args.time,
        round_time=base.round_time,
    )


def _first_line(error):
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _groups(cases):
    """Runs of consecutive cases that share a group (op, input and axis), in order."""
    groups = []
    for case in cases:
        if groups and groups[-1][0].group == case.group:
            groups[-1].append(case)
        else:
            groups.append([case])
    return groups


def _prepare_checked(backend, case, x_host, references, skipped, failed):
    """The case prepared, warmed up and checked; None (noted in skipped or failed) if it cannot run."""
    try:
        prepared = prepare(backend, case, x_host)
        result = prepared.call()  # warm-up: compiles, faults in memory, loads the library
        backend.synchronise()
    except Exception as error:
        # A peer that does not take this input, or lsm without a backend for these arrays
        # (NotImplementedError), is noted and skipped; any other error from lsm is a failure.
        lsm_broke = case.impl.startswith("lsm") and not isinstance(error, NotImplementedError)
        (failed if lsm_broke else skipped).append((case.id, _first_line(error)))
        return None
    if case.elements <= CHECK_MAX_ELEMENTS:
        try:
            check_result(case, backend.to_host(result), references.get(case, x_host))
        except AssertionError as error:
            failed.append((case.id, _first_line(error)))
            return None
    return prepared


def run_sweep(backend, cases, options, progress):
    """Run ``cases``; return ``(entries, skipped, failed)`` (the last two: lists of (id, reason)).

    The implementations of one op, input and axis (a group) and a copy of that input are timed
    together in interleaved rounds; each records ``ratio_to_<impl>``, its GB/s over every other
    implementation's of the group. ``progress(groups)`` yields the groups (lists of cases) in turn.
    """
    inputs = InputCache()
    references = References()
    entries, skipped, failed = [], [], []
    for group in progress(_groups(cases)):
        x_host = inputs.get(group[0].shape, group[0].dtype)
        ready = {}
        for case in group:
            prepared = _prepare_checked(backend, case, x_host, references, skipped, failed)
            if prepared is not None:
                ready[case] = prepared
        if not ready:
            continue
        x = next(iter(ready.values())).x
        copies = backend.copy_calls(x)
        for copy in copies.values():
            copy()  # warm-up: compile, fault in the destination
        calls = {**{case.id: prepared.call for case, prepared in ready.items()}, **copies}
        measured = measure_together(calls, options, backend.synchronise)
        copy_figures = {name: copy_bandwidths(x, summarize(*measured[name])) for name in copies}
        stats = {case: summarize(*measured[case.id]) for case in ready}
        speeds = {case.impl: case.bytes_moved / stats[case]["median"] / 1e9 for case in ready}
        for case, prepared in ready.items():
            extra = {
                **case.describe(),
                **backend.info(),
                **prepared.info,
                **throughput(case, stats[case]["median"], stats[case]["min"], copy_figures),
            }
            extra.update(
                {
                    f"ratio_to_{impl}": speeds[case.impl] / gbps
                    for impl, gbps in speeds.items()
                    if impl != case.impl
                }
            )
            if case.impl.startswith("lsm") and backend.traces_memory:
                extra["traced_peak_bytes"] = traced_peak(prepared.call)
            entries.append(entry(case, stats[case], extra, options.as_options()))
    return entries, skipped, failed


def _startup_entries(ops, stream):
    """Results entries of goal 8: each startup op (of ``ops``, None: all) in fresh processes."""
    chosen = [op for op in STARTUP_OPS if ops is None or op in ops]
    if chosen:
        print(
            f"lsm bench: timing import and first call of {', '.join(chosen)} in fresh processes", file=stream
        )
    return [startup.entry(startup.measure(op)) for op in chosen]


def run(args):
    """Run ``lsm bench`` with parsed ``args``; return the exit status."""
    stdout, stderr = sys.stdout, sys.stderr
    backend = BACKENDS[args.backend]
    reason = backend.unavailable()
    if reason is not None:
        print(f"lsm bench: error: --backend {backend.name} is unavailable: {reason}", file=stderr)
        return 2
    missing = _missing_tools(not args.no_plot)
    if missing:
        print(
            f"lsm bench: error: {' and '.join(missing)} not installed: pip install 'lsm[bench]'"
            + ("" if "tqdm" in missing else " (or pass --no-plot)"),
            file=stderr,
        )
        return 2
    if args.goals and (args.size or args.axis or backend.name != "cpu"):
        print("lsm bench: error: --goals picks its own shapes and axes, on the CPU", file=stderr)
        return 2
    if args.goals:
        cases = goal_cases(backend, args.large, args.op, args.dtype, args.impl)
    else:
        cases = make_cases(backend, args.op, args.dtype, _selected_shapes(args), args.axis, args.impl)
    if not cases:
        print(
            "lsm bench: error: no case matches these options (is the implementation installed?)", file=stderr
        )
        return 2
    options = _timing(args)
    print(f"lsm bench: {len(cases)} cases on {backend.name}, writing to {args.out}", file=stderr)

    from tqdm import tqdm

    def progress(groups):
        with tqdm(
            total=len(cases), desc=f"lsm bench {backend.name}", unit="case", file=stderr, disable=None
        ) as bar:
            for group in groups:
                bar.set_postfix_str(group[0].group, refresh=False)
                yield group
                bar.update(len(group))

    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    entries, skipped, failed = run_sweep(backend, cases, options, progress)
    timed = len(entries)
    if args.goals:
        entries += _startup_entries(args.op, stderr)
    doc = document(entries)
    if load_at_start is not None:
        doc["machine_info"]["load_average_at_start"] = round(load_at_start, 2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"lsm-{'goals' if args.goals else 'bench'}-{backend.name}"
    write(doc, out / f"{stem}.json")
    written = [out / f"{stem}.json"]
    table = goal_table(doc) if args.goals else markdown_table(doc)
    if entries:
        # the goal table first, then every case with all its peers
        full = f"{table}\n\n{markdown_table(doc)}" if args.goals else table
        written += write_report(doc, out, stem, with_plot=not args.no_plot, table=full)
    print(table, file=stdout)
    for case_id, why in skipped:
        print(f"skipped {case_id}: {why}", file=stdout)
    for case_id, why in failed:
        print(f"FAILED {case_id}: {textwrap.shorten(why, 300)}", file=stdout)
    print(f"{timed} cases timed, {len(skipped)} skipped, {len(failed)} failed", file=stdout)
    for path in written:
        print(f"wrote {path}", file=stdout)
    return 1 if failed else 0
