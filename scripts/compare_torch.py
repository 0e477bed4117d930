"""lsm against torch (and scipy.special) on the CPU, in one process, on the tracked shapes.

Usage: ``python scripts/compare_torch.py [float32|float64|float16]`` (torch must be installed; on this
project's machines ``pip install torch==2.13.0`` takes the CPU build). Prints a markdown table:
GB/s = 2 x input bytes / median time (logsumexp: 1 x), for calls writing into a preallocated
array ("out": ``torch._log_softmax(x, dim, False, out=o)`` and ``torch._softmax``), allocating
calls ("alloc"), and logsumexp over the last axis; ``copy`` is ``Tensor.copy_`` of the same
array. Each ratio is torch's time over lsm's (above 1: lsm is faster). Both libraries run with
the same number of threads (Numba's).
"""

import argparse
import time

import numba
import numpy as np
import scipy.special
import torch

import lsm

SHAPES = [
    ((262144, 32), -1),
    ((8192, 1024), -1),
    ((1024, 32768), -1),
    ((32, 1048576), -1),
    ((8192, 1024), 0),
    ((64, 1024, 256), 1),
]


def median_time(call, repeats=9):
    call()  # warm-up: compile or load from cache, fault in memory
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def row(shape, axis, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out = np.empty_like(x)
    tx, tout = torch.from_numpy(x), torch.from_numpy(out)
    moved = 2 * x.nbytes / 1e9
    copy = median_time(lambda: tout.copy_(tx))
    lsm_log = median_time(lambda: lsm.log_softmax(x, axis=axis, out=out))
    torch_log = median_time(lambda: torch._log_softmax(tx, axis, False, out=tout))
    lsm_soft = median_time(lambda: lsm.softmax(x, axis=axis, out=out))
    torch_soft = median_time(lambda: torch._softmax(tx, axis, False, out=tout))
    lsm_alloc = median_time(lambda: lsm.log_softmax(x, axis=axis))
    torch_alloc = median_time(lambda: torch.log_softmax(tx, axis))
    scipy_alloc = median_time(lambda: scipy.special.log_softmax(x, axis=axis), repeats=3)
    cells = [
        "x".join(map(str, shape)),
        str(axis),
        f"{moved / copy:.1f}",
        f"{moved / lsm_log:.1f}",
        f"{moved / torch_log:.1f}",
        f"{torch_log / lsm_log:.2f}",
        f"{moved / lsm_soft:.1f}",
        f"{moved / torch_soft:.1f}",
        f"{torch_soft / lsm_soft:.2f}",
        f"{moved / lsm_alloc:.1f}",
        f"{moved / torch_alloc:.1f}",
        f"{torch_alloc / lsm_alloc:.2f}",
        f"{moved / scipy_alloc:.1f}",
        f"{scipy_alloc / lsm_alloc:.1f}",
    ]
    if axis == -1:
        lsm_lse = median_time(lambda: lsm.logsumexp(x, axis=axis))
        torch_lse = median_time(lambda: torch.logsumexp(tx, axis))
        read = x.nbytes / 1e9
        cells += [f"{read / lsm_lse:.1f}", f"{read / torch_lse:.1f}", f"{torch_lse / lsm_lse:.2f}"]
    else:
        cells += ["-", "-", "-"]
    return "| " + " | ".join(cells) + " |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dtype", nargs="?", default="float32", choices=["float32", "float64", "float16"])
    dtype = np.dtype(parser.parse_args().dtype)
    torch.set_num_threads(numba.get_num_threads())
    columns = [
        "shape", "axis", "copy",
        "lsm log_softmax out", "torch out", "ratio",
        "lsm softmax out", "torch out", "ratio",
        "lsm alloc", "torch alloc", "ratio",
        "scipy alloc", "scipy / lsm",
        "lsm logsumexp", "torch logsumexp", "ratio",
    ]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for shape, axis in SHAPES:
        print(row(shape, axis, dtype), flush=True)


if __name__ == "__main__":
    main()
