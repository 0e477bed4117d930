"""``lsm bench compare A B``: two revisions of lsm timed alternately in one run, with a verdict.

Timing a baseline today and a branch tomorrow compares two machine states as much as two
revisions. Here both run at once: each revision (a git revision, extracted with ``git archive``
into a cache folder keyed by its commit, or a folder holding an ``lsm`` package) gets
long-lived worker processes (:mod:`lsm.bench.ab_worker`) importing that revision's lsm, and the
cases come from this checkout's :mod:`lsm.bench.table`, so both time the same calls on the same
inputs. For each case:

0. first, one throwaway process per revision (both at once) runs every case once, compiling
   the kernels into Numba's cache: the timing workers then load compiled kernels, as a user's
   every later process does (a process that compiled its own float16 gradient kernels was
   measured running them 7x slower than one that loaded them from the cache; see
   benchmarks/RESULTS.md);
1. every worker prepares it at once and checks its result against the float64 reference; a
   case that one revision cannot run is skipped and listed;
2. A calibrates the calls per round (``round_time``) and every worker uses that count;
3. pairs of rounds, in ABBA order (A then B, B then A, ...), only one worker running at a time,
   each round after an untimed call; each pair gives the ratio of per-call times B/A. Each
   revision has ``processes`` workers (2) and the pairs cycle through every combination of A's
   and B's: a process may run a case a few percent slower than another process of the same code
   for its whole life (where its memory landed), which one worker per side would report as a
   change. Likewise each pair starts with both workers moving their arrays to new memory
   (whether an allocation got huge pages is luck that lasts as long as the allocation);
4. after ``min_pairs`` pairs, :func:`lsm.bench.verdict.judge` after every whole cycle of
   combinations, until the verdict is settled or the case's share of the time budget is spent.

The copy reference (A's best ``np.copyto`` of the input) stays in the table for context: a
case far below it has room left, whatever the verdict.

Exit status: 1 when any case is ``slower``, 2 when the comparison cannot run, 0 otherwise.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import verdict
from .suites import SUITES, suite_cases

WORKER = Path(__file__).resolve().with_name("ab_worker.py")
TABLE = Path(__file__).resolve().with_name("table.py")


@dataclass(frozen=True)
class Settings:
    """How hard to look: see the module docstring."""

    threshold: float = 0.05
    confidence: float = 0.99
    budget: float = 150.0  # seconds of timed pairs for the whole suite
    round_time: float = 0.02
    min_pairs: int = 12
    max_pairs: int = 400
    processes: int = 2  # worker processes per revision


def cache_root():
    """Where extracted revisions live: ``$LSM_BENCH_CACHE``, else the user's cache folder."""
    if os.environ.get("LSM_BENCH_CACHE"):
        return Path(os.environ["LSM_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lsm-bench" / "trees"


def _git(repo, *args):
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass(frozen=True)
class Revision:
    """What one side of the comparison runs: ``root`` holds its ``lsm`` package."""

    spec: str
    root: Path
    commit: str | None


def resolve(spec, repo=".", cache=None):
    """The :class:`Revision` of ``spec``: a folder holding ``lsm/__init__.py``, or a git revision.

    A git revision's ``lsm/`` is extracted once into ``cache/<commit>`` (kept: a commit never
    changes, and Numba's compiled kernels are cached beside its sources).

    Raises
    ------
    ValueError
        If ``spec`` is neither such a folder nor a revision of the repository at ``repo``.
    """
    folder = Path(spec)
    if (folder / "lsm" / "__init__.py").is_file():
        return Revision(spec, folder.resolve(), None)
    commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    root = Path(cache or cache_root()) / commit
    if not (root / "lsm" / "__init__.py").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{commit[:12]}-", dir=root.parent))
        archive = subprocess.Popen(["git", "-C", str(repo), "archive", commit, "lsm"], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(scratch)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            shutil.rmtree(scratch)
            raise ValueError(f"git archive {commit} lsm failed: has that revision an lsm/ folder?")
        try:
            scratch.rename(root)  # atomic: another comparison may extract the same commit
        except OSError:
            shutil.rmtree(scratch)
    return Revision(spec, root, commit)


class WorkerProcess:
    """A running :mod:`lsm.bench.ab_worker` over one revision."""

    def __init__(self, revision, label):
        self.label = label
        self.log = tempfile.TemporaryFile(mode="w+")  # its stderr: shown if it fails
        env = {**os.environ, "PYTHONPATH": str(revision.root)}
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(TABLE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )
        self.info = self.request({"cmd": "hello"})
        if not Path(self.info["lsm_file"]).resolve().is_relative_to(revision.root):
            self.close()
            raise ValueError(f"{label}: imported lsm from {self.info['lsm_file']}, not from {revision.root}")

    def send(self, request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def receive(self):
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"worker {self.label} died:\n{self.log.read()[-4000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"worker {self.label} failed:\n{answer['error']}")
        return answer

    def request(self, request):
        self.send(request)
        return self.receive()

    def close(self):
        if self.process.poll() is None:
            self.send({"cmd": "exit"})
            self.process.wait(timeout=60)
        self.log.close()


@dataclass
class CaseResult:
    """One case's outcome: a verdict, or the reason it was skipped."""

    case: str
    verdict: str
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    pairs: int = 0
    seconds_a: float | None = None
    seconds_b: float | None = None
    copy_fraction_a: float | None = None
    why: str | None = None


def _pair_workers(pair, workers_a, workers_b):
    """The A and B workers of pair number ``pair``, in the order they run.

    The pairs cycle through every combination of A's and B's processes (one process's own
    luck, such as where its memory landed, then spreads over the ratios instead of shifting all
    of them), and each block of combinations runs A first, the next block B first (ABBA).
    """
    combinations = len(workers_a) * len(workers_b)
    within = pair % combinations
    a, b = workers_a[within % len(workers_a)], workers_b[within // len(workers_a)]
    return (a, b) if (pair // combinations) % 2 == 0 else (b, a)


def compare_case(case, workers_a, workers_b, settings, budget):
    """Time ``case`` (a :class:`lsm.bench.table.Case`) on A's and B's workers; a :class:`CaseResult`."""
    everyone = [*workers_a, *workers_b]
    request = {"cmd": "prepare", "case": case.describe()}
    for worker in everyone:  # all prepare at once
        worker.send(request)
    ready = [worker.receive() for worker in everyone]
    answers = zip(everyone, ready, strict=True)
    refused = {worker.label[0]: answer["why"] for worker, answer in answers if not answer["ok"]}
    if refused:
        return CaseResult(case.id, "skipped", why="; ".join(f"{k}: {why}" for k, why in refused.items()))
    first = workers_a[0]
    iterations = first.request({"cmd": "calibrate", "round_time": settings.round_time})["iterations"]
    copy_gbps = first.request({"cmd": "copy", "rounds": 5})["copy_gbps"]
    deadline = time.perf_counter() + budget
    seconds = {"A": [], "B": []}
    ratios = []
    block = len(workers_a) * len(workers_b)  # verdicts only after whole cycles of combinations
    while True:
        pair = _pair_workers(len(ratios), workers_a, workers_b)
        for worker in pair:
            worker.request({"cmd": "reallocate"})
        for worker in pair:
            answer = worker.request({"cmd": "round", "iterations": iterations})
            seconds[worker.label[0]].append(answer["seconds"])
        ratios.append(seconds["B"][-1] / seconds["A"][-1])
        if len(ratios) >= settings.min_pairs and len(ratios) % block == 0:
            result = verdict.judge(ratios, settings.threshold, settings.confidence)
            if result.settled or time.perf_counter() > deadline or len(ratios) >= settings.max_pairs:
                break
    time_a, time_b = verdict.median(seconds["A"]), verdict.median(seconds["B"])
    return CaseResult(
        case.id,
        result.verdict,
        ratio=result.ratio,
        low=result.low,
        high=result.high,
        pairs=result.pairs,
        seconds_a=time_a,
        seconds_b=time_b,
        copy_fraction_a=case.bytes_moved / time_a / 1e9 / copy_gbps,
    )


def warm_up(revisions, cases):
    """Run every case once in a throwaway worker per revision (at once), filling Numba's cache."""
    workers = [WorkerProcess(revision, label) for revision, label in zip(revisions, "AB", strict=True)]
    try:
        for case in cases:
            for worker in workers:
                worker.send({"cmd": "prepare", "case": case.describe(), "check": False})
            for worker in workers:
                worker.receive()
    finally:
        for worker in workers:
            worker.close()


def run(spec_a, spec_b, cases, settings, repo=".", progress=None):
    """Compare revisions ``spec_a`` and ``spec_b`` on ``cases``; the results document (a dict)."""
    revisions = [resolve(spec, repo) for spec in (spec_a, spec_b)]
    warm_up(revisions, cases)
    workers = {"A": [], "B": []}
    try:
        for revision, side in zip(revisions, "AB", strict=True):
            for number in range(1, settings.processes + 1):
                workers[side].append(WorkerProcess(revision, f"{side}{number}"))
        start = time.perf_counter()
        load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        results = []
        for index, case in enumerate(cases):
            spent = time.perf_counter() - start
            share = max(0.0, settings.budget - spent) / (len(cases) - index)
            results.append(compare_case(case, workers["A"], workers["B"], settings, share))
            if progress is not None:
                progress(results[-1])
        elapsed = time.perf_counter() - start
    finally:
        for worker in (*workers["A"], *workers["B"]):
            worker.close()
    return {
        "revisions": {
            side: {"spec": rev.spec, "commit": rev.commit, "root": str(rev.root), **workers[side][0].info}
            for side, rev in zip("AB", revisions, strict=True)
        },
        "settings": asdict(settings),
        "seconds": round(elapsed, 1),
        "load_average": {
            "start": None if load_at_start is None else round(load_at_start, 2),
            "end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        },
        "cases": [asdict(result) for result in results],
    }


def _percent(ratio):
    return f"{100 * (ratio - 1):+.1f}%"


def markdown(doc):
    """The results as a markdown table: B's time against A's, its interval, the verdict."""
    a, b = doc["revisions"]["A"]["spec"], doc["revisions"]["B"]["spec"]
    lines = [
        f"A = {a}, B = {b}: time of B / time of A, {100 * doc['settings']['confidence']:g}% interval "
        f"of the median, threshold {100 * doc['settings']['threshold']:g}%",
        "",
        "| case | A per call | B per call | B / A | interval | pairs | A, fraction of copy | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in doc["cases"]:
        if case["verdict"] == "skipped":
            lines.append(f"| {case['case']} | | | | | | | skipped: {case['why']} |")
            continue
        lines.append(
            f"| {case['case']} | {case['seconds_a'] * 1e3:.3f} ms | {case['seconds_b'] * 1e3:.3f} ms "
            f"| {_percent(case['ratio'])} | {_percent(case['low'])} .. {_percent(case['high'])} "
            f"| {case['pairs']} | {case['copy_fraction_a']:.2f} | {case['verdict']} |"
        )
    counts = {}
    for case in doc["cases"]:
        counts[case["verdict"]] = counts.get(case["verdict"], 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    lines += ["", f"{len(doc['cases'])} cases in {doc['seconds']} s: {summary}"]
    return "\n".join(lines)


def cases_for(suite, ops=None, dtypes=None, impls=("lsm",)):
    """The cases of a suite of :data:`lsm.bench.suites.SUITES`, restricted to ``ops`` and ``dtypes``."""
    return suite_cases(SUITES[suite], ops, dtypes, impls)


EPILOG = """\
A and B: git revisions of the repository in the current folder (main, HEAD, v0.1.0, a commit),
or folders holding an lsm package (another checkout, an installed copy's site-packages). Both
run on this Python; each git revision is extracted once into $LSM_BENCH_CACHE (default:
~/.cache/lsm-bench/trees), where Numba's compiled kernels are cached too.

Two results files of lsm bench (A.json B.json) are compared the quick way instead: case by
case on fractions of copy, runs taken at different times (python -m lsm.bench.compare --help).

examples:
  lsm bench compare main HEAD                  the gating suite, 3-6 minutes on 2 cores
  lsm bench compare main HEAD --op softmax --dtype float32 --threshold 3%
  lsm bench compare main HEAD --suite overhead per-call overhead on 100 x 100 inputs
"""


def build_parser():
    """The argument parser of ``lsm bench compare``."""
    from .compare import parse_threshold
    from .table import ALL_DTYPES, OPS

    parser = argparse.ArgumentParser(
        prog="lsm bench compare",
        description="Time two revisions of lsm alternately in one run; flag the cases B made slower.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("a", metavar="A", help="the baseline revision (or A.json)")
    parser.add_argument("b", metavar="B", help="the revision to judge (or B.json)")
    parser.add_argument(
        "--suite", choices=list(SUITES), default="gate", help="case selection (default: gate)"
    )
    parser.add_argument("--op", nargs="+", choices=list(OPS), metavar="OP", help="only these ops")
    parser.add_argument("--dtype", nargs="+", choices=ALL_DTYPES, metavar="DTYPE", help="only these dtypes")
    parser.add_argument(
        "--impl",
        nargs="+",
        choices=("lsm", "lsm_alloc", "lsm_in_place"),
        default=["lsm"],
        metavar="IMPL",
        help="lsm's calls to time: lsm (out=), lsm_alloc, lsm_in_place (default: lsm)",
    )
    defaults = Settings()
    parser.add_argument(
        "--threshold",
        type=parse_threshold,
        default=defaults.threshold,
        help=f"smallest change that counts, e.g. 5%% (default: {100 * defaults.threshold:g}%%)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=defaults.budget,
        metavar="S",
        help=f"seconds of timed pairs for all cases (default: {defaults.budget:g})",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results document here")
    parser.add_argument("--markdown", metavar="FILE", help="write the results table here")
    return parser


def main(argv=None):
    """Run ``lsm bench compare`` with ``argv``; return the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    positional = [arg for arg in argv if not arg.startswith("-")][:2]
    if len(positional) == 2 and all(arg.endswith(".json") for arg in positional):
        from .compare import main as quick_check

        return quick_check(argv)
    args = build_parser().parse_args(argv)
    settings = Settings(threshold=args.threshold, budget=args.budget)
    cases = cases_for(args.suite, args.op, args.dtype, args.impl)
    if not cases:
        print("lsm bench compare: error: no case matches these options", file=sys.stderr)
        return 2

    def progress(result):
        print(f"  {result.case}: {result.verdict}", file=sys.stderr, flush=True)

    print(f"lsm bench compare: {len(cases)} cases of the {args.suite} suite", file=sys.stderr)
    try:
        doc = run(args.a, args.b, cases, settings, progress=progress)
    except ValueError as error:
        print(f"lsm bench compare: error: {error}", file=sys.stderr)
        return 2
    table = markdown(doc)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(table + "\n", encoding="utf-8")
    slower = [case["case"] for case in doc["cases"] if case["verdict"] == verdict.SLOWER]
    if slower:
        print(f"FAILED: {len(slower)} cases slower by more than {100 * settings.threshold:g}% in B")
        return 1
    return 0
