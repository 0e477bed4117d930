"""The speed goals of issue 3 as benchmark cases, and a goal-by-goal table of a results document.

Each :class:`Goal` names its cases (op x dtype x ``(shape, axis)`` inputs of the comparison
table), the implementation of lsm it judges, what it is compared with and the target.
:func:`goal_cases` is what ``lsm bench --goals`` and ``benchmarks/bench_goals.py`` run;
:func:`goal_table` reads either one's results (``python scripts/bench_goals.py RESULTS.json``)
and prints one row per goal and case: the lsm figure, the peer figure, their ratio, the target
and whether it is met. Ratios come from medians measured in the same run.

The goals, float32 and inputs of 32 MB unless said:

1. with ``out=``, log_softmax and softmax >= 1.2x torch's ``out=`` kernels on 262144x32,
   8192x1024, 1024x32768, 32x1048576 (last axis), 8192x1024 (axis 0) and 64x1024x256 (axis 1);
2. the same calls reach >= 50% of a same-run parallel copy of the input;
3. allocating calls: >= 1.2x torch's allocating call and >= 3x ``scipy.special``;
4. logsumexp over the last axis of the first three shapes: >= 1.0x jitted jax, >= 2x
   ``torch.logsumexp``, >= 5x ``scipy.special.logsumexp``;
5. float64 >= 1.0x torch; float16 >= 1.0x torch, with no full-size float32 temporary;
6. a 100-element array: per call no slower than ``scipy.special``;
7. throughput within +-25% of its median from 4 MB to 1 GB inputs (1e3 to 1e8 elements and
   1 GiB reported; 1e8 and 1 GiB with ``--large``);
8. import and first call in a fresh process, kernel cache warm: <= 1 s (:mod:`lsm.bench.startup`;
   the cold compile time is reported beside it).
"""

import statistics
from dataclasses import dataclass

import numpy as np

from .cases import OPS, make_cases, shape_id
from .report import describe_run, markdown
from .results import load, timed_cases

# (shape, axis) of goals 1, 2, 3 and 5: 8,388,608 elements each, 32 MB in float32.
GOAL_INPUTS = (
    ((262144, 32), -1),
    ((8192, 1024), -1),
    ((1024, 32768), -1),
    ((32, 1048576), -1),
    ((8192, 1024), 0),
    ((64, 1024, 256), 1),
)
LOGSUMEXP_INPUTS = GOAL_INPUTS[:3]
SMALL_INPUTS = (((100,), -1),)
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
        lsm's implementation judged, per op the first one the op has (``lsm_alloc``, else ``lsm``).
    peer : str
        The implementation compared with (its GB/s); ``"copy"``: the same-run copy of the input;
        ``"float32 copy"``: the size of a float32 copy of the input (goal 5c); ``"median"``: the
        median throughput of the series (goal 7); ``"cold compile"``: goal 8.
    target : float
        The ratio to reach: lsm over the peer, at least ``target``; at most ``target`` where
        :attr:`at_most` (memory, spread, seconds).
    runs_peers : bool
        Whether the goal's cases include every installed peer (so its inputs are compared with
        all of them in the same run), or only lsm and :attr:`peer`.
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
    runs_peers: bool = True

    def lsm_impl(self, op):
        """The implementation of lsm this goal judges for ``op``."""
        return next(impl for impl in self.impls if getattr(OPS[op], impl) is not None)


