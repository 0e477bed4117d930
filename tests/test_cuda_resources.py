"""The machine-code bars of issue 19, from the PTX and ``ptxas -v`` (no GPU needed).

- **Occupancy**: every forward kernel's registers per thread allow at least half of an H100
  SM's 64 warps (``scripts/ptxas_report.py``'s ``occupancy``: an upper bound from registers
  alone).
- **Vector loads**: the PTX of every kernel that reads contiguous rows loads global memory in
  vectors (``ld.global.v2``/``.v4``, ``ld.global.nc.v*``), as the fastest softmax kernels do.
  A thread's elements are whole 16-byte runs whatever the layout where the sums depend on which
  thread reads which element (``lsm/cuda/_runs.py``); the warp rows whose lanes hold less than a
  run of a row have no run to load and miss this bar.

The kernels and their machine code come from ``scripts/ptxas_report.py`` (which compiles them as
``tests/test_cuda_compile.py`` does, and prints the full table for ``benchmarks/RESULTS.md``).
The kernels that miss a bar today are listed in ``MISSES``, each an expected failure with its
reason; the expectation is strict, so a kernel change that makes one meet its bar fails here
until it is taken off the list (and a kernel that falls below a bar fails as well). The register
counts are those of the ``nvidia-cuda-nvcc-cu12`` wheel's ptxas; another toolkit may allocate
differently.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
from numba import types

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install -e '.[test]')")


def _report():
    """``scripts/ptxas_report.py`` as a module (scripts/ is no package)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "ptxas_report.py"
    spec = importlib.util.spec_from_file_location("ptxas_report", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ptxas_report"] = module
    spec.loader.exec_module(module)
    return module


report = _report()
compiled = report.compiled  # tests/test_cuda_compile.py: kernel names, dtypes, layouts

OCCUPANCY_BAR = 0.5
FORWARD_KERNELS = compiled.ROW_KERNELS + compiled.COLUMN_KERNELS
# the kernels that read the rows of x (unit stride in layout "C"): the merge reads partials only
CONTIGUOUS_ROW_KERNELS = [name for name in compiled.ROW_KERNELS if name != "logsumexp_rows_merge"]
CONTIGUOUS_ROW_KERNELS += ["backward_rows", "backward_rows_warp", "backward_rows_shared"]
CONTIGUOUS_ROW_KERNELS += compiled.CROSS_ENTROPY_ROWS

# The one list of today's misses, (bar, kernel, dtype, layout) -> why (registers per thread and
# the occupancy they allow are in benchmarks/RESULTS.md, "GPU kernels' machine code").
_NARROW_PACKS = "a lane's slots hold fewer row elements than 16 bytes: no whole run to load"


def _narrow_packs(name, dtype):
    """Whether the warp-path kernel ``name`` gives a lane fewer than 16 bytes of a row (its
    packs are then narrower than a vector load: ``_forward.build_warp_rows``)."""
    if name not in compiled.WARP_KERNELS:
        return False
    slots, _ = compiled.WARP_BUCKETS[compiled.WARP_KERNELS.index(name) % len(compiled.WARP_BUCKETS)]
    return slots * compiled.DTYPES[dtype][0].bitwidth < 16 * 8


MISSES = {
    ("vector loads", name, dtype, "C"): _NARROW_PACKS
    for name in compiled.WARP_KERNELS
    for dtype in compiled.DTYPES
    if _narrow_packs(name, dtype)
}


BARS = {"occupancy": (FORWARD_KERNELS, compiled.LAYOUTS), "vector loads": (CONTIGUOUS_ROW_KERNELS, ["C"])}


def _keys(bar):
    kernels, layouts = BARS[bar]
    return [
        (bar, name, dtype, layout)
        for name in kernels
        for dtype in compiled.DTYPES
        if compiled.warp_kernel_exists(name, dtype)  # float64 rows of 513 or more are not warp rows
        for layout in layouts
    ]


def _cases(bar):
    """The test cases of ``bar``: every kernel, dtype and layout it applies to, today's misses
    marked as strict expected failures."""
    cases = []
    for key in _keys(bar):
        reason = MISSES.get(key)
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        cases.append(pytest.param(*key[1:], marks=marks, id="-".join(key[1:])))
    return cases


def test_every_listed_miss_is_a_case():
    """A miss of a renamed or removed kernel would otherwise stay on the list unnoticed."""
    assert set(MISSES) <= {key for bar in BARS for key in _keys(bar)}


@pytest.fixture(autouse=True)
def _ptxas():
    if compiled.PTXAS is None:  # the [cu12] extra brings it; a bare numba-cuda install may not
        pytest.skip("ptxas not found (pip install -e '.[test]' installs it)")


@pytest.mark.parametrize(("name", "dtype", "layout"), _cases("occupancy"))
def test_forward_kernels_reach_half_occupancy(name, dtype, layout):
    _, resources = report.machine_code(name, dtype, layout)
    found = report.occupancy(resources["registers"])
    assert found >= OCCUPANCY_BAR, f"{resources['registers']} registers per thread: {found:.0%} occupancy"


@pytest.mark.parametrize(("name", "dtype", "layout"), _cases("vector loads"))
def test_contiguous_row_kernels_load_vectors(name, dtype, layout):
    ptx, _ = report.machine_code(name, dtype, layout)
    assert report.vector_loads(ptx), "no ld.global.v2/.v4 in the PTX"


@pytest.mark.parametrize("name", compiled.CROSS_ENTROPY_ROWS)
@pytest.mark.parametrize("dtype", list(compiled.DTYPES))
def test_the_cross_entropy_gradient_loads_vectors(dtype, name):
    """The cross-entropy row kernels (a block, a warp or a segment of a warp per row) with a
    gradient (contiguous logits and gradient, class-index targets) read the logits in runs for
    the gradient."""
    element, acc = compiled.DTYPES[dtype]
    logits, per_row = types.Array(element, 2, "C"), types.Array(types.float64, 1, "C")
    options = (types.int64, types.float64, types.float64, types.float64)
    signature = (logits, types.Array(types.int64, 1, "C"), types.none, types.none, *options, per_row, logits)
    ptx = compiled.compile_ptx(compiled._kernel(name, acc), signature, compiled.CC)
    assert report.vector_loads(ptx), "no ld.global.v2/.v4 in the PTX"
