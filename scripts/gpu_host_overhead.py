"""Host-side time of one GPU call of lsm, with the kernel launches stubbed (issue 19, item 5).

No GPU is needed: the driver boundary of the CUDA backend (``lsm.cuda._numba``) is replaced by
the stand-ins of ``tests/test_cuda_launcher.py`` (host memory posing as device memory, streams
as names), the kernel launch by a no-op that counts, and the whole Python side of a
call runs as it does on a GPU: argument checks, interface reading, planning, the kernel choice,
grids, the kernel arguments (lsm's ``KernelArray``s, made as on a GPU), the check kernels'
verdict. Allocations go to a stand-in of the caller's allocator (``numpy.empty`` posing as device
memory), timed where they happen: each figure is given with the stand-in allocator's share and
without it ("lsm alone"), since a caching GPU allocator (CuPy's pool, torch's) makes no system
call where ``numpy.empty`` of a large buffer may.

Not included: numba-cuda's own launch (typing the arguments, finding the compiled kernel,
marshalling, ``cuLaunchKernel``), the streams' lookup in the driver, and the device-to-host copy
of a loss's check verdict: a GPU adds those. Each figure is the median over ``--repeats``
batches of ``--calls`` calls, in microseconds per call. Timings depend on the machine and its
load.

Usage::

    python scripts/gpu_host_overhead.py [--repeats 41] [--calls 50]
"""

import argparse
import contextlib
import importlib.metadata
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_cuda_launcher as launcher

import lsm
from lsm.cuda import _numba

SHAPE = (4096, 1000)  # float32 rows of 1,000: the warp-per-row kernels


def allocate(shape, dtype):
    """The stand-in for the caller's allocator: host memory from ``numpy.empty`` posing as a
    device array (a CuPy or torch allocation costs about as much on the host)."""
    return launcher.DeviceStandIn(np.empty(shape, dtype))


@contextlib.contextmanager
def stubbed(counts, count_arrays=False):
    """The CUDA backend with the stand-in driver of ``tests/test_cuda_launcher.py`` and no-op
    launches; ``counts`` gets the launches, the allocations and the stand-in allocator's
    seconds, and with ``count_arrays`` the kernel arrays made (through a wrapper, whose own
    time would be measured with lsm's: the timed calls go without it)."""
    streams = launcher.Launches()  # its streams: names, no driver
    real_kernel_array = _numba.kernel_array

    def launch(kernel, blocks, threads, stream, *args, shared=0):
        counts["launches"] += 1

    def kernel_array(*description):
        counts["kernel arrays"] += 1
        return real_kernel_array(*description)

    def device_array(shape, dtype, stream):
        counts["allocations"] += 1
        start = time.perf_counter()
        array = allocate(shape, dtype)
        counts["allocator s"] += time.perf_counter() - start
        return array

    stand_ins = {
        "is_available": lambda: True,
        "stream": streams.stream,  # (the real on_device: for the Numba kind's arrays, whose
        # device is the current one, it makes no driver call)
        "wait": lambda producer, consumer: None,
        "device_array": device_array,
        "as_device": lambda owner, pointer, *layout: launcher.CopiedArray(*layout),
        "to_host": launcher._verdict_without_errors,
        "kernel_array": kernel_array if count_arrays else real_kernel_array,
        "launch": launch,
    }
    with contextlib.ExitStack() as stack:
        for name, value in stand_ins.items():
            stack.enter_context(mock.patch.object(_numba, name, value))
        yield


def calls():
    """``{name: call}``: the calls measured, on stand-in device arrays of ``SHAPE``."""
    rng = np.random.default_rng(0)
    x = launcher.DeviceStandIn(rng.standard_normal(SHAPE).astype(np.float32))
    target = launcher.DeviceStandIn(rng.integers(0, SHAPE[1], SHAPE[0]))
    return {
        "softmax": lambda: lsm.softmax(x),
        "logsumexp": lambda: lsm.logsumexp(x, axis=-1),
        "cross_entropy with gradient": lambda: lsm.cross_entropy(x, target, return_grad=True),
    }


def per_call_us(call, repeats, batch, counts=None):
    """``(total, allocator, alone)``: medians over ``repeats`` batches of ``batch`` calls of the
    time per call, of the part of it spent in the stand-in allocator (``counts["allocator s"]``,
    which the stubbed allocator adds to; 0 without ``counts``) and of the rest, in microseconds."""
    counts = {"allocator s": 0.0} if counts is None else counts
    call()  # warm-up: imports, plan caches
    totals, allocator = [], []
    for _ in range(repeats):
        counts["allocator s"] = 0.0
        start = time.perf_counter()
        for _ in range(batch):
            call()
        totals.append((time.perf_counter() - start) / batch * 1e6)
        allocator.append(counts["allocator s"] / batch * 1e6)
    alone = [total - allocated for total, allocated in zip(totals, allocator, strict=True)]
    return statistics.median(totals), statistics.median(allocator), statistics.median(alone)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=41, help="batches timed (default 41)")
    parser.add_argument("--calls", type=int, default=50, help="calls per batch (default 50)")
    args = parser.parse_args()
    print(
        f"numba-cuda {importlib.metadata.version('numba-cuda')}, x: {SHAPE} float32, "
        f"median of {args.repeats} batches of {args.calls} calls"
    )
    columns = ["launches", "kernel arrays", "allocations", "host time (us)", "stand-in allocator (us)"]
    print(f"| call | {' | '.join(columns)} | lsm alone (us) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, call in calls().items():
        counts = {"launches": 0, "kernel arrays": 0, "allocations": 0, "allocator s": 0.0}
        with stubbed(counts, count_arrays=True):
            call()
        once = dict(counts)
        with stubbed(counts):
            figures = per_call_us(call, args.repeats, args.calls, counts)
        row = [once["launches"], once["kernel arrays"], once["allocations"]]
        row += [f"{figure:.1f}" for figure in figures]
        print(f"| {name} | {' | '.join(map(str, row))} |")
    each, _, _ = per_call_us(lambda: allocate(SHAPE, np.dtype(np.float32)), args.repeats, args.calls)
    print(f"\nOne allocation of the stand-in allocator on its own, {SHAPE} float32: {each:.1f} us")


if __name__ == "__main__":
    main()
