"""A Numba user's loop: the forward pass of a hidden Markov model with ``lsm.logsumexp`` in ``@njit``.

Run
---
Smoke run (part of the normal test run: benchmarks disabled, 64 states and 20 steps, each case
once, the three loops checked against each other)::

    python -m pytest benchmarks/bench_njit_hmm.py -q

Timed run: 1,000 steps of 512 states (16 symbols)::

    python -m pytest benchmarks/bench_njit_hmm.py --benchmark-enable --benchmark-columns=median,iqr

What is measured
----------------
``examples/hmm_forward.py``'s three loops, each the whole pass (one ``log P(obs)``):

- ``lsm-njit``: ``lsm.logsumexp`` over each state's 512 terms inside an ``@njit`` loop (512
  calls a step, compiled: no Python per call; the compilation is done before timing);
- ``numpy``: the Python loop with ``np.logaddexp.reduce(alpha[:, None] + log_a, axis=0)``;
- ``scipy``: the same with ``scipy.special.logsumexp``.

In float64 and in float32 (all three loops compute in the model's dtype). ``extra_info`` holds
``speedup_vs_numpy`` and ``speedup_vs_scipy`` for the lsm case (the other loops' medians, timed
in the same session; run the file as a whole for them).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from benchmarks.conftest import benchmarks_enabled

TIMED = (512, 1000)  # states, steps
SMOKE = (64, 20)
SYMBOLS = 16
ROUNDS = {"lsm-njit": 7, "numpy": 3, "scipy": 3}


def _example():
    path = Path(__file__).resolve().parent.parent / "examples" / "hmm_forward.py"
    spec = importlib.util.spec_from_file_location("hmm_forward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(request):
    states, steps = TIMED if benchmarks_enabled(request.config) else SMOKE
    return {"example": _example(), "states": states, "steps": steps, "medians": {}}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", ["numpy", "scipy", "lsm-njit"])  # lsm last: its ratios need the others
def test_hmm_forward(benchmark, setup, impl, dtype):
    if impl == "scipy":
        pytest.importorskip("scipy")
    example = setup["example"]
    model = example.random_hmm(setup["states"], SYMBOLS, setup["steps"], dtype=np.dtype(dtype))
    forward = {
        "lsm-njit": example.forward_lsm,
        "numpy": example.forward_numpy,
        "scipy": example.forward_scipy,
    }
    forward = forward[impl]
    if impl == "lsm-njit":
        forward(*model)  # compile outside the timing
    value = benchmark.pedantic(forward, args=model, rounds=ROUNDS[impl], iterations=1)
    # the three loops agree to within float rounding over the steps (float64: 1e-12 relative)
    reference = example.forward_numpy(*[part.astype(np.float64) for part in model[:3]], model[3])
    assert np.isclose(value, reference, rtol=1e-12 if dtype == "float64" else 1e-4)
    benchmark.extra_info.update(impl=impl, dtype=dtype, states=setup["states"], steps=setup["steps"])
    if benchmark.stats:
        median = benchmark.stats.stats.median
        setup["medians"][impl, dtype] = median
        for peer in ("numpy", "scipy"):
            if impl == "lsm-njit" and (peer, dtype) in setup["medians"]:
                benchmark.extra_info[f"speedup_vs_{peer}"] = setup["medians"][peer, dtype] / median
