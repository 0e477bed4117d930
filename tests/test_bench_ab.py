"""``lsm bench compare`` (A/B in one run), its verdict, and ``lsm bench record`` / ``history``.

The verdict logic is checked on synthetic ratios with the jitter of a busy machine; the whole
comparison runs once on two folder revisions, this checkout's lsm and a copy whose
log_softmax_backward runs its kernel twice, on one small input each.
"""

import importlib.util
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

from lsm.bench import ab, history, verdict
from lsm.bench.table import Case

ROOT = Path(__file__).resolve().parent.parent


def _experiment():
    spec = importlib.util.spec_from_file_location("ab_experiment", ROOT / "scripts" / "ab_experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the verdict ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "alpha", "k"), [(7, 0.01, 0), (8, 0.01, 1), (20, 0.05, 6), (50, 0.01, 16)])
def test_sign_test_rank_matches_the_binomial_tables(n, alpha, k):
    assert verdict.sign_test_rank(n, alpha) == k
    below = sum(math.comb(n, j) for j in range(k)) / 2**n
    assert below <= alpha / 2 < below + math.comb(n, k) / 2**n


def test_too_few_pairs_never_decide():
    assert verdict.median_interval([2.0] * 7) is None
    assert verdict.judge([2.0] * 7, 0.05).verdict == verdict.UNDECIDED


def _ratios(true_ratio, pairs, seed):
    """Per-pair B/A ratios of a busy 2-core machine: 3% log-normal jitter on each round, and one
    round in ten hit by a burst of load (25-100% longer) on either side."""
    rng = np.random.default_rng(seed)
    a = np.exp(rng.normal(0, 0.03, pairs)) * np.where(rng.random(pairs) < 0.1, rng.uniform(1.25, 2, pairs), 1)
    b = np.exp(rng.normal(0, 0.03, pairs)) * np.where(rng.random(pairs) < 0.1, rng.uniform(1.25, 2, pairs), 1)
    return [float(r) for r in true_ratio * b / a]


@pytest.mark.parametrize(
    ("true_ratio", "threshold", "allowed"),
    [
        (1.0, 0.05, {verdict.NO_CHANGE, verdict.UNDECIDED}),
        (1.05, 0.10, {verdict.NO_CHANGE, verdict.UNDECIDED}),
        (1.15, 0.05, {verdict.SLOWER}),
        (1.30, 0.10, {verdict.SLOWER}),
        (1 / 1.30, 0.10, {verdict.FASTER}),
        (1.07, 0.05, {verdict.UNDECIDED, verdict.SLOWER}),
    ],
)
def test_verdict_on_synthetic_pairs(true_ratio, threshold, allowed):
    found = set()
    for seed in range(50):
        result = verdict.judge(_ratios(true_ratio, 60, seed), threshold)
        assert result.verdict in allowed, (seed, result)
        assert result.low <= result.ratio <= result.high
        found.add(result.verdict)
    if true_ratio == 1.0:  # settled as "no change" most of the time, not only never flagged
        assert verdict.NO_CHANGE in found


def test_a_tight_interval_settles_and_a_wide_one_does_not():
    assert verdict.judge([1.0 + 0.001 * i for i in range(12)], 0.05).settled
    assert not verdict.judge([0.8, 1.25] * 6, 0.05).settled


# -- revisions -----------------------------------------------------------------------------------


def test_a_git_revision_is_extracted_once_and_a_folder_is_taken_as_is(tmp_path):
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(ROOT), "rev-parse"]).returncode:
        pytest.skip("not a git checkout")
    head = ab.resolve("HEAD", ROOT, cache=tmp_path)
    assert (head.root / "lsm" / "__init__.py").is_file() and head.root.name == head.commit
    assert ab.resolve("HEAD", ROOT, cache=tmp_path) == head  # the extracted tree is reused
    folder = ab.resolve(str(head.root), ROOT)
    assert folder.root == head.root and folder.commit is None
    with pytest.raises(ValueError, match="no-such-revision"):
        ab.resolve("no-such-revision", ROOT, cache=tmp_path)


def test_the_slowed_copy_changes_one_kernel_line(tmp_path):
    experiment = _experiment()
    copy = experiment.slowed_copy(ROOT, tmp_path, share=0.25)
    text = (copy / experiment.SLOWED_FILE).read_text()
    original = (ROOT / experiment.SLOWED_FILE).read_text()
    assert text.replace(experiment.EXTRA_WORK.format(share=0.25), "") == original
    with pytest.raises(ValueError, match="share"):
        experiment.slowed_copy(ROOT, tmp_path / "other", share=0)


