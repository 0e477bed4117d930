"""Global-memory traffic of every GPU kernel path, counted in the CUDA simulator (issue 19).

No GPU is needed to know how many times a kernel reads and writes global memory: in the
simulator every kernel argument is a NumPy array behind numba's ``FakeCUDAArray``, and every
``x[i, j]`` of the kernel code is a ``__getitem__`` (a ``__setitem__`` for a store) on it. Every
launch of lsm goes through ``lsm.cuda._numba.launch``; here it hands the kernel, instead of each
device array, a subclass that counts its element loads and stores. Shared memory
(``cuda.shared.array``) and the per-thread arrays (``cuda.local.array``: the warp kernels' row
cache, in registers on a GPU) are plain NumPy arrays the kernel makes itself, so they are not
counted. Each count is attributed to the operand whose memory the argument lies in (``x``, ``y``,
``target``, ``out``), or to ``scratch``: memory lsm allocates during the call (the split path's
partials, a loss's per-item losses, its checks' verdict).

``TRAFFIC`` is the one table of what each path costs today, in element accesses per element of
``x`` (exact fractions, under the simulator's tunables ``conftest.SIM_CONFIG``: 32-thread
blocks; the counts do not depend on thread scheduling). A kernel change that alters the traffic
of a path makes ``test_traffic`` fail with the measured table of that path, and the change
updates the row (and ``benchmarks/RESULTS.md``). The design targets of issue 19 are 1 read and
1 write of each element for rows that fit on chip (the warp-per-row and the shared-memory row
paths), 2 reads and 1 write otherwise (one-pass summaries, then the output), 1 read for
logsumexp; ``test_paths_keep_their_promised_traffic`` holds every row of the table to them.

The counts are element accesses by threads. An access that all lanes of a warp make to the
same address (the target logit that every thread of a cross-entropy block reads) is one memory
transaction on a GPU, but it counts once per thread here: the table shows it as it is written.

Print the measured table (markdown, for ``benchmarks/RESULTS.md``)::

    NUMBA_ENABLE_CUDASIM=1 python tests/test_cuda_traffic.py
"""

import contextlib
import inspect
import os
import sys
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from unittest import mock

import numpy as np
import pytest

pytestmark = pytest.mark.cuda_sim

ROLES = ("x", "y", "target", "out", "scratch")


@dataclass(frozen=True)
class Path:
    """One kernel path: the call that takes it, the kernels it launches, and its traffic.

    ``call`` is ``log_softmax``, ``softmax``, ``logsumexp``, ``log_softmax_backward``,
    ``softmax_backward`` or ``cross_entropy`` (class-index targets, mean, with the gradient
    into ``grad_out``); ``reads`` and ``writes`` map an operand (see ``ROLES``) to its element
    accesses per element of ``x``; operands not named have none. ``config`` sets tunables of
    ``lsm.cuda._config`` for the call (the shared-memory row limit, which ``SIM_CONFIG`` leaves
    at its GPU value).
    """

    call: str
    shape: tuple
    axis: int
    kernels: tuple
    reads: dict
    writes: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # tunables set for the call, over SIM_CONFIG's


