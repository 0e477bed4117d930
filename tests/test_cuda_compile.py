"""Every CUDA kernel compiles to PTX for every dtype and layout (no GPU needed).

``compile_ptx`` runs numba-cuda's whole front end (typing, lowering, NVVM) on the real kernel
code for compute capability 9.0, so type errors, unsupported operations and float16 conversion
problems surface here, in the normal test run. (The simulator runs the kernels as plain Python
and sees none of that.) Each kernel is compiled in two flavours: contiguous arrays without the
optional operands, and arbitrarily strided arrays with every optional operand (``where``, ``b``,
``sign``; for the losses class weights, a gradient, and both kinds of target), which covers the
code paths each None-check removes.
"""

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import types as pytypes
from pathlib import Path
from unittest import mock

import pytest

from conftest import RUN_FOLDER

try:
    import fcntl
except ImportError:  # Windows: each worker compiles the machine code it needs
    fcntl = None

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install -e '.[test]')")

from numba import types
from numba.cuda import types as cuda_types

from lsm.cuda import _backward, _config, _copy, _forward, _losses
from lsm.cuda._numba import cuda

CC = (9, 0)
# (element type, accumulation type): float16 accumulates in float32
DTYPES = {
    "float16": (types.float16, types.float32),
    "float32": (types.float32, types.float32),
    "float64": (types.float64, types.float64),
}
LAYOUTS = ["C", "A"]
_compile_lock = threading.Lock()


def compile_ptx(kernel, argtypes, cc):
    """PTX of the Python function of ``kernel`` for ``argtypes`` and compute capability ``cc``.

    numba-cuda compiles the device functions a kernel calls for the *current* device's compute
    capability, which fails without a driver; here that query answers ``cc`` for the duration
    of the compilation (the only reach into numba-cuda's internals, kept to the tests).
    """
    device = pytypes.SimpleNamespace(compute_capability=cc)
    bounds = getattr(kernel, "targetoptions", {}).get("launch_bounds")  # as the kernel compiles
    with _compile_lock, mock.patch("numba.cuda.dispatcher.get_current_device", lambda: device):
        ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=cc, launch_bounds=bounds)
    return ptx


def _ptxas():
    """``ptxas`` from the CUDA toolkit wheel numba-cuda's ``[cu12]`` extra installs, or on PATH."""
    spec = importlib.util.find_spec("nvidia.cuda_nvcc")
    if spec is not None:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "bin" / "ptxas"
            if candidate.exists():
                return str(candidate)
    return shutil.which("ptxas")


PTXAS = _ptxas()
_RESOURCES = re.compile(
    r"(?P<stack>\d+) bytes stack frame, (?P<spill_stores>\d+) bytes spill stores, "
    r"(?P<spill_loads>\d+) bytes spill loads.*?Used (?P<registers>\d+) registers",
    re.DOTALL,
)


def machine_resources(ptx, tmp_path):
    """``ptxas -v`` of ``ptx`` (one kernel) for sm_90: registers, stack frame and spill bytes."""
    source = tmp_path / "kernel.ptx"
    source.write_text(ptx)
    command = [
        PTXAS,
        "-v",
        "--gpu-name",
        f"sm_{CC[0]}{CC[1]}",
        str(source),
        "-o",
        str(tmp_path / "kernel.cubin"),
    ]
    report = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    found = _RESOURCES.search(report)
    assert found, report
    return {key: int(value) for key, value in found.groupdict().items()}


def assert_in_registers(ptx, tmp_path):
    """The machine code keeps everything in registers: no stack frame, no spills."""
    if PTXAS is None:  # the [cu12] extra brings it; a bare numba-cuda install may not
        pytest.skip("ptxas not found (pip install -e '.[test]' installs it)")
    return _no_stack_or_spills(machine_resources(ptx, tmp_path))


def _no_stack_or_spills(resources):
    assert resources["stack"] == resources["spill_stores"] == resources["spill_loads"] == 0, resources
    return resources


