"""One revision's side of ``lsm bench compare``: a long-lived process timing cases on request.

Run as a script (``python ab_worker.py TABLE_PATH``) with ``PYTHONPATH`` on the revision's
source tree, so ``import lsm`` is that revision's lsm, while the cases come from the comparing
checkout's :mod:`lsm.bench.table` (loaded from ``TABLE_PATH``): both revisions then time exactly
the same calls on the same seeded inputs. Hence this file imports nothing of lsm but ``lsm``
itself, and nothing of the revision but its public functions.

Requests and answers are JSON, one line each, on stdin and stdout:

- ``{"cmd": "hello"}``: where ``lsm`` was imported from, its version, Numba's threads;
- ``{"cmd": "prepare", "case": {...}, "check": true}``: make the case's input and call, call it
  once (compiles, faults in memory), check the result against the float64 reference (unless
  ``check`` is false); answers ``{"ok": true}`` or ``{"ok": false, "why": ...}``;
- ``{"cmd": "calibrate", "round_time": s}``: calls per round so that a round lasts ``s``;
- ``{"cmd": "reallocate"}``: the operands and output moved to new memory;
- ``{"cmd": "round", "iterations": n}``: one untimed call (wakes Numba's threads, asleep while
  the other revision ran), then ``n`` timed calls; answers the seconds per call;
- ``{"cmd": "copy", "rounds": n}``: the best of ``n`` timed copies of the input (GB/s moved);
- ``{"cmd": "exit"}``.
"""

import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

# A script's own folder comes first on sys.path; lsm must come from PYTHONPATH (the revision).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import numpy as np

LSM_FAMILIES = ("lsm", "lsm_alloc", "lsm_in_place")


def load_table(path):
    """The comparing checkout's :mod:`lsm.bench.table`, loaded from its file (not from lsm)."""
    spec = importlib.util.spec_from_file_location("lsm_bench_ab_table", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Worker:
    """The state of one worker: the revision's lsm, the table, the case being timed."""

    def __init__(self, table):
        import lsm

        self.lsm = lsm
        self.table = table
        self.call = None
        self.x = None

    def hello(self):
        import numba

        return {
            "lsm_file": self.lsm.__file__,
            "lsm_version": getattr(self.lsm, "__version__", None),
            "numba_threads": numba.get_num_threads(),
        }

    def prepare(self, case, check=True):
        self.call = self.x = None
        op = self.table.OPS[case["op"]]
        family = case["impl"]
        if family not in LSM_FAMILIES or family not in op.impls:
            return {"ok": False, "why": f"{family!r} is not one of lsm's implementations of {case['op']}"}
        shape, axis = tuple(case["shape"]), case["axis"]
        x = self.table.make_input(shape, case["dtype"])
        operands = op.inputs(x, axis)
        if family == "lsm_in_place":  # each call overwrites it: its own copy
            operands = (operands[0].copy(), *operands[1:])
        self.operands, self.out = operands, np.empty(op.result_shape(shape, axis), x.dtype)
        compute = op.impls[family]

        def call():
            return compute(self.lsm, self.operands, axis, self.out)

        try:
            result = call()
        except Exception as error:  # a revision without this function or argument
            return {"ok": False, "why": f"{type(error).__name__}: {error}"}
        if not check:
            return {"ok": True}
        try:
            expected = self.table.reference(case["op"], x, axis)
            self.table.check_result(case["dtype"], np.asarray(result), expected)
        except AssertionError as error:
            return {"ok": False, "why": f"wrong result: {error}"}
        self.call, self.x = call, x
        return {"ok": True}

    def reallocate(self):
        """Move the operands and the output to new memory: whether an allocation got huge pages, or
        where it sits in the caches' sets, is luck that lasts as long as the allocation; drawn
        anew for every pair, it is part of the noise the interval covers, not a fixed bias."""
        self.operands = tuple(np.array(a, copy=True) for a in self.operands)
        self.out = np.empty_like(self.out)
        return {"ok": True}

    def timed_round(self, iterations):
        self.call()
        start = time.perf_counter()
        for _ in range(iterations):
            self.call()
        return time.perf_counter() - start

    def calibrate(self, round_time):
        iterations = 1
        while True:
            elapsed = min(self.timed_round(iterations), self.timed_round(iterations))
            if elapsed >= round_time:
                return {"iterations": iterations}
            wanted = int(iterations * 1.2 * round_time / max(elapsed, 1e-9)) + 1
            iterations = max(iterations + 1, min(wanted, 10 * iterations))

    def round(self, iterations):
        return {"seconds": self.timed_round(iterations) / iterations}

    def copy(self, rounds):
        src = np.ascontiguousarray(self.x)
        dst = np.empty_like(src)
        best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(rounds))
        return {"copy_gbps": 2 * src.nbytes / best / 1e9}


def _timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(table_path):
    worker = Worker(load_table(table_path))
    handlers = {
        "hello": lambda request: worker.hello(),
        "prepare": lambda request: worker.prepare(request["case"], request.get("check", True)),
        "calibrate": lambda request: worker.calibrate(request["round_time"]),
        "round": lambda request: worker.round(request["iterations"]),
        "reallocate": lambda request: worker.reallocate(),
        "copy": lambda request: worker.copy(request["rounds"]),
    }
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "exit":
            break
        try:
            answer = handlers[request["cmd"]](request)
        except Exception:
            answer = {"ok": False, "error": traceback.format_exc()}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
