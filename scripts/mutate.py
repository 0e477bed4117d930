"""Mutation testing: does the test suite catch small, realistic slips in lsm's code?

Each entry of :data:`CATALOGUE` replaces one exact piece of text in one file of ``lsm/`` (it must
occur there exactly once) by another: a changed coefficient, a dropped compensation term, an
index or boundary off by one, a mask, NaN or sign test dropped or inverted, an overlap or dtype
check loosened. Each names the tests that should catch it, as *steps*: the pytest arguments of
one pytest process each, for the normal run and for the CUDA simulator run
(``NUMBA_ENABLE_CUDASIM=1``).

The working tree is never touched. The script extracts the repository at a commit (``git
archive``, default ``HEAD``) into a scratch folder per job and runs every test there, with
``PYTHONPATH`` and the working directory on the copy (it checks that ``import lsm`` finds the
copy). First each distinct step runs on the unmutated copy and must pass (the *baseline*, which
also fills Numba's disk cache of the copy). Then, one mutation at a time: apply it, run its steps
with ``pytest -x`` in order (the normal run's, then the simulator's) until a test fails, restore
the file (content and modification time). A mutant is

- ``caught`` when a test fails or errors (the first one is reported),
- ``survived`` when every selected test passes (``equivalent`` when the catalogue says why it
  cannot change any result),
- ``timeout`` when its steps exceed ``--timeout`` seconds (reported, not counted as caught),
- ``error`` when pytest could not run a step (no test collected, internal error).

Numba's disk cache goes to ``NUMBA_CACHE_DIR`` inside the scratch folder, never the working tree.
Numba checks a cached kernel against its own source file only, while lsm's CPU kernels inline
helpers from other files of ``lsm/cpu`` (see ``lsm/cpu/_cache.py``), so a mutant in ``lsm/cpu``
runs with an empty cache folder of its own (it compiles what its tests need, a minute or two on a
small machine); every other mutant shares the copy's clean cache (the GPU kernels run in the
simulator, which compiles nothing, and Dask and the planning code are plain Python).

Usage::

    python scripts/mutate.py                              # the whole catalogue
    python scripts/mutate.py --only cpu-log1p cuda-split-tie-count
    python scripts/mutate.py --list                       # the catalogue, checked against the sources
    python scripts/mutate.py --markdown out.md --json out.json --timeout 900 --jobs 2
    python scripts/mutate.py --only cpu-log1p --steps "tests/test_edges.py -k 'cpu and dominant'"
"""

