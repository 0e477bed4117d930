"""The case selections that ``lsm bench compare`` and ``lsm bench record`` time.

- ``gate``: every op, dtype and layout (contiguous rows, a strided column axis, short rows) on
  inputs of 2-4 million elements, a millisecond or more per call on a small machine: the time is
  the kernel's, not the call's overhead or a thread pool waking up. Threads stay busy for the
  whole round, so a 5% change in a kernel is a 5% change in the figure.
- ``overhead``: the same ops on 100 x 100 inputs, a few microseconds per call: what planning,
  validation and dispatch cost. Its figures are absolute per-call times, compared within one run
  (a fraction of a copy of 40 KB means little).
"""

from dataclasses import dataclass

from .backends import BACKENDS
from .table import make_cases


@dataclass(frozen=True)
class Suite:
    """A selection of ``(shape, axis)`` inputs, crossed with every op and dtype."""

    description: str
    inputs: tuple


SUITES = {
    "gate": Suite(
        "kernels: 2-4 million elements, rows, columns and short rows",
        (((4096, 1024), -1), ((4096, 1024), 0), ((65536, 32), -1)),
    ),
    "overhead": Suite("per-call overhead: 100 x 100, rows and columns", (((100, 100), -1), ((100, 100), 0))),
}


def suite_cases(suite, ops=None, dtypes=None, impls=("lsm",), backend="cpu"):
    """The :class:`lsm.bench.table.Case` list of ``suite`` within the given choices (None: all)."""
    return make_cases(BACKENDS[backend], ops, dtypes, inputs=suite.inputs, impls=impls)
