"""The speed goals lsm's CPU kernels are tuned against, as cases and a goal-by-goal table.

Run from the repository root::

    python -m benchmarks.goals [--set {first,copy-limit}] [--quick] [--large] [--no-startup] [--out DIR]

It times the cases of every goal with ``lsm bench``'s engine (each beside every installed peer
and a same-run copy of its input), measures startup with ``scripts/measure_startup.py``, writes
``lsm-goals-cpu.json`` (pytest-benchmark's layout) and ``.md`` into ``--out`` (default
``./lsm-goals``) and prints one row per goal and case: lsm's figure, the peer's, their ratio,
the target and whether it is met, then every case with all its peers.

Two sets of goals. ``first`` (the default; issue 3), float32 and inputs of 32 MB unless said:

1. with ``out=``, log_softmax and softmax >= 1.2x torch's ``out=`` kernels on 262144x32,
   8192x1024, 1024x32768, 32x1048576 (last axis), 8192x1024 (axis 0) and 64x1024x256 (axis 1);
2. the same calls reach >= 50% of the fastest same-run copy of the input;
3. allocating calls: >= 1.2x torch's allocating call and >= 3x ``scipy.special``;
4. logsumexp over the last axis of the first three shapes: >= 1.0x jitted jax, >= 2x
   ``torch.logsumexp``, >= 5x ``scipy.special.logsumexp``;
5. float64 >= 1.0x torch; float16 >= 1.0x torch, with no full-size float32 temporary;
6. a 100-element array: per call no slower than ``scipy.special``;
7. throughput within +-25% of its median from 4 MB to 1 GB inputs (1e3 to 1e8 elements and
   1 GiB reported; 1e8 and 1 GiB with ``--large``);
8. import and first call in a fresh process, kernel cache warm: <= 1 s.

``copy-limit`` (issue 14), float32 unless said, lsm's ``out=`` calls:

R. log_softmax and softmax over the rows of 262144x32, 8192x1024, 1024x32768 and 32x1048576:
   >= 1.2x torch's ``out=`` kernels and >= 0.8 of the fastest same-run copy;
C. over a strided axis (8192x1024 axis 0, 64x1024x256 and 64x1000x49 axis 1): >= 0.5 of the
   copy and >= 2x torch's ``out=`` kernels;
F. float64 on every input above: >= 1.1x torch; H. float16: >= 1.0x torch;
B. log_softmax_backward and softmax_backward on every input above: >= 0.6 of the copy;
X. cross_entropy with its gradient, (4096, 32000) with the classes last and first: >= 5x torch's
   forward and backward;
L. logsumexp on every input above: >= 1.2x jitted jax.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lsm.bench.backends import BACKENDS
from lsm.bench.cli import DEFAULT_TIMING, QUICK_TIMING
from lsm.bench.engine import document, run_cases, timed_cases
from lsm.bench.report import describe_run, markdown, markdown_table
from lsm.bench.table import OPS, make_cases, shape_id

STARTUP_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "measure_startup.py"

# (shape, axis) of goals 1, 2, 3 and 5: 8,388,608 elements each, 32 MB in float32.
GOAL_INPUTS = (
    ((262144, 32), -1),
    ((8192, 1024), -1),
    ((1024, 32768), -1),
    ((32, 1048576), -1),
    ((8192, 1024), 0),
    ((64, 1024, 256), 1),
)
# Goal 7: rows of 1000 from 1e3 to 1e8 elements, then 1 GiB of float32; the last two need --large.
SERIES_INPUTS = (*(((10**k // 1000, 1000), -1) for k in range(3, 9)), ((262144, 1024), -1))
LARGE_ELEMENTS = 10**8
SPREAD_FROM_BYTES = 4 * 10**6  # goal 7 judges inputs from 4 MB up
FORWARD = ("log_softmax", "softmax")
STARTUP_OPS = ("log_softmax", "softmax", "logsumexp")


@dataclass(frozen=True)
class Goal:
    """One goal: its cases and how they are judged.

    Attributes
    ----------
    number, text : str
        The goal's number (``"3b"``) and what it asks, in a few words.
    ops, dtype, inputs :
        Its cases: these ops in this dtype on these ``(shape, axis)`` inputs.
    impls : tuple of str
        lsm's implementation judged: per op the first of these the op has.
    peer : str
        What lsm is compared with: an implementation (their GB/s); ``"copy"``: the same-run copy
        of the input; ``"float32 copy"``: the size of a float32 copy of the input (goal 5c);
        ``"median"``: the median throughput of the series (goal 7); ``"startup"``: goal 8.
    target : float
        lsm over the peer must reach at least ``target``; at most, where :attr:`at_most`.
    with_peers : bool
        Whether the goal's inputs are timed beside every installed peer, or lsm alone.
    alone : bool
        Time lsm and the goal's own peer only (when that is an implementation): the large
        inputs of the ``copy-limit`` goals would spend minutes in NumPy's naive versions.
    """

    number: str
    text: str
    ops: tuple
    dtype: str
    inputs: tuple
    impls: tuple = ("lsm",)
    peer: str = "torch_out"
    target: float = 1.0
    at_most: bool = False
    with_peers: bool = True
    alone: bool = False

    def lsm_impl(self, op):
        return next(impl for impl in self.impls if impl in OPS[op].impls)

    def met(self, ratio):
        if ratio is None:
            return "-"
        return "yes" if (ratio <= self.target if self.at_most else ratio >= self.target) else "no"


GOALS = (
    Goal("1", "out=: >= 1.2x torch out=", FORWARD, "float32", GOAL_INPUTS, target=1.2),
    Goal("2", "out=: >= 50% of the fastest copy", FORWARD, "float32", GOAL_INPUTS, peer="copy", target=0.5),
    Goal("3a", "allocating: >= 1.2x torch", FORWARD, "float32", GOAL_INPUTS, ("lsm_alloc",), "torch", 1.2),
    Goal("3b", "allocating: >= 3x scipy", FORWARD, "float32", GOAL_INPUTS, ("lsm_alloc",), "scipy", 3.0),
    Goal("4a", "logsumexp: >= 1.0x jax.jit", ("logsumexp",), "float32", GOAL_INPUTS[:3], peer="jax"),
    Goal(
        "4b", "logsumexp: >= 2x torch", ("logsumexp",), "float32", GOAL_INPUTS[:3], peer="torch", target=2.0
    ),
    Goal(
        "4c", "logsumexp: >= 5x scipy", ("logsumexp",), "float32", GOAL_INPUTS[:3], peer="scipy", target=5.0
    ),
    Goal("5a", "float64: >= 1.0x torch out=", FORWARD, "float64", GOAL_INPUTS),
    Goal("5b", "float16: >= 1.0x torch out=", FORWARD, "float16", GOAL_INPUTS),
    # traced peak during an out= call over a float32 copy's size: one such copy would be 1
    Goal(
        "5c",
        "float16: no full-size float32 temporary",
        FORWARD,
        "float16",
        GOAL_INPUTS,
        peer="float32 copy",
        target=0.5,
        at_most=True,
    ),
    Goal(
        "6",
        "100 elements: per call <= scipy",
        (*FORWARD, "logsumexp"),
        "float32",
        (((100,), -1),),
        ("lsm_alloc", "lsm"),
        "scipy",
    ),
    Goal(
        "7",
        "+-25% throughput, 4 MB to 1 GB",
        (*FORWARD, "logsumexp"),
        "float32",
        SERIES_INPUTS,
        peer="median",
        target=0.25,
        at_most=True,
        with_peers=False,
    ),
    Goal(
        "8",
        "import + first call <= 1 s (warm cache)",
        STARTUP_OPS,
        "float32",
        (),
        peer="startup",
        at_most=True,
    ),
)


COPY_LIMIT_ROWS = (((262144, 32), -1), ((8192, 1024), -1), ((1024, 32768), -1), ((32, 1048576), -1))
COPY_LIMIT_COLUMNS = (((8192, 1024), 0), ((64, 1024, 256), 1), ((64, 1000, 49), 1))
COPY_LIMIT_INPUTS = COPY_LIMIT_ROWS + COPY_LIMIT_COLUMNS
BACKWARD = ("log_softmax_backward", "softmax_backward")
# (4096, 32000): 4096 rows of a 32000-word vocabulary, its classes last, then first
CROSS_ENTROPY_INPUTS = (((4096, 32000), -1), ((32000, 4096), 0))

COPY_LIMIT_GOALS = (
    Goal("R1", "rows: >= 1.2x torch out=", FORWARD, "float32", COPY_LIMIT_ROWS, target=1.2, alone=True),
    Goal(
        "R2",
        "rows: >= 0.8 of the copy",
        FORWARD,
        "float32",
        COPY_LIMIT_ROWS,
        peer="copy",
        target=0.8,
        alone=True,
    ),
    Goal(
        "C1",
        "columns: >= 0.5 of the copy",
        FORWARD,
        "float32",
        COPY_LIMIT_COLUMNS,
        peer="copy",
        target=0.5,
        alone=True,
    ),
    Goal("C2", "columns: >= 2x torch out=", FORWARD, "float32", COPY_LIMIT_COLUMNS, target=2.0, alone=True),
    Goal("F", "float64: >= 1.1x torch out=", FORWARD, "float64", COPY_LIMIT_INPUTS, target=1.1, alone=True),
    Goal("H", "float16: >= 1.0x torch out=", FORWARD, "float16", COPY_LIMIT_INPUTS, alone=True),
    Goal(
        "B",
        "backward: >= 0.6 of the copy",
        BACKWARD,
        "float32",
        COPY_LIMIT_INPUTS,
        peer="copy",
        target=0.6,
        alone=True,
    ),
    Goal(
        "X",
        "cross_entropy + gradient: >= 5x torch",
        ("cross_entropy",),
        "float32",
        CROSS_ENTROPY_INPUTS,
        peer="torch",
        target=5.0,
        alone=True,
    ),
    Goal(
        "L",
        "logsumexp: >= 1.2x jax.jit",
        ("logsumexp",),
        "float32",
        COPY_LIMIT_INPUTS,
        peer="jax",
        target=1.2,
        alone=True,
    ),
)
GOAL_SETS = {"first": GOALS, "copy-limit": COPY_LIMIT_GOALS}


def _timed_impls(goal):
    """The implementations a goal times: None for every installed one."""
    lsm_impls = {goal.lsm_impl(op) for op in goal.ops}
    if not goal.with_peers:
        return lsm_impls
    if goal.alone:
        return lsm_impls | {goal.peer}  # a peer "copy" adds nothing: every case has its copy
    return None


def goal_cases(backend, large=False, goals=GOALS):
    """Every case some goal of ``goals`` needs, ordered input by input; ``large`` adds goal 7's
    1e8 elements and more."""
    wanted = set()
    for goal in goals:
        impls = _timed_impls(goal)
        wanted.update(
            case.id for case in make_cases(backend, goal.ops, [goal.dtype], impls=impls, inputs=goal.inputs)
        )
    inputs = [
        pair
        for goal in goals
        for pair in goal.inputs
        if large or goal.peer != "median" or np.prod(pair[0]) < LARGE_ELEMENTS
    ]
    return [case for case in make_cases(backend, inputs=list(dict.fromkeys(inputs))) if case.id in wanted]


def _speed(info):
    """GB/s, or the time per call for inputs too small for GB/s to mean much."""
    return f"{info['median_s'] * 1e6:.2f} us" if info["elements"] < 10**4 else f"{info['gbps']:.2f} GB/s"


def _versus(goal, mine, theirs):
    """``(lsm's figure, the peer's, their ratio)``; ``theirs`` is the peer's case, if measured."""
    if goal.peer == "copy":
        return _speed(mine), f"copy {mine['copy_gbps']:.2f} GB/s", mine["fraction_of_copy"]
    if goal.peer == "float32 copy":
        float32_mib = 4 * mine["elements"] / 2**20
        peak = mine.get("traced_peak_bytes")
        if peak is None:
            return "not measured", f"float32 copy {float32_mib:.2f} MiB", None
        return (
            f"peak {peak / 2**20:.2f} MiB",
            f"float32 copy {float32_mib:.2f} MiB",
            peak / 2**20 / float32_mib,
        )
    if theirs is None:
        return _speed(mine), f"{goal.peer} not measured", None
    return _speed(mine), f"{goal.peer} {_speed(theirs)}", mine["gbps"] / theirs["gbps"]