F = Fraction
# The one table: what each path reads and writes today, per element of x (SIM_CONFIG tunables).
THREADS = 32  # SIM_CONFIG's BLOCK_THREADS
WARP = 32  # lanes of a warp
SHARED = {"SHARED_ROW_MAX": 64}  # rows kept in shared memory (float32): up to 64 elements
BLOCK_ROWS = {**SHARED, "WARP_ROW_MAX": 16}  # backward rows of 32 and more: a block each
TRAFFIC = {
    # rows of up to 32 elements (1024 on a GPU): the row held in registers
    "softmax, warp per row": Path(
        "softmax", (4, 32), -1, ("softmax_rows_warp1",), reads={"x": 1}, writes={"out": 1}
    ),
    "log_softmax, warp per row": Path(
        "log_softmax", (4, 32), -1, ("softmax_rows_warp1",), reads={"x": 1}, writes={"out": 1}
    ),
    "logsumexp, warp per row": Path(
        "logsumexp", (4, 32), -1, ("logsumexp_rows_warp1",), reads={"x": 1}, writes={"out": F(1, 32)}
    ),
    # rows of up to 16 elements: 8 lanes a row here, four rows a warp
    "softmax, rows sharing a warp": Path(
        "softmax", (8, 7), -1, ("softmax_rows_lanes8",), reads={"x": 1}, writes={"out": 1}
    ),
    "logsumexp, rows sharing a warp": Path(
        "logsumexp", (8, 7), -1, ("logsumexp_rows_lanes8",), reads={"x": 1}, writes={"out": F(1, 7)}
    ),
    # longer rows that fit in shared memory (8192 float32 elements on a GPU; 64 here): one pass
    # reads the row into shared memory, the sums and the output come from there
    "softmax, shared-memory row": Path(
        "softmax", (8, 64), -1, ("softmax_rows_shared",), reads={"x": 1}, writes={"out": 1}, config=SHARED
    ),
    "log_softmax, shared-memory row": Path(
        "log_softmax", (8, 64), -1, ("softmax_rows_shared",), reads={"x": 1}, writes={"out": 1}, config=SHARED
    ),
    "logsumexp, shared-memory row": Path(
        "logsumexp",
        (8, 64),
        -1,
        ("logsumexp_rows_shared",),
        reads={"x": 1},
        writes={"out": F(1, 64)},
        config=SHARED,
    ),
    # rows longer than that: a one-pass summary (m, A, R), then the output, each a pass over
    # the row in global memory
    "softmax, block per row": Path(
        "softmax", (8, 96), -1, ("softmax_rows_block",), reads={"x": 2}, writes={"out": 1}, config=SHARED
    ),
    "logsumexp, block per row": Path(
        "logsumexp",
        (8, 96),
        -1,
        ("logsumexp_rows_block",),
        reads={"x": 1},
        writes={"out": F(1, 96)},
        config=SHARED,
    ),
    # few long rows in chunks of 16: (m, A, R) of each chunk (one pass), then the output; one
    # thread of every chunk's block merges all 6 partials of its row: 6 * 3 reads a chunk
    "softmax, split rows": Path(
        "softmax",
        (2, 96),
        -1,
        ("rows_partials", "softmax_rows_split"),
        reads={"x": 2, "scratch": F(6 * 3, 16)},
        writes={"out": 1, "scratch": F(3, 16)},
    ),
    "logsumexp, split rows": Path(
        "logsumexp",
        (2, 96),
        -1,
        ("rows_partials", "logsumexp_rows_merge"),
        reads={"x": 1, "scratch": F(3, 16)},
        writes={"out": F(1, 96), "scratch": F(3, 16)},
    ),
    # one thread per column: a one-pass summary, then the output
    "softmax, columns": Path("softmax", (32, 8), 0, ("softmax_columns",), reads={"x": 2}, writes={"out": 1}),
    "logsumexp, columns": Path(
        "logsumexp", (32, 8), 0, ("logsumexp_columns",), reads={"x": 1}, writes={"out": F(1, 32)}
    ),
    # one warp per row (rows of up to WARP_ROW_MAX), each in its warp's stretch of shared memory:
    # grad (and y for softmax) read once, the sum, then the output
    "log_softmax_backward, warp per row": Path(
        "log_softmax_backward",
        (4, 32),
        -1,
        ("backward_rows_warp",),
        reads={"x": 1, "y": 1},
        writes={"out": 1},
    ),
    "softmax_backward, warp per row": Path(
        "softmax_backward", (4, 32), -1, ("backward_rows_warp",), reads={"x": 1, "y": 1}, writes={"out": 1}
    ),
    # one block per row (longer rows): the sum, then the output; grad (and y for softmax) kept
    # in shared memory while n (2 n) elements fit (8192 float32 on a GPU, 64 here), read again
    # otherwise
    "log_softmax_backward, shared-memory row": Path(
        "log_softmax_backward",
        (4, 32),
        -1,
        ("backward_rows_shared",),
        reads={"x": 1, "y": 1},
        writes={"out": 1},
        config=BLOCK_ROWS,
    ),
    "softmax_backward, shared-memory row": Path(
        "softmax_backward",
        (4, 32),
        -1,
        ("backward_rows_shared",),
        reads={"x": 1, "y": 1},
        writes={"out": 1},
        config=BLOCK_ROWS,
    ),
    "log_softmax_backward, rows": Path(
        "log_softmax_backward",
        (4, 96),
        -1,
        ("backward_rows",),
        reads={"x": 2, "y": 1},
        writes={"out": 1},
        config=BLOCK_ROWS,
    ),
    "softmax_backward, rows": Path(
        "softmax_backward",
        (4, 96),
        -1,
        ("backward_rows",),
        reads={"x": 2, "y": 2},
        writes={"out": 1},
        config=BLOCK_ROWS,
    ),
    # one thread per column: the sum, then the output
    "log_softmax_backward, columns": Path(
        "log_softmax_backward", (32, 8), 0, ("backward_columns",), reads={"x": 2, "y": 1}, writes={"out": 1}
    ),
    # the checks (one launch: each target read once, a verdict of 3 numbers written), then 2
    # passes over the logits (a one-pass summary, the gradient) and the target logit once per
    # row (by the thread that writes the loss); every thread of a row's block reads the row's
    # target (one address for a whole warp: one transaction on a GPU), then the mean of the
    # per-item losses
    "cross_entropy with gradient, rows": Path(
        "cross_entropy",
        (16, 100),
        -1,
        ("check_classes", "cross_entropy_rows", "reduce_loss"),
        reads={"x": 2 + F(1, 100), "target": F(THREADS + 1, 100), "scratch": F(16, 1600)},
        writes={"out": 1, "scratch": F(3 + 16 + 1, 1600)},
    ),
    # the same by a warp per row (rows of up to WARP_ROW_MAX classes): every lane reads the
    # row's target
    "cross_entropy with gradient, warp per row": Path(
        "cross_entropy",
        (16, 20),
        -1,
        ("check_classes", "cross_entropy_rows_warp", "reduce_loss"),
        reads={"x": 2 + F(1, 20), "target": F(WARP + 1, 20), "scratch": F(16, 320)},
        writes={"out": 1, "scratch": F(3 + 16 + 1, 320)},
    ),
    # the same by 8 lanes a row (rows of 5 to 8 classes, 4 rows a warp): the segment's lanes read
    # the row's target
    "cross_entropy with gradient, rows sharing a warp": Path(
        "cross_entropy",
        (16, 6),
        -1,
        ("check_classes", "cross_entropy_rows_lanes8", "reduce_loss"),
        reads={"x": 2 + F(1, 6), "target": F(8 + 1, 6), "scratch": F(16, 96)},
        writes={"out": 1, "scratch": F(3 + 16 + 1, 96)},
    ),
    "cross_entropy with gradient, columns": Path(
        "cross_entropy",
        (32, 8),
        0,
        ("check_classes", "cross_entropy_columns", "reduce_loss"),
        reads={"x": 2 + F(1, 32), "target": F(2, 32), "scratch": F(8, 256)},
        writes={"out": 1, "scratch": F(3 + 8 + 1, 256)},
    ),
}


