"""Registers, stack frames and spills of every GPU kernel, from ``ptxas -v`` (no GPU needed).

Compiles each kernel of ``lsm.cuda`` to PTX for compute capability 9.0 (as
``tests/test_cuda_compile.py`` does, whose helpers this reuses), assembles it with ``ptxas -v``
for sm_90 and prints a markdown table: registers per thread, stack frame and spill bytes, and the
occupancy the registers allow on an H100 (65,536 registers per SM, allocated per warp in units
of 256, at most 64 resident warps; block granularity and shared memory are ignored, so it is an
upper bound). The test run fails on any stack frame or spill; this table is for
``benchmarks/RESULTS.md``.

Usage::

    python scripts/ptxas_report.py
"""

import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_cuda_compile as compiled

REGISTERS_PER_SM = 65536
MAX_WARPS = 64


def occupancy(registers):
    """The fraction of an SM's 64 warps that ``registers`` per thread allow."""
    per_warp = math.ceil(registers * 32 / 256) * 256
    return min(MAX_WARPS, REGISTERS_PER_SM // per_warp) / MAX_WARPS


def rows():
    kernels = compiled.ROW_KERNELS + compiled.COLUMN_KERNELS + compiled.BACKWARD_KERNELS
    kernels += compiled.LOSS_KERNELS
    for name in kernels:
        signature = compiled._loss_signature if name in compiled.LOSS_KERNELS else compiled._signature
        for dtype, (element, acc) in compiled.DTYPES.items():
            for layout in compiled.LAYOUTS:
                ptx = compiled.compile_ptx(
                    compiled._kernel(name, acc), signature(name, element, acc, layout), compiled.CC
                )
                with tempfile.TemporaryDirectory() as folder:
                    found = compiled.machine_resources(ptx, Path(folder))
                yield name, dtype, layout, found


def main():
    if compiled.PTXAS is None:
        sys.exit("ptxas not found: pip install -e '.[test]' installs it")
    print("| kernel | dtype | layout | registers | stack (B) | spills (B) | occupancy |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name, dtype, layout, found in rows():
        spills = found["spill_stores"] + found["spill_loads"]
        print(
            f"| {name} | {dtype} | {layout} | {found['registers']} | {found['stack']} | {spills} | "
            f"{occupancy(found['registers']):.0%} |"
        )


if __name__ == "__main__":
    main()