def _case_rows(goal, found):
    """Goals judged case by case: lsm against a peer, the copy, or a float32 copy's size."""
    for op in goal.ops:
        impl = goal.lsm_impl(op)
        for shape, axis in goal.inputs:
            key = (op, goal.dtype, shape, axis)
            if (*key, impl) in found:
                label = f"{op} {goal.dtype} {shape_id(shape)} axis {axis}" + (
                    "" if impl == "lsm" else f" ({impl})"
                )
                yield label, *_versus(goal, found[(*key, impl)], found.get((*key, goal.peer)))


def _spread_rows(goal, found):
    """Goal 7: per op, the largest deviation of GB/s from the median over inputs of 4 MB and more."""
    itemsize = np.dtype(goal.dtype).itemsize
    for op in goal.ops:
        keys = [(op, goal.dtype, shape, axis, goal.lsm_impl(op)) for shape, axis in goal.inputs]
        judged = [
            found[key]
            for key in keys
            if key in found and found[key]["elements"] * itemsize >= SPREAD_FROM_BYTES
        ]
        if judged:
            speeds = [info["gbps"] for info in judged]
            middle = statistics.median(speeds)
            label = f"{op} {goal.dtype} {shape_id(judged[0]['shape'])} .. {shape_id(judged[-1]['shape'])}"
            spread = f"{min(speeds):.2f} .. {max(speeds):.2f} GB/s"
            yield label, spread, f"median {middle:.2f} GB/s", max(abs(speed / middle - 1) for speed in speeds)