class Tally:
    """Element loads and stores per ``(kernel, operand)``, and the kernels launched, in order."""

    def __init__(self, operands):
        self.ranges = {role: np.lib.array_utils.byte_bounds(array) for role, array in operands.items()}
        self.kernels = []
        self.reads, self.writes = {}, {}
        self._lock = threading.Lock()  # the simulator runs each CUDA thread as a Python thread

    def role(self, array):
        """The operand whose memory ``array`` lies in (``scratch``: none of them)."""
        low, high = np.lib.array_utils.byte_bounds(array)
        for role, (start, stop) in self.ranges.items():
            if start <= low and high <= stop:
                return role
        return "scratch"

    def add(self, counts, key):
        with self._lock:
            counts[key] = counts.get(key, 0) + 1

    def per_element(self, counts, size):
        """``{operand: accesses per element}`` of ``counts``, summed over the kernels."""
        total = {}
        for (_, role), count in counts.items():
            total[role] = total.get(role, 0) + count
        return {role: Fraction(count, size) for role, count in total.items() if count}


def _counted_array(tally, key, array):
    """``array`` (a ``FakeCUDAArray``) as an instance of a subclass that counts element accesses."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    class Counted(FakeCUDAArray):
        def __getitem__(self, index):
            value = super().__getitem__(index)
            if isinstance(value, FakeCUDAArray):  # a slice: its accesses would go uncounted
                raise TypeError(f"{key}: the traffic counter counts element accesses only")
            tally.add(tally.reads, key)
            return value

        def __setitem__(self, index, value):
            if np.ndim(self._ary[index]):
                raise TypeError(f"{key}: the traffic counter counts element accesses only")
            tally.add(tally.writes, key)
            super().__setitem__(index, value)

    return Counted(array._ary, array.stream)


@contextlib.contextmanager
def counting(tally):
    """Within the ``with`` block, every launch of lsm hands its kernel counting arrays instead of
    the simulator's device arrays (see the module docstring)."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    from lsm.cuda import _numba

    launch = _numba.launch

    def counting_launch(kernel, blocks, threads, stream, *args, **options):
        name = kernel.py_func.__name__
        tally.kernels.append(name)
        wrapped = []
        for parameter, arg in zip(inspect.signature(kernel.py_func).parameters, args, strict=True):
            if isinstance(arg, FakeCUDAArray):
                arg = _counted_array(tally, (name, tally.role(arg._ary)), arg)
            elif arg is not None and not np.isscalar(arg):
                raise TypeError(f"{name}: argument {parameter!r} is neither an array nor a scalar")
            wrapped.append(arg)
        launch(kernel, blocks, threads, stream, *wrapped, **options)

    with mock.patch.object(_numba, "launch", counting_launch):
        yield


