"""lsm.torch.cross_entropy against torch.nn.functional.cross_entropy under autograd, on the CPU.

Run
---
Smoke run (part of the normal test run: benchmarks disabled, small shapes, each case once, the
gradients compared)::

    python -m pytest benchmarks/bench_torch.py -q

Timed run, float32 logits of (4096, 32000) (a language model's vocabulary) and (8192, 1024)::

    python -m pytest benchmarks/bench_torch.py --benchmark-enable --benchmark-columns=median,iqr

What is measured
----------------
One training step's loss: a leaf tensor of the logits that requires grad, the mean
cross-entropy against class-index targets, ``backward()``, so the time includes allocating the
gradient. ``fixed``: the leaf is a view of the same logits every round; ``fresh``: the logits are
made anew by torch every round (``logits * 1``, timed for both), as a model's output is, so the
loss allocates its memory among tensors torch has just allocated and freed.

``torch``: ``F.cross_entropy`` (log_softmax, nll_loss, and their two backward passes); ``lsm``:
``lsm.torch.cross_entropy`` (one fused pass computing the loss and the gradient, which the
backward hands to autograd as it is). torch runs on as many threads as Numba
(``torch.set_num_threads``). ``extra_info`` holds ``gbps`` (bytes of logits read and gradient
written / median) and, in whichever implementation of a case runs second, ``torch_over_lsm``
(torch's median / lsm's, same session). The goal (issue 16): at least 4x on (4096, 32000).
"""

import numba
import numpy as np
import pytest

from benchmarks.conftest import benchmarks_enabled
from lsm.bench.table import SEED

torch = pytest.importorskip("torch")
lsm_torch = pytest.importorskip("lsm.torch")

TIMED_SHAPES = {"vocab": (4096, 32000), "narrow": (8192, 1024)}
SMOKE_SHAPES = {"vocab": (64, 3200), "narrow": (256, 128)}
ROUNDS = 7
LOSSES = {"torch": torch.nn.functional.cross_entropy, "lsm": lsm_torch.cross_entropy}


@pytest.fixture(scope="module")
def setup(request):
    timed = benchmarks_enabled(request.config)
    threads = torch.get_num_threads()
    torch.set_num_threads(numba.get_num_threads())  # both libraries on the same threads
    try:
        yield {"shapes": TIMED_SHAPES if timed else SMOKE_SHAPES, "medians": {}, "grads": {}}
    finally:
        torch.set_num_threads(threads)


def _problem(shape):
    rng = np.random.default_rng(SEED)
    logits = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * 4)
    target = torch.from_numpy(rng.integers(0, shape[1], size=shape[0]))
    return logits, target


@pytest.mark.parametrize("impl", ["torch", "lsm"])
@pytest.mark.parametrize("logits_kind", ["fixed", "fresh"])
@pytest.mark.parametrize("case", ["vocab", "narrow"])
def test_cross_entropy_step(benchmark, setup, case, logits_kind, impl):
    shape = setup["shapes"][case]
    logits, target = _problem(shape)
    loss_function = LOSSES[impl]

    def step():
        leaf = (logits.detach() if logits_kind == "fixed" else logits * 1).requires_grad_(True)
        loss_function(leaf, target).backward()
        return leaf.grad

    grad = benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    reference = setup["grads"].setdefault(
        (case, logits_kind), grad
    )  # the other implementation's, once both ran
    torch.testing.assert_close(grad, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())
    benchmark.extra_info.update(impl=impl, shape=list(shape), logits=logits_kind)
    if benchmark.stats:  # timed (not a smoke run)
        median = benchmark.stats.stats.median
        medians = setup["medians"].setdefault((case, logits_kind), {})
        medians[impl] = median
        benchmark.extra_info["gbps"] = 2 * logits.nbytes / median / 1e9
        if len(medians) == 2:
            benchmark.extra_info["torch_over_lsm"] = medians["torch"] / medians["lsm"]