import argparse
import concurrent.futures
import dataclasses
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One mutation: ``old`` (exactly once in ``path``) becomes ``new``.

    Attributes
    ----------
    id : str
        A short unique name.
    path : str
        The mutated file, relative to the repository root.
    old, new : str
        The text replaced, and its replacement.
    what : str
        The slip it stands for, in a few words.
    tests : tuple of str
        The normal run's steps: pytest arguments (files, ``-k``) of one pytest process each (a
        ``-k`` applies to every file of its step), run in order until one catches the mutant.
    sim_tests : tuple of str
        The simulator run's steps (``NUMBA_ENABLE_CUDASIM=1``), after the normal run's.
    equivalent : str
        For a mutant that cannot change any result: why (it is expected to survive).
    """

    id: str
    path: str
    old: str
    new: str
    what: str
    tests: tuple = ()
    sim_tests: tuple = ()
    equivalent: str = ""

    @property
    def steps(self):
        """``(pytest arguments, in the simulator)`` of every step, in order."""
        return [(args, False) for args in self.tests] + [(args, True) for args in self.sim_tests]

    @property
    def area(self):
        """The part of lsm it mutates, for the report."""
        parts = Path(self.path).parts
        if parts[1] in ("cpu", "cuda", "dask"):
            return {"cpu": "cpu", "cuda": "cuda (simulator)", "dask": "dask"}[parts[1]]
        return "planning and validation"


def _cpu(id, file, old, new, what, tests, equivalent=""):
    return Mutation(id, f"lsm/cpu/{file}", old, new, what, tests=tests, equivalent=equivalent)


def _cuda(id, file, old, new, what, sim_tests, tests=()):
    return Mutation(id, f"lsm/cuda/{file}", old, new, what, tests=tests, sim_tests=sim_tests)


def _dask(id, file, old, new, what, tests, equivalent=""):
    return Mutation(id, f"lsm/dask/{file}", old, new, what, tests=tests, equivalent=equivalent)


def _core(id, file, old, new, what, tests):
    return Mutation(id, f"lsm/{file}", old, new, what, tests=tests)


EDGES = "tests/test_edges.py"
# steps shared by several mutations
OUT_TESTS = "tests/test_errors.py tests/test_contract.py -k 'not dask and (out or alias)'"
LOSS_TESTS = "tests/test_losses.py -k 'cpu and (special or zero or ignored or matches_reference)'"
WEIGHT_TESTS = "tests/test_contract.py -k 'not dask and (weight or sign or agrees or row_)'"
CATALOGUE = [
    # --- lsm/cpu: the host kernels ----------------------------------------------------------------
    _cpu(
        "cpu-log1p",
        "_forward.py",
        "log1p_q = q if u == 1 else fast_log(u) * (q / (u - 1))",
        "log1p_q = q if u == 1 else fast_log(u)",
        "log(1 + q) from the rounded 1 + q instead of the corrected log1p",
        (
            "tests/test_contract.py -k 'not dask and (row_finite or dominant or agrees)'",
            f"{EDGES} -k 'cpu and dominant'",
        ),
    ),
    _cpu(
        "cpu-row-compensation",
        "_stats.py",
        "return at_max, compensated_total(total, compensation)",
        "return at_max, total",
        "the row sums drop their final Neumaier compensation",
        ("tests/test_contract.py -k 'accuracy'", f"{EDGES} -k 'compensated'"),
    ),
    _cpu(
        "cpu-column-compensation",
        "_stats.py",
        "total[t] = compensated_total(total[t], compensation[t])",
        "total[t] = total[t]",
        "the column sums drop their final Neumaier compensation",
        ("tests/test_contract.py -k 'accuracy'", f"{EDGES} -k 'compensated'"),
    ),
    _cpu(
        "cpu-neumaier-branch",
        "_stats.py",
        "    if abs(total) >= abs(term):\n        compensation += (total - new_total) + term",
        "    if abs(total) < abs(term):\n        compensation += (total - new_total) + term",
        "Neumaier's step takes the error of the wrong operand",
        ("tests/test_contract.py -k 'accuracy'", f"{EDGES} -k 'compensated'"),
    ),
    _cpu(
        "cpu-overlap-bound",
        "_backend.py",
        "return np.shares_memory(a, b, max_work=10_000)",
        "return True",
        "out= overlap judged by NumPy's cheap bound (interleaved views refused)",
        (OUT_TESTS, f"{EDGES} -k 'cpu and out'"),
    ),
    _cpu(
        "cpu-pick-guard-rows",
        "_losses.py",
        "weighted += zero if pick == 0 else pick * (load(row[t]) - shift)",
        "weighted += pick * (load(row[t]) - shift)",
        "a zero-weight target at a -inf logit gives 0 * -inf (row kernel)",
        (LOSS_TESTS, f"{EDGES} -k 'cpu and zero'"),
    ),
    _cpu(
        "cpu-coefficient-guard-rows",
        "_losses.py",
        "weighted += zero if q == 0 else q * (load(block[j]) - shift)",
        "weighted += q * (load(block[j]) - shift)",
        "a zero coefficient with label smoothing or probabilities gives 0 * -inf (row kernel)",
        (LOSS_TESTS, f"{EDGES} -k 'cpu and zero'"),
    ),
    _cpu(
        "cpu-coefficient-guard-columns",
        "_losses.py",
        "term = zero if q == 0 else q * (load(values[k]) - shift[k])",
        "term = q * (load(values[k]) - shift[k])",
        "a zero coefficient with label smoothing or probabilities gives 0 * -inf (column kernel)",
        (LOSS_TESTS, f"{EDGES} -k 'cpu and zero'"),
    ),
    _cpu(
        "cpu-pick-guard-columns",
        "_losses.py",
        "weighted[k] += zero if pick[k] == 0 else pick[k] * (load(x[o, t, i0 + k]) - shift[k])",
        "weighted[k] += pick[k] * (load(x[o, t, i0 + k]) - shift[k])",
        "a zero-weight target at a -inf logit gives 0 * -inf (column kernel)",
        (LOSS_TESTS, f"{EDGES} -k 'cpu and zero'"),
    ),
    _cpu(
        "cpu-nll-zero-weight",
        "_losses.py",
        "loss[o, i] = 0.0 if w == 0 else -(w * load(logp[o, t, i]))",
        "loss[o, i] = -(w * load(logp[o, t, i]))",
        "nll_loss: a zero weight at a -inf log-probability gives NaN",
        (LOSS_TESTS, f"{EDGES} -k 'cpu and zero'"),
    ),
    _cpu(
        "cpu-zero-weights-refused",
        "_losses.py",
        "if not (abs(w) < np.inf and w >= 0):",
        "if not (abs(w) < np.inf and w > 0):",
        "class weights of 0 are refused as bad weights",
        (LOSS_TESTS, f"{EDGES} -k 'cpu and zero'"),
    ),
    _cpu(
        "cpu-target-range",
        "_losses.py",
        "if not 0 <= t < n_classes:",
        "if not 0 <= t <= n_classes:",
        "a target equal to the number of classes passes the check",
        ("tests/test_losses.py -k 'range or target'", f"{EDGES} -k 'cpu and class_count'"),
    ),
    _cpu(
        "cpu-row-max-ignores-where",
        "_stats.py",
        "candidate = order_key(load(row[j])) if included(where, b, j) else order_key(lowest)",
        "candidate = order_key(load(row[j]))",
        "the row maximum includes elements excluded by where= or b == 0",
        ("tests/test_contract.py -k 'not dask and (where or weight)'",),
    ),
    _cpu(
        "cpu-short-row-shift",
        "_stats.py",
        "shifted[j] = load(row[j]) - m[r]",
        "shifted[j] = load(row[j]) - m[0]",
        "a chunk of short rows shifts every row by the first row's maximum",
        ("tests/test_contract.py -k 'cpu and row_'",),
    ),
    _cpu(
        "cpu-exp-coefficient",
        "_exp.py",
        "    0.041666666666624164,\n",
        "    0.04,\n",
        "a wrong coefficient (1/24 as 0.04) in the float64 exp's polynomial",
        ("tests/test_exp.py",),
    ),
    _cpu(
        "cpu-log-constant",
        "_log.py",
        "_LN2_LO_64 = 1.90821492927058770002e-10",
        "_LN2_LO_64 = 0.0",
        "the float64 log drops the low part of ln 2",
        ("tests/test_log.py",),
    ),
    _cpu(
        "cpu-nan-group",
        "_forward.py",
        "return abs(m) < np.inf and rest == rest",
        "return abs(m) < np.inf",
        "a group holding NaN is normalised as if finite",
        ("tests/test_contract.py -k 'cpu and (nan or row_)'", f"{EDGES} -k 'cpu and sign_bit'"),
        equivalent="the check is redundant: a NaN in a group's sum (the only way past it, since "
        "a NaN maximum fails the other half) makes the log-normaliser and the inverse normaliser "
        "NaN, and every output is formed from one of them",
    ),
    _cpu(
        "cpu-fastmath-nnan",
        "_stats.py",
        '_SUM_FASTMATH = {"reassoc", "contract"}',
        '_SUM_FASTMATH = {"reassoc", "contract", "nnan", "ninf"}',
        "the vectorised sums may assume no NaN or infinity",
        ("tests/test_contract.py -k 'cpu and (nan or inf or row_)'", f"{EDGES} -k 'cpu and sign_bit'"),
    ),
    _cpu(
        "cpu-posinf-group",
        "_forward.py",
        "return abs(m) < np.inf and rest == rest",
        "return m > -np.inf and rest == rest",
        "a group holding +inf is normalised as if finite",
        (LOSS_TESTS, f"{EDGES} -k 'cpu and posinf'"),
    ),
    _cpu(
        "cpu-bfloat16-ties",
        "_scalar.py",
        "rounded = (bits + np.uint32(0x7FFF) + odd) >> np.uint32(16)",
        "rounded = (bits + np.uint32(0x8000)) >> np.uint32(16)",
        "bfloat16 rounding ties away from zero instead of to even",
        ("tests/test_contract.py -k 'rounded_to_nearest or 16bit'", "tests/test_half.py -k 'bfloat16'"),
    ),
    _cpu(
        "cpu-backward-block-boundary",
        "_backward.py",
        "stop = min(start + ROW_BLOCK, n)",
        "stop = min(start + ROW_BLOCK - 1, n)",
        "the gradient's blocked row sum skips the last element of each block",
        ("tests/test_gradients.py -k 'cpu and matches_reference'",),
    ),
    _cpu(
        "cpu-weight-times-condition",
        "_optional.py",
        "to_acc(b[index], like) if condition else to_acc(0.0, like)",
        "to_acc(b[index], like) * to_acc(condition, like)",
        "the weight at the maximum as a product (an infinite weight times 0 is NaN)",
        (WEIGHT_TESTS,),
    ),
    _cpu(
        "cpu-zero-sum-nan",
        "_forward.py",
        "negative_without_sign = sign is None and value_sign < 0",
        "negative_without_sign = sign is None and value_sign <= 0",
        "an empty or zero sum gives NaN instead of -inf without return_sign",
        (WEIGHT_TESTS,),
    ),
    _cpu(
        "cpu-cancelling-weights",
        "_forward.py",
        "if big == 0 or small / big == -1:  # the weights cancel: S = 0",
        "if big == 0:  # the weights cancel: S = 0",
        "weights that cancel exactly give sign +-1 instead of 0",
        (WEIGHT_TESTS, f"{EDGES} -k 'cpu and cancel'"),
    ),
    _cpu(
        "cpu-loss-sum-in-result-dtype",
        "_backend.py",
        "total = float(loss.sum())  # pairwise, in float64",
        "total = float(loss.astype(result.dtype).sum())",
        "the per-item losses are summed in the result dtype (float16 overflows)",
        (LOSS_TESTS, f"{EDGES} -k 'cpu and float16_losses'"),
    ),
    _cpu(
        "cpu-keep-exps-in-place",
        "_backend.py",
        "and out.dtype in _ACCUMULATION_TYPES and not np.may_share_memory(x, out)",
        "and out.dtype in _ACCUMULATION_TYPES",
        "softmax in place keeps its exponentials in the input's own rows",
        ("tests/test_contract.py tests/test_errors.py -k 'not dask and (in_place or aliasing)'",),
        equivalent="each element is read before its exponential is written over it, and the "
        "rescale reads only the exponentials: the results are the same; the check is there for "
        "speed (an aliased sum loop cannot vectorise)",
    ),
    # --- lsm/cuda: the GPU kernels, in the simulator --------------------------------------------
    _cuda(
        "cuda-split-tie-rest",
        "_group.py",
        "return m, at_max + at_max2, rest + rest2",
        "return m, at_max + at_max2, rest",
        "the split-row merge drops a tied piece's sum",
        ("tests/test_cuda_paths.py", f"{EDGES} -k 'kernel_paths'"),
    ),
    _cuda(
        "cuda-split-tie-count",
        "_group.py",
        "return m, at_max + at_max2, rest + rest2",
        "return m, at_max, rest + rest2",
        "the split-row merge drops a tied piece's count of maxima",
        ("tests/test_cuda_paths.py", f"{EDGES} -k 'kernel_paths'"),
    ),
    _cuda(
        "cuda-block-max-identity",
        "_reduce.py",
        "value = scratch[lane] if lane < cuda.blockDim.x // WARP else lowest",
        "value = scratch[lane] if lane < cuda.blockDim.x // WARP else zero",
        "idle lanes of the block maximum hold 0 instead of -inf",
        ("tests/test_cuda_paths.py", f"{EDGES} -k 'kernel_paths'"),
    ),
    _cuda(
        "cuda-warp-padding",
        "_forward.py",
        "                        value = lowest\n                        if active and start + k < n:\n",
        "                        value = zero\n                        if active and start + k < n:\n",
        "the warp kernel pads a row's empty slots with 0 instead of -inf",
        ("tests/test_cuda_paths.py", f"{EDGES} -k 'kernel_paths'"),
    ),
    _cuda(
        "cuda-warp-shared-slots",
        "_forward.py",
        "lane_packs = (packs - lane + lanes - 1) // lanes if packs > lane else 0",
        "lane_packs = (packs - lane) // lanes if packs > lane else 0",
        "the warp rows kept in shared memory drop a lane's last pack of the row",
        ("tests/test_cuda_sim.py -k 'kept_in_shared or buckets'",),
    ),
    _cuda(
        "cuda-summary-runs-tail",
        "_forward.py",
        "for j in range(start + runs * width + thread, stop, threads):",
        "for j in range(start + runs * width + thread + threads, stop, threads):",
        "the one-pass summaries skip the first elements after a row's last whole 16-byte run",
        ("tests/test_contract.py -k adversarial",),
    ),
    _cuda(
        "cuda-warp-stretch",
        "_backward.py",
        "base = offset * (n if log else 2 * n)",
        "base = 0 * offset * (n if log else 2 * n)",
        "the backward rows by warp all keep their rows in the first warp's stretch of shared memory",
        ("tests/test_cuda_sim.py -k 'kept_in_shared'",),
    ),
    _cuda(
        "cuda-zero-weight-included",
        "_group.py",
        "keep = keep and b[index] != 0",
        "keep = keep",
        "elements of weight 0 take part (+inf or NaN there poisons the group)",
        ("tests/test_contract.py tests/test_properties.py -k 'weight'", f"{EDGES} -k 'zero_weights'"),
    ),
    _cuda(
        "cuda-log1p",
        "_group.py",
        "return math.log1p(r) if a == one else math.log(a) + math.log1p(r / a)",
        "return math.log(one + r) if a == one else math.log(a) + math.log1p(r / a)",
        "log(1 + r) from the rounded 1 + r instead of log1p",
        ("tests/test_contract.py -k 'finite or dominant'", f"{EDGES} -k 'dominant'"),
    ),
    _cuda(
        "cuda-infinite-total",
        "_group.py",
        "return total + compensation if abs(total) < inf else total",
        "return total + compensation",
        "an infinite compensated sum adds its compensation (inf - inf)",
        (
            "tests/test_contract.py tests/test_properties.py -k 'weight or sign or row_ or overflowing'",
            f"tests/test_cuda_paths.py {EDGES}",
        ),
    ),
    _cuda(
        "cuda-coefficient-guard",
        "_losses.py",
        "return zero if q == 0 else q * (value - shift)",
        "return q * (value - shift)",
        "a zero loss coefficient at a -inf logit gives 0 * -inf",
        ("tests/test_losses.py", f"{EDGES} -k 'zero or special'"),
    ),
    _cuda(
        "cuda-ignored-gradient",
        "_losses.py",
        "row_runs = 0 if ignored else runs",
        "row_runs = runs",
        "an ignored item's gradient is computed from its logits in the 16-byte runs instead of 0",
        ("tests/test_losses.py -k 'ignore'", "tests/test_cuda_sim.py -k 'by_warp_and_by_block'"),
    ),
    _cuda(
        "cuda-nll-zero-weight",
        "_losses.py",
        "                if w != 0:\n                    value = -(w * element(logp[o, t, i]))",
        "                if True:\n                    value = -(w * element(logp[o, t, i]))",
        "nll_loss: a zero weight at a -inf log-probability gives NaN",
        ("tests/test_losses.py", f"{EDGES} -k 'zero or special or nll'"),
    ),
    _cuda(
        "cuda-target-range",
        "_losses.py",
        "if t < 0 or t >= n_classes:",
        "if t < 0 or t > n_classes:",
        "a target equal to the number of classes passes the check",
        ("tests/test_cuda_sim_gradients_and_losses.py -k 'range'", f"{EDGES} -k 'class_count'"),
    ),
    _cuda(
        "cuda-overlap-touching",
        "_layout.py",
        "return low < other_high and other_low < high",
        "return low < other_high and other_low <= high",
        "byte ranges that only touch count as overlapping",
        ("tests/test_errors.py tests/test_cuda_sim.py -k 'out or alias'", f"{EDGES} -k 'out'"),
    ),
    _cuda(
        "cuda-merge-gapped-strides",
        "_layout.py",
        "if outer_stride != inner_stride * inner:",
        "if outer_stride < inner_stride * inner:",
        "axes with a gap between them merge into one",
        ("tests/test_cuda_sim.py tests/test_contract.py -k 'where or out'",),
        tests=("tests/test_cuda_layout.py",),
    ),
    _cuda(
        "cuda-backward-sum-term",
        "_backward.py",
        "return element(grad[index]) if log else element(grad[index]) * element(y[index])",
        "return element(grad[index]) * element(y[index]) if log else element(grad[index])",
        "the two gradients' sums swapped",
        ("tests/test_gradients.py",),
    ),
    # --- lsm/dask: the graphs ------------------------------------------------------------------
    _dask(
        "dask-zero-sum-nan",
        "_forward.py",
        "value = da.where(sign < 0, np.nan, value)",
        "value = da.where(sign <= 0, np.nan, value)",
        "an empty or zero sum gives NaN instead of -inf",
        ("tests/test_contract.py -k 'dask-halves and (row_ or where)'",),
    ),
    _dask(
        "dask-offset-infinities",
        "_forward.py",
        "offset = np.where(tops == top, 0, tops - top)",
        "offset = tops - top",
        "the normaliser merge forms inf - inf for chunks with nothing included",
        ("tests/test_contract.py -k 'dask-halves and (row_ or where)'",),
        equivalent="the two differ only where the group's maximum is +inf or -inf (a part at the "
        "maximum, or one with nothing included, meets it), and the finalise step makes every "
        "included output of such a group NaN whatever its log-sum",
    ),
    _dask(
        "dask-finalise-validity",
        "_forward.py",
        "valid = np.isfinite(top) & np.isfinite(log_sum)",
        "valid = np.isfinite(top)",
        "the finalise step misses groups whose sum is NaN",
        ("tests/test_contract.py -k 'dask-halves and (row_ or where)'",),
        equivalent="the log-sum is not finite only where the maximum is not: a NaN anywhere in a "
        "chunk makes its NumPy maximum NaN, and a finite maximum bounds the shifted sum between 1 "
        "and the group's length",
    ),
    _dask(
        "dask-infinite-shift",
        "_forward.py",
        "shift = np.where(np.isfinite(top), top, 0).astype(values.dtype)",
        "shift = np.where(~np.isnan(top), top, 0).astype(values.dtype)",
        "a chunk with +inf shifts by infinity (inf - inf)",
        ("tests/test_contract.py -k 'dask-halves and (row_ or where)'",),
    ),
    _dask(
        "dask-chunk-max-unmasked",
        "_forward.py",
        "candidates = values if included is None else np.where(included, values, -np.inf)",
        "candidates = values",
        "a chunk's maximum includes excluded elements",
        ("tests/test_contract.py -k 'dask-halves and (row_ or where)'",),
    ),
    _dask(
        "dask-chunk-max-ignores-weights",
        "_forward.py",
        "included = where if b is None else (b != 0)",
        "included = where",
        "a chunk's shift includes elements of weight 0",
        (
            "tests/test_contract.py tests/test_dask.py -k 'dask-halves or weights'",
            f"{EDGES} -k 'zero_weights'",
        ),
    ),
    _dask(
        "dask-signed-sum-adds-negatives",
        "_forward.py",
        "rest = np.expm1(log_top) - np.exp(offset) * np.exp(log_other)",
        "rest = np.expm1(log_top) + np.exp(offset) * np.exp(log_other)",
        "a weighted logsumexp over a split axis adds the other part's sum, whatever its sign",
        ("tests/test_contract.py tests/test_dask.py -k 'dask-halves or sign or weights or negative'",),
    ),
    _dask(
        "dask-finalise-in-result-dtype",
        "_forward.py",
        "value -= log_sum.astype(accumulation)",
        "value -= log_sum.astype(result_dtype)",
        "log_softmax over a split axis subtracts a log-sum rounded to the 16-bit result type",
        ("tests/test_contract.py -k 'dask-halves'", "tests/test_half.py -k 'dask-halves'"),
    ),
    _dask(
        "dask-target-range",
        "_losses.py",
        "bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))",
        "bad = (target != ignore_index) & ((target < 0) | (target > n_classes))",
        "a target equal to the number of classes passes the graph's check",
        ("tests/test_dask.py tests/test_losses.py -k 'range or target'", f"{EDGES} -k 'class_count'"),
    ),
    _dask(
        "dask-denominator-unweighted",
        "_losses.py",
        "return np.where(valid, weight[np.where(valid, target, 0)], 0.0)",
        "return np.where(valid, 1.0, 0.0)",
        "a weighted mean divides by the count of targets",
        ("tests/test_losses.py -k 'dask-halves'",),
    ),
    _dask(
        "dask-backward-unmasked",
        "_backward.py",
        "return terms if where is None else np.where(where, terms, 0.0)",
        "return terms",
        "a chunked gradient sums the excluded elements too",
        ("tests/test_gradients.py -k 'dask-halves'",),
    ),
    _dask(
        "dask-loss-sum-in-result-dtype",
        "_losses.py",
        "    total = loss.sum()\n",
        "    total = loss.astype(result_dtype).sum()\n",
        "the per-item losses are summed in the result dtype (float16 overflows)",
        ("tests/test_losses.py -k 'dask-halves'", f"{EDGES} -k 'dask-halves and float16_losses'"),
    ),
    # --- planning and validation ------------------------------------------------------------------
    _core(
        "plan-adjacent-axes",
        "_plan.py",
        "if not axes or axes[-1] - axes[0] == len(axes) - 1:",
        "if not axes or axes[-1] - axes[0] <= len(axes):",
        "axes one apart count as adjacent",
        ("tests/test_contract.py -k 'not dask and (where_broadcasts or out_is or logsumexp_out)'",),
    ),
    _core(
        "plan-accumulation-float32",
        "_plan.py",
        "return np.dtype(np.float64 if dtype == np.float64 else np.float32)",
        "return np.dtype(np.float32)",
        "float64 calls accumulate their operands in float32",
        ("tests/test_contract.py -k 'not dask and (weight or agrees or where_and_b)'",),
    ),
    _core(
        "pipeline-alias-any-view",
        "_pipeline.py",
        "if operand is None or (operand is alias and self.backend.same_memory(view, alias)):",
        "if operand is None or operand is alias:",
        "out= over the input's memory with other strides passes as in place",
        (OUT_TESTS,),
    ),
    _core(
        "pipeline-backward-alias",
        "_pipeline.py",
        "            alias = gv\n",
        "            alias = yv\n",
        "out=grad is refused as an overlap",
        ("tests/test_gradients.py -k 'not dask and (in_place or out)'",),
    ),
    _core(
        "pipeline-scatter-skipped",
        "_pipeline.py",
        "self.backend.softmax(x3, where3, target.view, log)\n        target.done()",
        "self.backend.softmax(x3, where3, target.view, log)",
        "an out= that cannot be viewed canonically is never written",
        (OUT_TESTS,),
    ),
    _core(
        "pipeline-mean-scale",
        "_pipeline.py",
        'if reduction == "mean" else 1.0',
        'if reduction != "none" else 1.0',
        "the gradient of a summed loss is divided by the total weight",
        ("tests/test_losses.py -k 'cpu and matches_reference'",),
    ),
    _core(
        "validate-read-only-out",
        "_validate.py",
        '    if readonly:\n        raise ValueError(f"{func}: {name!r} is read-only")',
        '    if False:\n        raise ValueError(f"{func}: {name!r} is read-only")',
        "a read-only out= is written",
        ("tests/test_errors.py -k 'not dask'",),
    ),
    _core(
        "validate-smoothing-one",
        "_validate.py",
        "if not 0.0 <= float(value) <= 1.0:",
        "if not 0.0 <= float(value) < 1.0:",
        "label_smoothing=1 is refused",
        (LOSS_TESTS, f"{EDGES} -k 'cpu'"),
    ),
    _core(
        "validate-duplicate-axes",
        "_validate.py",
        "if len(set(normalized)) != len(normalized):",
        "if False:",
        "an axis named twice is accepted",
        ("tests/test_errors.py -k 'not dask'",),
    ),
    _core(
        "validate-bool-input",
        "_validate.py",
        'if x_dtype.kind in "biu":',
        'if x_dtype.kind in "iu":',
        "bool inputs are refused instead of computed in float64",
        ("tests/test_contract.py -k 'not dask and dtype'",),
    ),
]


# --- running ------------------------------------------------------------------------------------


def check(mutation, root=ROOT):
    """Raise ValueError unless ``mutation`` applies to the sources under ``root`` exactly once."""
    count = (root / mutation.path).read_text().count(mutation.old)
    if count != 1 or mutation.old == mutation.new:
        raise ValueError(f"{mutation.id}: its text occurs {count} times in {mutation.path}")


_FIRST_FAILURE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def outcome(returncode, output):
    """``(result, first failing test)`` of a pytest run (``-x``) from its exit code and output."""
    failed = _FIRST_FAILURE.search(output)
    if returncode == 0:
        return "survived", ""
    if returncode in (1, 2) and failed:  # 2: interrupted, e.g. a collection error
        return "caught", failed.group(1)
    return "error", ""


class Scratch:
    """A copy of the repository at ``rev`` in a new folder under ``parent``, with its own clean
    Numba cache."""

    def __init__(self, rev, parent):
        self.root = Path(tempfile.mkdtemp(prefix="copy-", dir=parent))
        archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", rev], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(self.root)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {rev} failed")
        self.clean_cache = self.root / ".numba-cache"
        found = subprocess.run(
            [sys.executable, "-c", "import lsm; print(lsm.__file__)"],
            cwd=self.root,
            env=self.env(self.clean_cache, simulator=False),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(found).is_relative_to(self.root):
            raise RuntimeError(f"the copy imports lsm from {found}, not from {self.root}")

    def env(self, cache, simulator):
        env = dict(os.environ, PYTHONPATH=str(self.root), PYTHONDONTWRITEBYTECODE="1")
        env["NUMBA_CACHE_DIR"] = str(cache)
        env.pop("NUMBA_ENABLE_CUDASIM", None)
        if simulator:
            env["NUMBA_ENABLE_CUDASIM"] = "1"
        return env

    def pytest(self, args, cache, simulator, timeout):
        """``(exit code, or None after a timeout; output; seconds)`` of ``pytest -x args``."""
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *shlex.split(args)]
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=self.root,
            env=self.env(cache, simulator),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a process group of its own: a timeout ends Dask's workers too
        )
        try:
            output, _ = process.communicate(timeout=max(timeout, 1))
            code = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            code = None
        return code, output, time.perf_counter() - start

    def run_steps(self, steps, cache, timeout):
        """Run ``steps`` (see :attr:`Mutation.steps`) until one fails: a result dict."""
        result = {"result": "survived", "caught_by": "", "seconds": 0.0, "tail": ""}
        for args, simulator in steps:
            code, output, seconds = self.pytest(args, cache, simulator, timeout - result["seconds"])
            result["seconds"] += seconds
            if code is None:
                return {**result, "result": "timeout", "tail": output[-3000:]}
            verdict, test = outcome(code, output)
            if verdict != "survived":
                caught_by = f"{test} (simulator)" if simulator and test else test
                return {**result, "result": verdict, "caught_by": caught_by, "tail": output[-3000:]}
        return result

    def baseline(self, step, timeout):
        """Run one step on the unmutated copy (which fills its clean Numba cache)."""
        return self.run_steps([step], self.clean_cache, timeout)

    def mutant(self, mutation, timeout):
        """Apply ``mutation``, run its steps, restore the file (content and time): a result dict."""
        check(mutation, self.root)
        path = self.root / mutation.path
        original, stat = path.read_bytes(), path.stat()
        cache = self.clean_cache
        if mutation.path.startswith("lsm/cpu/"):  # see the module docstring
            cache = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=self.root.parent))
        try:
            path.write_text(original.decode().replace(mutation.old, mutation.new))
            result = self.run_steps(mutation.steps, cache, timeout)
        finally:
            path.write_bytes(original)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            if cache != self.clean_cache:
                shutil.rmtree(cache, ignore_errors=True)
        if result["result"] == "survived" and mutation.equivalent:
            result["result"] = "equivalent"
        return {"id": mutation.id, **result}


def run_all(mutations, jobs, rev, timeout, baseline, log):
    """The baseline, then the ``mutations``, on ``jobs`` scratch copies (each runs one thing at a
    time): the mutants' result dicts, in catalogue order."""
    parent = tempfile.mkdtemp(prefix="lsm-mutate-")
    scratches = queue.Queue()

    def on_a_scratch(method, *args):
        scratch = scratches.get()
        try:
            return getattr(scratch, method)(*args, timeout)
        finally:
            scratches.put(scratch)

    try:
        for _ in range(jobs):
            scratches.put(Scratch(rev, parent))
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            if baseline:
                steps = list(dict.fromkeys(step for mutation in mutations for step in mutation.steps))
                for (args, simulator), result in zip(
                    steps, pool.map(lambda step: on_a_scratch("baseline", step), steps), strict=True
                ):
                    named = f"{'NUMBA_ENABLE_CUDASIM=1 ' if simulator else ''}pytest {args}"
                    log(f"baseline {named}: {result['result']} in {result['seconds']:.0f} s")
                    if result["result"] != "survived":
                        raise SystemExit(f"the unmutated copy fails {named}:\n{result['tail']}")
            futures = [pool.submit(on_a_scratch, "mutant", mutation) for mutation in mutations]
            results = []
            for future in concurrent.futures.as_completed(futures):
                result = future.result()
                log(f"{result['id']}: {result['result']} {result['caught_by']} in {result['seconds']:.0f} s")
                results.append(result)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    order = {mutation.id: k for k, mutation in enumerate(mutations)}
    return sorted(results, key=lambda result: order[result["id"]])