def _operands(path):
    """Host arrays of ``path``'s operands: ``x`` (the logits, or the upstream gradient), ``y``
    (the forward output of a backward call), ``target`` (class indices), ``out``."""
    rng = np.random.default_rng(19)
    x = rng.standard_normal(path.shape).astype(np.float32)
    axis = path.axis % x.ndim
    kept = path.shape[:axis] + path.shape[axis + 1 :]
    operands = {"x": x}
    if path.call.endswith("_backward"):
        operands["y"] = rng.standard_normal(path.shape).astype(np.float32)
    if path.call == "cross_entropy":
        operands["target"] = rng.integers(0, path.shape[axis], kept)
    operands["out"] = np.zeros(kept if path.call == "logsumexp" else path.shape, np.float32)
    return operands


def _call(path, device):
    import lsm

    if path.call.endswith("_backward"):
        func = getattr(lsm, path.call)
        func(device["x"], device["y"], path.axis, out=device["out"])
    elif path.call == "cross_entropy":
        lsm.cross_entropy(device["x"], device["target"], path.axis, return_grad=True, grad_out=device["out"])
    else:
        getattr(lsm, path.call)(device["x"], path.axis, out=device["out"])


def measure(path):
    """``(kernels, reads, writes)`` of one call taking ``path``: the kernels it launched, and
    the element accesses per element of ``x`` of each operand."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    operands = _operands(path)
    tally = Tally(operands)
    device = {role: FakeCUDAArray(array) for role, array in operands.items()}
    from lsm.cuda import _config

    with contextlib.ExitStack() as stack:
        for setting, value in path.config.items():
            stack.enter_context(mock.patch.object(_config, setting, value))
        stack.enter_context(counting(tally))
        _call(path, device)
    size = operands["x"].size
    return tuple(tally.kernels), tally.per_element(tally.reads, size), tally.per_element(tally.writes, size)


def _exact(counts):
    return {role: Fraction(count) for role, count in counts.items() if count}


@pytest.mark.parametrize("name", list(TRAFFIC))
def test_traffic(name):
    """Each path launches the kernels and makes exactly the accesses its row of ``TRAFFIC`` says
    (more reads or writes than the row fail, and so do fewer: the row is then out of date)."""
    path = TRAFFIC[name]
    kernels, reads, writes = measure(path)
    measured = {"kernels": kernels, "reads": reads, "writes": writes}
    expected = {"kernels": path.kernels, "reads": _exact(path.reads), "writes": _exact(path.writes)}
    assert measured == expected, f"{name}: measured reads {_cell(reads)}, writes {_cell(writes)}"


def _promised_reads(name, path):
    """Issue 19's bound on the reads of ``x`` (and ``y``) per element for ``path``, or None where
    it promises none: 1 for a row kept on chip (registers or shared memory) and for logsumexp
    (one online pass), 2 otherwise (a one-pass summary, then the output); a loss's gradient 2,
    plus its target logit once per item. The backward kernels beyond shared memory need the
    row's sum before their output, so nothing bounds them below 3."""
    on_chip = "warp" in name or "shared-memory" in name
    if path.call == "cross_entropy":
        axis = path.axis % len(path.shape)
        return 2 + Fraction(1, path.shape[axis])
    if path.call.endswith("_backward"):
        return 2 if on_chip else None
    return 1 if on_chip or path.call == "logsumexp" else 2


PROMISED = {name: _promised_reads(name, path) for name, path in TRAFFIC.items()}


@pytest.mark.parametrize("name", [name for name, reads in PROMISED.items() if reads is not None])
def test_paths_keep_their_promised_traffic(name):
    """Every path's row of ``TRAFFIC`` (which ``test_traffic`` measures) is within issue 19's
    design: the promised reads of the inputs, one write of each output element."""
    path = TRAFFIC[name]
    assert path.reads.get("x", 0) + path.reads.get("y", 0) <= PROMISED[name]
    assert path.writes["out"] <= 1


def _cell(counts):
    """``x 3, scratch 3/16 (0.188)``: accesses per element, operands in ``ROLES`` order."""
    ordered = sorted(counts.items(), key=lambda item: ROLES.index(item[0]))
    return ", ".join(
        f"{role} {count}" if count.denominator == 1 else f"{role} {count} ({float(count):.3f})"
        for role, count in ordered
    )


def table():
    """The measured traffic of every path, as a markdown table."""
    lines = [
        "| path | call, shape, axis | kernels | reads per element | writes per element |",
        "|---|---|---|---|---|",
    ]
    for name, path in TRAFFIC.items():
        kernels, reads, writes = measure(path)
        call = f"{path.call} {path.shape}, {path.axis}"
        lines.append(f"| {name} | {call} | {', '.join(kernels)} | {_cell(reads)} | {_cell(writes)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        sys.exit("run with NUMBA_ENABLE_CUDASIM=1 (the counts come from the CUDA simulator)")
    from conftest import SIM_CONFIG
    from lsm.cuda import _config

    for setting, setting_value in SIM_CONFIG.items():
        setattr(_config, setting, setting_value)
    sys.setswitchinterval(1e-5)  # as conftest: the simulator's barriers wait for thread switches
    print(table())