GOALS = (
    Goal("1", "out=: >= 1.2x torch out=", FORWARD, "float32", GOAL_INPUTS, target=1.2),
    Goal("2", "out=: >= 50% of a parallel copy", FORWARD, "float32", GOAL_INPUTS, peer="copy", target=0.5),
    Goal("3a", "allocating: >= 1.2x torch", FORWARD, "float32", GOAL_INPUTS, ("lsm_alloc",), "torch", 1.2),
    Goal("3b", "allocating: >= 3x scipy", FORWARD, "float32", GOAL_INPUTS, ("lsm_alloc",), "scipy", 3.0),
    Goal("4a", "logsumexp: >= 1.0x jax.jit", ("logsumexp",), "float32", LOGSUMEXP_INPUTS, peer="jax"),
    Goal(
        "4b", "logsumexp: >= 2x torch", ("logsumexp",), "float32", LOGSUMEXP_INPUTS, peer="torch", target=2.0
    ),
    Goal(
        "4c", "logsumexp: >= 5x scipy", ("logsumexp",), "float32", LOGSUMEXP_INPUTS, peer="scipy", target=5.0
    ),
    Goal("5a", "float64: >= 1.0x torch out=", FORWARD, "float64", GOAL_INPUTS),
    Goal("5b", "float16: >= 1.0x torch out=", FORWARD, "float16", GOAL_INPUTS),
    Goal(
        "5c",
        "float16: no full-size float32 temporary",
        FORWARD,
        "float16",
        GOAL_INPUTS,
        peer="float32 copy",
        target=0.5,  # NumPy's peak during an out= call over a float32 copy's size: one such copy is 1
        at_most=True,
    ),
    Goal(
        "6",
        "100 elements: per call <= scipy",
        (*FORWARD, "logsumexp"),
        "float32",
        SMALL_INPUTS,
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
        runs_peers=False,
    ),
    Goal(
        "8",
        "import + first call <= 1 s (warm cache)",
        STARTUP_OPS,
        "float32",
        (),
        peer="cold compile",
        at_most=True,
    ),
)


def _fits(shape, large):
    return large or int(np.prod(shape)) < LARGE_ELEMENTS


def goal_cases(backend, large=False, ops=None, dtypes=None, impls=None):
    """Every case some goal needs, on ``backend``, ordered input by input like :func:`make_cases`.

    ``large`` adds the inputs of 1e8 elements and more (goal 7; several GB of memory). ``ops``,
    ``dtypes`` and ``impls`` narrow the selection as in :func:`make_cases`.
    """
    wanted = set()
    for goal in GOALS:
        chosen = None if goal.runs_peers else {goal.lsm_impl(op) for op in goal.ops}
        for case in make_cases(backend, goal.ops, [goal.dtype], impls=chosen, inputs=goal.inputs):
            wanted.add(case.id)
    inputs = [pair for goal in GOALS for pair in goal.inputs if _fits(pair[0], large)]
    return [
        case for case in make_cases(backend, ops, dtypes, impls=impls, inputs=inputs) if case.id in wanted
    ]


@dataclass(frozen=True)
class Row:
    """One line of the goal table: a goal judged on one case (or one op, for goals 7 and 8)."""

    goal: str
    case: str
    lsm: str
    peer: str
    ratio: float | None
    target: str
    met: str

    def cells(self):
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}"
        return [self.goal, self.case, self.lsm, self.peer, ratio, self.target, self.met]


def _target(goal):
    unit = " s" if goal.peer == "cold compile" else ""
    return f"{'<=' if goal.at_most else '>='} {goal.target:g}{unit}"


def _met(goal, ratio):
    if ratio is None:
        return "-"
    return "yes" if (ratio <= goal.target if goal.at_most else ratio >= goal.target) else "no"


def _row(goal, case, lsm, peer, ratio):
    return Row(goal.number, case, lsm, peer, ratio, _target(goal), _met(goal, ratio))


def _speed(info):
    """A case's figure: GB/s, or the time per call for inputs too small for GB/s to mean much."""
    if info["elements"] < 10**4:
        return f"{info['median_s'] * 1e6:.2f} us"
    return f"{info['gbps']:.2f} GB/s"


def _index(doc):
    """``{(op, dtype, shape, axis, impl): extra_info}`` of the document's timed cases."""
    return {
        (info["op"], info["dtype"], tuple(info["shape"]), info["axis"], info["impl"]): info
        for info in timed_cases(doc).values()
        if info.get("backend", "cpu") == "cpu"
    }