def markdown(mutations, results):
    """The results as a markdown table, with the counts and the equivalence reasons."""
    by_id = {mutation.id: mutation for mutation in mutations}
    counts = {}
    for result in results:
        counts[result["result"]] = counts.get(result["result"], 0) + 1
    lines = [
        ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) + f" of {len(results)}",
        "",
        "| id | file | mutation | tests (normal run; simulator run) | result | first failing test | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        mutation = by_id[result["id"]]
        tests = "; ".join(
            ", ".join(f"`{step}`" for step in part) or "-" for part in (mutation.tests, mutation.sim_tests)
        )
        caught_by = f"`{result['caught_by']}`" if result["caught_by"] else ""
        lines.append(
            f"| {mutation.id} | `{mutation.path}` | {mutation.what} | {tests} | {result['result']} "
            f"| {caught_by} | {result['seconds']:.0f} |"
        )
    ran = {result["id"] for result in results}
    reasons = [f"- {m.id}: {m.equivalent}" for m in mutations if m.equivalent and m.id in ran]
    if reasons:
        lines += ["", "Equivalent mutants (expected to survive):", "", *reasons]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Mutation testing of lsm (see the module docstring).")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these mutations only")
    parser.add_argument("--list", action="store_true", help="print the catalogue (checked) and stop")
    parser.add_argument("--rev", default="HEAD", help="the commit to copy (default HEAD)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant (default 900)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once, each on its own copy")
    parser.add_argument("--no-baseline", action="store_true", help="skip the runs on the unmutated copy")
    parser.add_argument(
        "--steps",
        nargs="+",
        metavar="ARGS",
        help="run these normal-run steps instead of each mutation's own (with --sim-steps: these "
        "simulator steps), to ask whether given tests catch given mutants",
    )
    parser.add_argument("--sim-steps", nargs="+", metavar="ARGS", help="see --steps")
    parser.add_argument("--markdown", type=Path, help="write the results table here")
    parser.add_argument("--json", type=Path, help="write the results (and the catalogue) here")
    args = parser.parse_args(argv)
    mutations = [m for m in CATALOGUE if args.only is None or m.id in args.only]
    if args.steps or args.sim_steps:
        steps = {"tests": tuple(args.steps or ()), "sim_tests": tuple(args.sim_steps or ())}
        mutations = [dataclasses.replace(m, **steps) for m in mutations]
    unknown = set(args.only or ()) - {m.id for m in mutations}
    if unknown:
        parser.error(f"unknown mutation ids: {', '.join(sorted(unknown))}")
    if args.list:
        for mutation in mutations:
            check(mutation)
            print(f"{mutation.id:32} {mutation.area:24} {mutation.path}: {mutation.what}")
        return
    start = time.perf_counter()
    results = run_all(
        mutations,
        args.jobs,
        args.rev,
        args.timeout,
        not args.no_baseline,
        lambda line: print(line, flush=True),
    )
    print(f"\n{time.perf_counter() - start:.0f} s in all\n")
    text = markdown(mutations, results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        catalogue = {mutation.id: dataclasses.asdict(mutation) for mutation in mutations}
        args.json.write_text(json.dumps([{**catalogue[r["id"]], **r} for r in results], indent=1))


if __name__ == "__main__":
    main()