def _startup_rows(goal, startup):
    """Goal 8: per op, import and first call with the kernel cache warm, the cold compile beside it."""
    for info in startup:
        cold = f"cold compile {info['cold_s']:.2f} s" if "cold_s" in info else "-"
        yield (
            f"{info['op']} float32 {shape_id(info['shape'])}",
            f"{info['warm_s']:.2f} s",
            cold,
            info["warm_s"],
        )


def goal_table(doc, startup=(), goals=GOALS):
    """The goal-by-goal markdown table of ``doc`` for ``goals`` (and of :mod:`measure_startup`'s
    figures, ``startup``), then one line per goal: cases met of those measured."""
    found = {
        (info["op"], info["dtype"], tuple(info["shape"]), info["axis"], info["impl"]): info
        for info in timed_cases(doc).values()
    }
    rows, summary = [], []
    for goal in goals:
        if goal.peer == "median":
            judged = list(_spread_rows(goal, found))
        elif goal.peer == "startup":
            judged = list(_startup_rows(goal, startup))
        else:
            judged = list(_case_rows(goal, found))
        unit = " s" if goal.peer == "startup" else ""
        target = f"{'<=' if goal.at_most else '>='} {goal.target:g}{unit}"
        for label, lsm, peer, ratio in judged:
            rows.append(
                [
                    goal.number,
                    label,
                    lsm,
                    peer,
                    "-" if ratio is None else f"{ratio:.2f}",
                    target,
                    goal.met(ratio),
                ]
            )
        verdicts = [goal.met(ratio) for *_, ratio in judged if ratio is not None]
        if verdicts:
            summary.append(
                f"- goal {goal.number} ({goal.text}): met on {verdicts.count('yes')} of {len(verdicts)}"
            )
    if not rows:
        return "(no goal case measured)"
    return "\n".join(
        [markdown(["goal", "case", "lsm", "peer", "ratio", "target", "met"], rows), "", *summary]
    )