@functools.cache
def machine_code(name, dtype, layout):
    """``(ptx, resources)`` of kernel ``name`` for ``dtype`` (a key of ``DTYPES``) and ``layout``:
    the PTX for ``CC``, and ``ptxas -v``'s registers, stack frame and spill bytes (None without
    ptxas). Compiled once a process, and once a run of ``pytest -n``, whose workers share it
    through ``RUN_FOLDER`` (see ``_shared``): ``tests/test_cuda_resources.py`` and
    ``scripts/ptxas_report.py`` read the same machine code as the tests here."""
    folder = os.environ.get(RUN_FOLDER)
    if folder is None or fcntl is None:
        return _machine_code(name, dtype, layout)
    return _shared(Path(folder) / f"machine-code-{name}-{dtype}-{layout}.json", name, dtype, layout)


def _shared(path, name, dtype, layout):
    """``_machine_code`` of the arguments, read from ``path`` if another worker of the run has
    written it there, else computed and written there. The machine code of a kernel takes
    seconds to compile; the tests that read it are spread over the workers (saved: about 90
    CPU-seconds a run). A worker that finds another computing it waits on the lock."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return tuple(json.loads(path.read_text()))
        result = _machine_code(name, dtype, layout)
        path.write_text(json.dumps(result))
        return result


def _machine_code(name, dtype, layout):
    element, acc = DTYPES[dtype]
    signature = _loss_signature if name in LOSS_KERNELS else _signature
    ptx = compile_ptx(_kernel(name, acc), signature(name, element, acc, layout), CC)
    if PTXAS is None:
        return ptx, None
    with tempfile.TemporaryDirectory() as folder:
        return ptx, machine_resources(ptx, Path(folder))


def _assert_compiled_in_registers(name, dtype, layout):
    """Kernel ``name`` compiles for ``dtype`` and ``layout``, its machine code in registers; the PTX."""
    ptx, resources = machine_code(name, dtype, layout)
    assert ".entry" in ptx
    if resources is None:
        pytest.skip("ptxas not found (pip install -e '.[test]' installs it)")
    _no_stack_or_spills(resources)
    return ptx


def _signature(name, element, acc, layout):
    """Argument types of kernel ``name``; layout "A" also passes every optional operand."""

    def array(dtype, ndim, contiguous=False):
        return types.Array(dtype, ndim, "C" if contiguous or layout == "C" else "A")

    def optional(dtype, ndim):
        return types.none if layout == "C" else array(dtype, ndim)

    rows = 3 if "columns" in name else 2
    x, where, b = array(element, rows), optional(types.boolean, rows), optional(acc, rows)
    lse, sign = array(element, rows - 1), optional(element, rows - 1)
    partials = array(acc, 3, contiguous=True)
    name = name.rstrip("0123456789")  # a warp-path kernel's bucket takes its family's arguments
    return {
        "softmax_rows_warp": (x, where, x, types.boolean),
        "softmax_rows_lanes": (x, where, x, types.boolean),
        "logsumexp_rows_lanes": (x, where, b, lse, sign),
        "softmax_rows_block": (x, where, x, types.boolean),
        "softmax_rows_shared": (x, where, x, types.boolean),
        "softmax_rows_split": (x, where, x, partials, types.int64, types.boolean),
        "softmax_columns": (x, where, x, types.boolean),
        "logsumexp_rows_warp": (x, where, b, lse, sign),
        "logsumexp_rows_block": (x, where, b, lse, sign),
        "logsumexp_rows_shared": (x, where, b, lse, sign),
        "rows_partials": (x, where, b, partials, types.int64),
        "logsumexp_rows_merge": (partials, lse, sign),
        "logsumexp_columns": (x, where, b, lse, sign),
        "backward_rows": (x, x, where, x, types.boolean),
        "backward_rows_warp": (x, x, where, x, types.boolean),
        "backward_rows_shared": (x, x, where, x, types.boolean),
        "backward_columns": (x, x, where, x, types.boolean),
    }[name]


def _loss_signature(name, element, acc, layout):
    """Argument types of loss kernel ``name``: layout "C" has class-index targets only, "A"
    strided arrays with class weights, a gradient and both kinds of target."""
    full = layout == "A"
    rows = 2 if name.startswith("cross_entropy_rows") else 3

    def array(dtype, ndim):
        return types.Array(dtype, ndim, "A" if full else "C")

    x, loss = array(element, rows), array(types.float64, rows - 1)
    target = array(types.int32 if full else types.int64, rows - 1)
    probs, grad = (array(element, rows), array(element, rows)) if full else (types.none, types.none)
    weight = types.Array(acc, 1, "C") if full else types.none
    options = (types.int64, types.float64, types.float64, types.float64)
    if name.startswith("cross_entropy"):
        return (x, target, probs, weight, *options, loss, grad)
    return (x, target, weight, types.int64, loss)  # nll_loss


# the warp-path kernels of every bucket: slots per lane of a warp per row (see
# warp_kernel_exists), then lanes per row of several rows per warp (one slot)
WARP_BUCKETS = [(slots, 32) for slots in _forward.WARP_SLOTS] + [(1, lanes) for lanes in _forward.ROW_LANES]
SOFTMAX_WARP, LOGSUMEXP_WARP = (
    [_forward.warp_row_name(family, slots, lanes) for slots, lanes in WARP_BUCKETS]
    for family in ("softmax", "logsumexp")
)
WARP_KERNELS = SOFTMAX_WARP + LOGSUMEXP_WARP
ROW_KERNELS = [
    *SOFTMAX_WARP,
    "softmax_rows_block",
    "softmax_rows_shared",
    "rows_partials",
    "softmax_rows_split",
    *LOGSUMEXP_WARP,
    "logsumexp_rows_block",
    "logsumexp_rows_shared",
    "logsumexp_rows_merge",
]
COLUMN_KERNELS = ["softmax_columns", "logsumexp_columns"]
BACKWARD_KERNELS = ["backward_rows", "backward_rows_warp", "backward_rows_shared", "backward_columns"]
CROSS_ENTROPY_ROWS = [_losses.rows_kernel_name(lanes) for lanes in _losses.ROW_KERNEL_LANES]
LOSS_KERNELS = [*CROSS_ENTROPY_ROWS, "cross_entropy_columns", "nll_loss"]


def warp_kernel_exists(name, dtype):
    """Whether kernel ``name`` runs for ``dtype``: every kernel does but the float64 warp-per-row
    kernels with more slots than ``WARP_ROW_MAX_FLOAT64`` gives a lane (those rows take the
    shared-memory kernels), which are neither launched nor compiled."""
    if name not in WARP_KERNELS or dtype != "float64":
        return True
    slots, lanes = WARP_BUCKETS[WARP_KERNELS.index(name) % len(WARP_BUCKETS)]
    return slots * lanes <= _config.WARP_ROW_MAX_FLOAT64


def _kernel(name, acc):
    if name in WARP_KERNELS:
        slots, lanes = WARP_BUCKETS[WARP_KERNELS.index(name) % len(WARP_BUCKETS)]
        family = "softmax_rows_warp" if name in SOFTMAX_WARP else "logsumexp_rows_warp"
        return _forward.build_warp_rows(acc, slots, _config.WARPS_PER_BLOCK, lanes)[family]
    if name in BACKWARD_KERNELS:
        return _backward.build(acc)[name]
    if name in LOSS_KERNELS:
        return _losses.build(acc)[name]
    if name in COLUMN_KERNELS:
        return _forward.build_columns(acc)[name]
    return _forward.build_rows(acc)[name]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", ROW_KERNELS + COLUMN_KERNELS)
def test_kernel_compiles(name, dtype, layout):
    if not warp_kernel_exists(name, dtype):
        pytest.skip("never launched: float64 rows this long take the shared-memory kernels")
    ptx = _assert_compiled_in_registers(name, dtype, layout)
    if name in WARP_KERNELS:
        assert "shfl.sync" in ptx  # warp reductions use register shuffles on a GPU
        assert ".local" not in ptx  # the row cache stays on chip: registers or shared memory
        slots, _ = WARP_BUCKETS[WARP_KERNELS.index(name) % len(WARP_BUCKETS)]
        family = "softmax" if name in SOFTMAX_WARP else "logsumexp"
        in_shared = _forward.row_in_shared(family, DTYPES[dtype][1], slots)
        assert ("ld.shared" in ptx) == in_shared


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", BACKWARD_KERNELS)
def test_backward_kernel_compiles(name, dtype, layout):
    _assert_compiled_in_registers(name, dtype, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", LOSS_KERNELS)
def test_loss_kernel_compiles(name, dtype, layout):
    ptx = _assert_compiled_in_registers(name, dtype, layout)
    if name.startswith("cross_entropy_rows"):
        assert "bar.sync" in ptx  # the barrier before the in-place gradient (and block reductions)
    if name in CROSS_ENTROPY_ROWS[1:]:
        assert "shfl.sync" in ptx  # warp (segment) reductions


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("target", ["int64", "int32", "uint8"])
def test_check_kernels_compile(target, weighted, tmp_path):
    """The device-side checks behind the IndexError for bad targets and the weight check (one
    block: block reductions, no atomics), and the reduction of the per-item losses."""
    weight = types.Array(types.float32, 1, "C") if weighted else types.none
    verdict = types.Array(types.float64, 1, "C")
    targets = types.Array(getattr(types, target), 2, "A")
    ptx = compile_ptx(_losses.check_classes, (targets, types.int64, types.int64, weight, verdict), CC)
    assert "bar.sync" in ptx and "atom" not in ptx
    assert_in_registers(ptx, tmp_path)
    if weighted:  # the weights alone (a loss with probability targets)
        args = (types.none, types.int64, types.int64, weight, verdict)
        assert ".entry" in compile_ptx(_losses.check_classes, args, CC)
    for element in (types.float16, types.float64):
        args = (verdict, types.float64, types.Array(element, 1, "A"))
        assert ".entry" in compile_ptx(_losses.reduce_loss, args, CC)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("int64", "float64"),
        ("bool", "float32"),
        ("uint8", "float16"),
        ("float64", "float16"),
        ("float16", "float32"),
        ("float32", "float32"),
        ("bool", "bool"),
    ],
)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_copy_compiles(source, target, layout):
    def array(name):
        return types.Array(types.boolean if name == "bool" else getattr(types, name), 3, layout)

    assert ".entry" in compile_ptx(_copy.copy3, (array(source), array(target)), CC)


@pytest.mark.parametrize("name", ROW_KERNELS + COLUMN_KERNELS + BACKWARD_KERNELS + LOSS_KERNELS + ["copy3"])
def test_bfloat16_kernels_convert_in_registers(name, tmp_path):
    """bfloat16 operands: every load and store converts with integer arithmetic in registers
    (``lsm.cuda._elements``), never through numba-cuda's bfloat16 conversions, which call
    functions of CUDA's C++ headers (``.extern .func`` in the PTX, linked in at load time). One
    layout, "A": strided arrays with every optional operand, so every load and store is there."""
    element = cuda_types.bfloat16
    if name == "copy3":  # bfloat16 in and out, and both ways to float32
        signatures = [
            (types.Array(a, 3, "A"), types.Array(b, 3, "A"))
            for a, b in [(element, element), (element, types.float32), (types.float32, element)]
        ]
    elif name in LOSS_KERNELS:
        signatures = [_loss_signature(name, element, types.float32, "A")]
    else:
        signatures = [_signature(name, element, types.float32, "A")]
    kernel = _copy.copy3 if name == "copy3" else _kernel(name, types.float32)
    for signature in signatures:
        ptx = compile_ptx(kernel, signature, CC)
        assert ".entry" in ptx and ".extern .func" not in ptx
        assert_in_registers(ptx, tmp_path)