# -- the whole comparison ------------------------------------------------------------------------


def test_compare_flags_the_slowed_kernel_and_only_it(tmp_path, monkeypatch):
    # One thread per worker: on a machine busy with other processes a parallel kernel waits for
    # descheduled threads far longer than it computes, which this test of the machinery need not see.
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    experiment = _experiment()
    baseline = tmp_path / "a"
    shutil.copytree(ROOT / "lsm", baseline / "lsm", ignore=shutil.ignore_patterns("__pycache__"))
    slowed = experiment.slowed_copy(ROOT, tmp_path / "b", share=1.0)
    cases = [
        Case("log_softmax_backward", "cpu", "float64", (256, 1024), -1, "lsm"),
        Case("log_softmax", "cpu", "float64", (256, 1024), -1, "lsm"),
    ]
    # A 25% threshold: twice the work is far beyond it, noise on a busy CI machine is not.
    settings = ab.Settings(threshold=0.25, budget=20, round_time=0.005)
    doc = ab.run(str(baseline), str(slowed), cases, settings)
    verdicts = {case["case"]: case for case in doc["cases"]}
    assert verdicts[cases[0].id]["verdict"] == verdict.SLOWER, verdicts
    assert verdicts[cases[1].id]["verdict"] != verdict.SLOWER, verdicts
    assert all(case["pairs"] >= settings.min_pairs for case in doc["cases"])
    assert doc["revisions"]["B"]["lsm_file"].startswith(str(slowed))
    assert doc["revisions"]["A"]["numba_threads"] == 1
    table = ab.markdown(doc)
    assert "slower" in table and cases[0].id in table


def test_compare_command_line_errors_and_quick_check(tmp_path, capsys):
    assert ab.main(["HEAD", "HEAD", "--op", "softmax", "--dtype", "float16", "--impl", "lsm_in_place"]) == 2
    assert "no case" in capsys.readouterr().err
    assert ab.main([str(tmp_path / "nothing"), "HEAD", "--op", "softmax", "--budget", "1"]) == 2
    # two results files: the quick check of lsm.bench.compare
    doc = {"benchmarks": []}
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(doc))
    assert ab.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2


# -- history -------------------------------------------------------------------------------------


def test_steps_are_flagged_where_the_figure_moves_and_holds():
    flat = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0]
    assert history.steps(flat, 0.1) == []
    assert history.steps([1.0, 1.0, 1.6, 1.0, 1.0], 0.1) == []  # one noisy commit in the middle
    found = history.steps([1.0, 1.01, 0.99, 0.7, 0.71, 0.69], 0.1)
    assert [(index, confirmed) for index, _, confirmed in found] == [(3, True)]
    assert found[0][1] == pytest.approx(0.70 / 1.0, rel=0.02)
    newest = history.steps([1.0, 1.0, 1.0, 1.5], 0.1)
    assert [(index, confirmed) for index, _, confirmed in newest] == [(3, False)]


def _fake_history(folder, figures):
    """One machine's folder with a document per commit, the log_softmax case at ``figures``."""
    machine = folder / "fake-machine"
    machine.mkdir(parents=True)
    for index, figure in enumerate(figures):
        info = {"op": "log_softmax", "backend": "cpu", "dtype": "float32", "shape": [4096, 1024]}
        info.update(axis=-1, impl="lsm", fraction_of_copy=figure, gbps=10 * figure, median_s=1 / figure)
        doc = {
            "commit_info": {"id": f"{index}" * 40, "time": f"2026-12-0{index + 1}T00:00:00", "dirty": False},
            "benchmarks": [{"extra_info": info}],
        }
        (machine / f"{index}.json").write_text(json.dumps(doc))
    return machine


def test_history_plots_and_reports_the_step(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    machine = _fake_history(tmp_path / "history", [0.5, 0.51, 0.49, 0.3, 0.31])
    assert [label for label, _ in history.load_history(machine)] == [f"{i}" * 8 for i in range(5)]
    out = tmp_path / "history.png"
    assert history.main("history", ["--dir", str(tmp_path / "history"), "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    printed = capsys.readouterr().out
    assert "step at 33333333" in printed and "log_softmax-cpu-float32-4096x1024-axis-1-lsm" in printed
    assert "x0.6" in printed
