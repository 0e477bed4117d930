"""Registers, stack frames and spills of every GPU kernel, from ``ptxas -v`` (no GPU needed).

Compiles each kernel of ``lsm.cuda`` to PTX for compute capability 9.0 (as
``tests/test_cuda_compile.py`` does, whose helpers this reuses), assembles it with ``ptxas -v``
for sm_90 and prints a markdown table: registers per thread, stack frame and spill bytes, the
occupancy the registers allow on an H100 (65,536 registers per SM, allocated per warp in units
of 256, at most 64 resident warps; block granularity and shared memory are ignored, so it is an
upper bound), and whether the PTX has vectorised global loads (``ld.global.v2``/``.v4``, the
read-only ``ld.global.nc.v*`` too). The test run fails on any stack frame or spill
(``tests/test_cuda_compile.py``) and holds the occupancy and vector-load bars of issue 19, with
today's misses listed (``tests/test_cuda_resources.py``, which uses :func:`machine_code`); this
table is for ``benchmarks/RESULTS.md``.

Usage::

    python scripts/ptxas_report.py
"""

import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_cuda_compile as compiled

REGISTERS_PER_SM = 65536
MAX_WARPS = 64
# a global load of 2, 4 or 8 elements at once, cached or read-only (``.nc``), any element type
_VECTOR_LOAD = re.compile(r"\bld\.global(?:\.[\w:]+)*?\.v[248]\.")


def occupancy(registers):
    """The fraction of an SM's 64 warps that ``registers`` per thread allow."""
    per_warp = math.ceil(registers * 32 / 256) * 256
    return min(MAX_WARPS, REGISTERS_PER_SM // per_warp) / MAX_WARPS


def vector_loads(ptx):
    """Whether ``ptx`` loads from global memory in vectors (``ld.global[.nc].v2/.v4/.v8``)."""
    return _VECTOR_LOAD.search(ptx) is not None


def kernels():
    """Every kernel of the table, in its order."""
    return compiled.ROW_KERNELS + compiled.COLUMN_KERNELS + compiled.BACKWARD_KERNELS + compiled.LOSS_KERNELS


def machine_code(name, dtype, layout):
    """``(ptx, resources)`` of kernel ``name`` for ``dtype`` (a key of ``compiled.DTYPES``) and
    ``layout`` ("C" or "A", see ``tests/test_cuda_compile.py``): the PTX for compute capability
    9.0, and ``ptxas -v``'s registers, stack frame and spill bytes for sm_90 (compiled once a
    process, by the compile tests' own cache)."""
    return compiled.machine_code(name, dtype, layout)


def rows():
    for name in kernels():
        for dtype in compiled.DTYPES:
            if not compiled.warp_kernel_exists(name, dtype):
                continue  # never launched (float64 rows this long are not warp rows)
            for layout in compiled.LAYOUTS:
                ptx, found = machine_code(name, dtype, layout)
                yield name, dtype, layout, found, vector_loads(ptx)


def main():
    if compiled.PTXAS is None:
        sys.exit("ptxas not found: pip install -e '.[test]' installs it")
    print("| kernel | dtype | layout | registers | stack (B) | spills (B) | occupancy | vector loads |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for name, dtype, layout, found, vectors in rows():
        spills = found["spill_stores"] + found["spill_loads"]
        print(
            f"| {name} | {dtype} | {layout} | {found['registers']} | {found['stack']} | {spills} | "
            f"{occupancy(found['registers']):.0%} | {'yes' if vectors else 'no'} |"
        )


if __name__ == "__main__":
    main()