def measure_startup():
    """The warm and cold startup of :data:`STARTUP_OPS`, by ``scripts/measure_startup.py``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "startup.json"
        command = [sys.executable, str(STARTUP_SCRIPT), "--op", *STARTUP_OPS, "--json", str(path)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(path.read_text(encoding="utf-8"))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.goals", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set", choices=GOAL_SETS, default="first", help="which goals (default: first, issue 3's)"
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds and about 0.02 s per case")
    parser.add_argument("--large", action="store_true", help="add goal 7's 1e8-element and 1 GiB inputs")
    parser.add_argument("--no-startup", action="store_true", help="skip goal 8 (fresh processes)")
    parser.add_argument(
        "--out", default="lsm-goals", metavar="DIR", help="output folder (default: ./lsm-goals)"
    )
    args = parser.parse_args(argv)
    backend, goals = BACKENDS["cpu"], GOAL_SETS[args.set]
    cases = goal_cases(backend, args.large, goals)
    print(f"goals: {len(cases)} cases", file=sys.stderr)
    entries, skipped, failed = run_cases(backend, cases, QUICK_TIMING if args.quick else DEFAULT_TIMING)
    doc = document(entries, backend)
    wants_startup = any(goal.peer == "startup" for goal in goals)
    startup = measure_startup() if wants_startup and not args.no_startup else []
    text = f"Measured on {describe_run(doc)}.\n\n{goal_table(doc, startup, goals)}\n\n{markdown_table(doc)}\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lsm-goals-cpu.json").write_text(
        json.dumps({**doc, "startup": startup}, indent=1) + "\n", encoding="utf-8"
    )
    (out / "lsm-goals-cpu.md").write_text(text, encoding="utf-8")
    print(text)
    for case_id, why in skipped + failed:
        print(f"{'FAILED' if (case_id, why) in failed else 'skipped'} {case_id}: {why[:300]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
