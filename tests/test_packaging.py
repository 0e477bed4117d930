"""What the distribution promises: install hints, and extras that hold what they say."""

import subprocess
import sys

import numpy as np
import pytest

import lsm
from lsm import _devices


def test_bfloat16_without_ml_dtypes_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes raises ImportError
    with pytest.raises(
        ImportError, match=r"bfloat16 needs ml_dtypes; .* pip install 'lsm-kernels\[bfloat16\]'"
    ):
        lsm.softmax(np.zeros(3, dtype=np.float32), dtype="bfloat16")


def test_the_dask_backend_needs_no_distributed():
    # the [dask] extra holds dask[array] only: lsm's Dask backend must run without dask.distributed
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "import dask.array as da, numpy as np, lsm\n"
        "x = da.from_array(np.arange(6.0).reshape(2, 3), chunks=(1, 2))\n"
        "print(float(lsm.logsumexp(x).compute()), float(lsm.softmax(x, axis=0).sum().compute()))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    lse, total = map(float, completed.stdout.split())
    assert lse == pytest.approx(np.log(np.exp(np.arange(6.0)).sum()), rel=1e-15)
    assert total == pytest.approx(3.0, rel=1e-15)


class _DeviceArray:
    """A device array as lsm sees one: it has ``__cuda_array_interface__``."""

    @property
    def __cuda_array_interface__(self):
        return {"shape": (3,), "typestr": "<f4", "data": (0, False), "version": 3}


def test_gpu_arrays_without_numba_cuda_say_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lsm.cuda", None)  # as if numba-cuda could not be imported
    # the dispatch imports the CUDA backend once a process: here, as in a process that has not
    monkeypatch.setattr(_devices, "_cuda_backend", _devices._cuda_backend.__wrapped__)
    with pytest.raises(
        ImportError, match=r"pip install 'lsm-kernels\[cuda\]' \(CUDA 12\) or 'lsm-kernels\[cuda13\]'"
    ):
        lsm.softmax(_DeviceArray())
