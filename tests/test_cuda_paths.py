"""Every kernel family of the CUDA backend on tiny inputs, as a shared test body.

With the CUDA tunables shrunk to ``conftest.SIM_CONFIG`` (and two warps per block), the shapes
below take the warp-per-row, shared-memory row, block-per-row, split-row and column kernels, so
each family runs with a mask, weights and ``return_sign`` in the simulator run and, on a machine
with a GPU, on CuPy arrays. The ``cpu`` backend runs the same bodies on the host.
"""

import numpy as np
import pytest
from reference import assert_close, ref_log_softmax, ref_logsumexp, ref_softmax

from conftest import SIM_CONFIG

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)

# The rows kept in shared memory under the simulator's tunables (also for SIM_CONFIG, which does
# not set them yet): up to 64 elements, so that rows of 65 or more take the block-per-row path.
SHARED_ROWS = {"SHARED_ROW_MAX": 64, "SHARED_ROW_MAX_FLOAT64": 64}
# shape, axis -> kernel family under SIM_CONFIG and SHARED_ROWS (warp rows <= 32, split from 40
# with < 8 rows, shared memory up to 64)
PATHS = [
    pytest.param((5, 20), -1, "warp", id="warp"),
    pytest.param((7, 5), -1, "warp", id="warp-lanes"),  # 8 lanes a row: 4 rows a warp
    pytest.param((3, 36), -1, "shared", id="shared-few-rows"),
    pytest.param((9, 45), -1, "shared", id="shared-many-rows"),
    pytest.param((8, 70), -1, "block", id="block"),
    pytest.param((2, 100), -1, "split", id="split"),
    pytest.param((2, 30, 5), 1, "columns", id="columns"),
]


@pytest.fixture
def small_tunables(backend, monkeypatch):
    """The simulator's tunables with two-warp blocks (block reductions combine warps, the warp
    kernel shares blocks); nothing to do for the host backend."""
    if backend.name == "cpu":
        return
    from lsm.cuda import _config

    for name, value in {**SIM_CONFIG, **SHARED_ROWS, "BLOCK_THREADS": 64, "WARPS_PER_BLOCK": 2}.items():
        monkeypatch.setattr(_config, name, value)


# On a GPU numba-cuda warns about the deliberately tiny grids (1 or 2 blocks) of these tunables.
@pytest.mark.filterwarnings("ignore:Grid size")
@pytest.mark.usefixtures("small_tunables")
@pytest.mark.parametrize("dtype", [F16, F32, F64], ids=str)
@pytest.mark.parametrize(("shape", "axis", "path"), PATHS)
def test_every_path_with_mask_and_weights(backend, shape, axis, path, dtype):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.flat[::7] = -np.inf
    where = rng.random(shape) < 0.8
    b = rng.uniform(-1, 2, shape)
    assert_close(backend.log_softmax(x, axis=axis), ref_log_softmax(x, axis=axis), dtype)
    assert_close(backend.softmax(x, axis=axis, where=where), ref_softmax(x, axis=axis, where=where), dtype)
    value, sign = backend.logsumexp(x, axis=axis, where=where, b=b, return_sign=True)
    weights = b.astype(F64 if dtype == F64 else F32)  # lsm converts b to the accumulation type
    ref_value, ref_sign = ref_logsumexp(x, axis=axis, where=where, b=weights, return_sign=True)
    assert_close(value, ref_value, dtype)
    assert_close(sign, ref_sign, dtype)
