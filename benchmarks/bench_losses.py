"""Throughput of the fused cross-entropy and of the backward kernels, beside a copy and torch.

Run
---
Smoke run (part of the normal test run: small shapes, every case once, results checked)::

    python -m pytest benchmarks/bench_losses.py -q

Timed run (cross-entropy on (4096, 32000) float32 logits, 0.5 GB each array)::

    python -m pytest benchmarks/bench_losses.py --benchmark-enable --benchmark-json=losses.json

What is measured
----------------
The ``cross_entropy``, ``log_softmax_backward`` and ``softmax_backward`` rows of lsm's
comparison table (``lsm.bench.cases``) on the shapes below, timed by ``run_case`` in
``conftest.py`` like ``bench_ops.py``:

- ``cross_entropy``: ``lsm.cross_entropy(logits, target, return_grad=True)`` (mean reduction)
  with ``grad_out=`` a preallocated array (``lsm``), allocating its gradient (``lsm_alloc``) and
  with ``grad_out=logits`` (``lsm_in_place``: nothing of their size is allocated, which
  ``traced_peak_bytes`` shows), next to ``torch``: ``F.cross_entropy`` forward plus
  ``backward()`` on a CPU tensor with ``requires_grad``. bytes_moved = 2 x N x C x itemsize
  (read the logits, write the gradient).
- the backward ops into a preallocated ``out`` (``lsm``) and in place (``out=grad``:
  ``lsm_in_place``), next to torch's own kernels (``torch._log_softmax_backward_data`` /
  ``torch._softmax_backward_data``: ``torch_out``). bytes_moved = 3 x n x itemsize (read grad
  and y, write the result).

An in-place case overwrites its operand on every call, so from the second call on it computes
the gradient of the previous result: the same work on other values.

Every timed case records ``gbps``, ``fraction_of_copy`` (a same-run Numba ``parallel=True``
copy of its input) and ``ratio_to_<impl>`` for the cases of its group timed before it; lsm's
cases come last in each group, so they carry the ratio to torch.
"""

from benchmarks.conftest import benchmarks_enabled, parametrize
from lsm.bench.backends import BACKENDS
from lsm.bench.cases import make_cases

CROSS_ENTROPY_SHAPES = {"timed": [(4096, 32000)], "smoke": [(64, 1000)]}
BACKWARD_SHAPES = {"timed": [(8192, 1024), (1024, 32768)], "smoke": [(100, 1000)]}
BACKWARD_OPS = ("log_softmax_backward", "softmax_backward")


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    mode = "timed" if benchmarks_enabled(metafunc.config) else "smoke"
    cpu = BACKENDS["cpu"]
    cases = make_cases(
        cpu,
        ops=["cross_entropy"],
        dtypes=["float32"],
        shapes=CROSS_ENTROPY_SHAPES[mode],
        axes=[-1],
        impls=["lsm", "lsm_alloc", "lsm_in_place", "torch"],
    )
    cases += make_cases(
        cpu,
        ops=BACKWARD_OPS,
        dtypes=["float32", "float64"],
        shapes=BACKWARD_SHAPES[mode],
        impls=["lsm", "lsm_in_place", "torch_out"],
    )
    parametrize(metafunc, cases)


def test_loss(run_case, case):
    run_case(case)
