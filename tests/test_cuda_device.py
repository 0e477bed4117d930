"""``lsm.cuda.device``: the row device functions inside a user's ``@cuda.jit`` kernels.

In the normal run every function compiles to PTX (``compile_ptx``, as tests/test_cuda_compile.py
does) inside a small user kernel, for float16, float32 and float64 rows, and ``ptxas`` finds it
in registers; in the simulator run (``NUMBA_ENABLE_CUDASIM=1``) the same kernels run against the
long-double references, special rows included.
"""

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install -e '.[test]')")

from numba import types
from reference import assert_close, ref_log_softmax, ref_logsumexp, ref_softmax

from lsm.cuda import device
from lsm.cuda._numba import SIMULATOR, cuda

WARP = 32


@cuda.jit
def thread_rows(x, lse, log_probs, probs):
    """One thread per row: ``lse[i]``, ``log_probs[i]`` and ``probs[i]`` of row ``x[i]``."""
    i = cuda.grid(1)
    if i < x.shape[0]:
        lse[i] = device.logsumexp(x[i])
        device.log_softmax(x[i], log_probs[i])
        device.softmax(x[i], probs[i])


@cuda.jit
def warp_rows(x, lse, log_probs, probs, per_lane):
    """One warp per row (blocks of one warp): each lane leaves its logsumexp in ``per_lane``."""
    i = cuda.blockIdx.x
    value = device.warp_logsumexp(x[i])
    device.warp_log_softmax(x[i], log_probs[i])
    device.warp_softmax(x[i], probs[i])
    per_lane[i, cuda.laneid] = value
    if cuda.laneid == 0:
        lse[i] = value


DTYPES = {"float16": types.float16, "float32": types.float32, "float64": types.float64}


def _rows(dtype):
    """Rows of 45 elements (more than a warp, not a multiple of it): ordinary values, a
    dominant maximum, NaN, +inf, all -inf."""
    x = (np.random.default_rng(0).standard_normal((5, 45)) * 3).astype(dtype)
    x[1, 7] = 40
    x[2, 3] = np.nan
    x[3, 44] = np.inf
    x[4] = -np.inf
    return x


@pytest.mark.skipif(SIMULATOR, reason="compile_ptx needs the real compiler")
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kernel", ["thread_rows", "warp_rows"])
def test_compiles(kernel, dtype, tmp_path):
    from test_cuda_compile import CC, assert_in_registers, compile_ptx

    element = DTYPES[dtype]
    acc = types.float64 if dtype == "float64" else types.float32
    rows = types.Array(element, 2, "A")
    lse = types.Array(acc, 1, "C")
    args = (rows, lse, rows, rows)
    if kernel == "warp_rows":
        args += (types.Array(acc, 2, "C"),)
    ptx = compile_ptx(globals()[kernel], args, CC)
    assert ".entry" in ptx
    if kernel.startswith("warp"):
        assert "shfl.sync" in ptx  # the warp's reductions are register shuffles
    assert_in_registers(ptx, tmp_path)


@pytest.mark.cuda_sim
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("per", ["thread", "warp"])
def test_against_the_references(per, dtype):
    x = _rows(np.dtype(dtype))
    rows = x.shape[0]
    acc = np.float64 if dtype == "float64" else np.float32
    lse = cuda.device_array(rows, acc)
    log_probs = cuda.device_array(x.shape, x.dtype)
    probs = cuda.device_array(x.shape, x.dtype)
    if per == "thread":
        thread_rows[1, WARP](cuda.to_device(x), lse, log_probs, probs)
    else:
        per_lane = cuda.device_array((rows, WARP), acc)
        warp_rows[rows, WARP](cuda.to_device(x), lse, log_probs, probs, per_lane)
        lanes = per_lane.copy_to_host()
        assert np.array_equal(lanes, np.repeat(lanes[:, :1], WARP, axis=1), equal_nan=True)
    with np.errstate(invalid="ignore"):
        assert_close(lse.copy_to_host(), ref_logsumexp(x, axis=1), np.dtype(acc))
        assert_close(log_probs.copy_to_host(), ref_log_softmax(x, axis=1), x.dtype)
        assert_close(probs.copy_to_host(), ref_softmax(x, axis=1), x.dtype)


@pytest.mark.cuda_sim
def test_in_place_and_empty_rows():
    x = _rows(np.dtype(np.float32))[:1]
    expected = ref_log_softmax(x, axis=1)
    dx = cuda.to_device(x)
    lse = cuda.device_array(1, np.float32)
    thread_rows[1, 1](dx, lse, dx, cuda.device_array(x.shape, x.dtype))
    assert_close(dx.copy_to_host(), expected, x.dtype)
    empty = cuda.to_device(np.zeros((1, 0), np.float32))
    thread_rows[1, 1](empty, lse, empty, empty)
    assert lse.copy_to_host()[0] == -np.inf