def _versus(goal, mine, theirs):
    """``(lsm text, peer text, ratio)`` of lsm's ``mine`` against the goal's peer (``theirs``: its
    case, None where the peer is the copy or a float32 copy, or was not measured)."""
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
    rows = []
    for op in goal.ops:
        impl = goal.lsm_impl(op)
        for shape, axis in goal.inputs:
            key = (op, goal.dtype, shape, axis)
            mine = found.get((*key, impl))
            if mine is None:
                continue
            label = f"{op} {goal.dtype} {shape_id(shape)} axis {axis}"
            if impl != "lsm":
                label += f" ({impl})"
            rows.append(_row(goal, label, *_versus(goal, mine, found.get((*key, goal.peer)))))
    return rows


def _spread_rows(goal, found):
    """Goal 7: per op, the largest deviation of GB/s from the median over inputs of 4 MB and more."""
    rows = []
    for op in goal.ops:
        impl = goal.lsm_impl(op)
        series = [
            found[(op, goal.dtype, shape, axis, impl)]
            for shape, axis in goal.inputs
            if (op, goal.dtype, shape, axis, impl) in found
        ]
        judged = [
            info for info in series if info["elements"] * np.dtype(goal.dtype).itemsize >= SPREAD_FROM_BYTES
        ]
        if not judged:
            continue
        speeds = [info["gbps"] for info in judged]
        middle = statistics.median(speeds)
        deviation = max(abs(speed / middle - 1) for speed in speeds)
        shapes = f"{shape_id(judged[0]['shape'])} .. {shape_id(judged[-1]['shape'])}"
        lsm_text = f"{min(speeds):.2f} .. {max(speeds):.2f} GB/s"
        rows.append(
            _row(goal, f"{op} {goal.dtype} {shapes}", lsm_text, f"median {middle:.2f} GB/s", deviation)
        )
    return rows


def startup_infos(doc):
    """``{op: extra_info}`` of the document's startup measurements (goal 8)."""
    return {
        bench["extra_info"]["op"]: bench["extra_info"]
        for bench in doc["benchmarks"]
        if (bench.get("extra_info") or {}).get("measure") == "startup"
    }


def _startup_rows(goal, infos):
    """Goal 8: per op, import and first call with the kernel cache warm, the cold compile beside it."""
    rows = []
    for op, info in infos.items():
        cold = info.get("cold_s")
        cold_text = "-" if cold is None else f"cold compile {cold:.2f} s"
        label = f"{op} {info['dtype']} {shape_id(info['shape'])}"
        rows.append(_row(goal, label, f"{info['warm_s']:.2f} s", cold_text, info["warm_s"]))
    return rows


def evaluate(doc):
    """The :class:`Row` of every goal and case measured in ``doc``, goal by goal."""
    found = _index(doc)
    rows = []
    for goal in GOALS:
        if goal.peer == "median":
            rows += _spread_rows(goal, found)
        elif goal.peer == "cold compile":
            rows += _startup_rows(goal, startup_infos(doc))
        else:
            rows += _case_rows(goal, found)
    return rows


def goal_table(doc):
    """The goal-by-goal markdown table of ``doc``, then one line per goal: cases met of measured."""
    rows = evaluate(doc)
    if not rows:
        return "(no goal case measured)"
    headers = ["goal", "case", "lsm", "peer", "ratio", "target", "met"]
    lines = [markdown(headers, [row.cells() for row in rows]), ""]
    for goal in GOALS:
        judged = [row for row in rows if row.goal == goal.number and row.met != "-"]
        if judged:
            met = sum(row.met == "yes" for row in judged)
            lines.append(f"- goal {goal.number} ({goal.text}): met on {met} of {len(judged)}")
    return "\n".join(lines)


def main(argv=None):
    """``scripts/bench_goals.py RESULTS.json``: print the goal table of a results file."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="bench_goals.py",
        description="Print the goal-by-goal markdown table of issue 3's speed goals from a results file "
        "written by lsm bench --goals or pytest benchmarks/bench_goals.py --benchmark-json.",
    )
    parser.add_argument("results", metavar="RESULTS.json")
    args = parser.parse_args(argv)
    try:
        doc = load(args.results)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    print(f"Measured on {describe_run(doc)}.\n\n{goal_table(doc)}")
    return 0
