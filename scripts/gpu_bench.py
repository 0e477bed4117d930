"""lsm on the GPU against a same-run device copy, cupyx.scipy.special and torch (CUDA events).

Usage: ``python scripts/gpu_bench.py --out DIR [--megabytes 256] [--cols 32 128 ...]``. Needs a
CUDA GPU with CuPy (``pip install -e ".[cuda]"``); torch on CUDA is measured when present.

For each dtype (float32, float16), each column count and each axis (-1: rows, 0: columns) the
input is a ``(rows, cols)`` array of about ``--megabytes`` MB. Every op is timed with CUDA events
on the current stream, after a warm-up call, as the median over ``--repeats`` timed calls.
Throughput is bytes moved / time: 2 x input bytes for log_softmax and softmax (read and write),
1 x for logsumexp. ``copy`` is a device-to-device copy of the same array in the same run, the
ceiling the fractions refer to. Ratios are the peer's time over lsm's (above 1: lsm is faster).
Host overhead per call is the wall time of back-to-back calls on a tiny input, without waiting.

Writes ``gpu_bench.json`` (every measurement) and ``gpu_bench.md`` (the table) into ``--out``.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import lsm

OPS = ("log_softmax", "softmax", "logsumexp")
COLS = (32, 128, 1024, 4096, 16384, 65536, 262144)


def event_time(call, repeats, cupy):
    """Median seconds per call, timed with CUDA events on CuPy's current stream."""
    call()  # warm-up: compile, allocate from the pool
    times = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        call()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


def torch_time(call, repeats, torch):
    """Median seconds per call, timed with torch's CUDA events on its current stream."""
    call()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return float(np.median(times))


def lsm_call(op, x, axis):
    func = getattr(lsm, op)
    return lambda: func(x, axis=axis)


def cupyx_call(op, x, axis):
    import cupyx.scipy.special as special

    func = getattr(special, op, None)
    return None if func is None else (lambda: func(x, axis=axis))


def torch_call(op, x, axis, torch):
    func = {"log_softmax": torch.log_softmax, "softmax": torch.softmax, "logsumexp": torch.logsumexp}[op]
    return lambda: func(x, axis)


def moved_bytes(op, nbytes):
    return nbytes if op == "logsumexp" else 2 * nbytes


def sweep(args, cupy, torch):
    records = []
    for dtype in args.dtypes:
        itemsize = np.dtype(dtype).itemsize
        for cols in args.cols:
            rows = max(1, args.megabytes * 2**20 // (cols * itemsize))
            x = cupy.random.standard_normal((rows, cols), dtype=np.float32).astype(dtype)
            copy_target = cupy.empty_like(x)
            copy_s = event_time(lambda x=x, y=copy_target: cupy.copyto(y, x), args.repeats, cupy)
            copy_gbs = 2 * x.nbytes / copy_s / 1e9
            xt = None if torch is None else torch.as_tensor(x, device="cuda")
            for axis in (-1, 0):
                for op in OPS:
                    record = {"dtype": dtype, "rows": rows, "cols": cols, "axis": axis, "op": op}
                    record["copy_gbs"] = copy_gbs
                    seconds = event_time(lsm_call(op, x, axis), args.repeats, cupy)
                    record["lsm_s"] = seconds
                    record["lsm_gbs"] = moved_bytes(op, x.nbytes) / seconds / 1e9
                    record["fraction_of_copy"] = record["lsm_gbs"] / copy_gbs
                    peer = cupyx_call(op, x, axis)
                    if peer is not None:
                        record["cupyx_s"] = event_time(peer, args.repeats, cupy)
                        record["vs_cupyx"] = record["cupyx_s"] / seconds
                    if xt is not None:
                        record["torch_s"] = torch_time(torch_call(op, xt, axis, torch), args.repeats, torch)
                        record["vs_torch"] = record["torch_s"] / seconds
                    records.append(record)
                    print(json.dumps(record), flush=True)
            del x, copy_target, xt
            cupy.get_default_memory_pool().free_all_blocks()
    return records


def host_overhead(cupy, torch, calls=2000):
    """Microseconds of host time per call on a (1, 32) input, calls queued back to back."""
    x = cupy.zeros((1, 32), dtype=np.float32)
    result = {}
    for op in OPS:
        call = lsm_call(op, x, -1)
        call()
        cupy.cuda.get_current_stream().synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            call()
        result[f"lsm_{op}_us"] = (time.perf_counter() - start) / calls * 1e6
        cupy.cuda.get_current_stream().synchronize()
    if torch is not None:
        xt = torch.as_tensor(x, device="cuda")
        start = time.perf_counter()
        for _ in range(calls):
            torch.log_softmax(xt, -1)
        result["torch_log_softmax_us"] = (time.perf_counter() - start) / calls * 1e6
        torch.cuda.synchronize()
    return result


def markdown(records, overhead, device):
    lines = [
        f"GPU: {device}",
        "",
        "| dtype | axis | rows x cols | op | lsm GB/s | of copy | vs cupyx | vs torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        cupyx = f"{r['vs_cupyx']:.2f}x" if "vs_cupyx" in r else "-"
        torch = f"{r['vs_torch']:.2f}x" if "vs_torch" in r else "-"
        lines.append(
            f"| {r['dtype']} | {r['axis']} | {r['rows']} x {r['cols']} | {r['op']} | {r['lsm_gbs']:.0f} "
            f"| {r['fraction_of_copy']:.0%} | {cupyx} | {torch} |"
        )
    lines += ["", "Host overhead per call (us): " + ", ".join(f"{k} {v:.1f}" for k, v in overhead.items())]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for gpu_bench.json/.md")
    parser.add_argument("--megabytes", type=int, default=256, help="size of each input (MB)")
    parser.add_argument("--cols", type=int, nargs="+", default=list(COLS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float16"])
    parser.add_argument("--repeats", type=int, default=10)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import cupy

    try:
        import torch

        torch = torch if torch.cuda.is_available() else None
    except ImportError:
        torch = None
    device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    records = sweep(args, cupy, torch)
    overhead = host_overhead(cupy, torch)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"device": device, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "python": platform.python_version()}
    (args.out / "gpu_bench.json").write_text(
        json.dumps({"meta": meta, "records": records, "overhead_us": overhead}, indent=1)
    )
    (args.out / "gpu_bench.md").write_text(markdown(records, overhead, device))
    print(markdown(records, overhead, device))


if __name__ == "__main__":
    main()
