"""scipy's own tests of ``logsumexp``, ``softmax`` and ``log_softmax`` (``test_logsumexp.py``,
shipped inside scipy's wheel) against :mod:`lsm.special`: every real-valued test must pass, and
exactly the complex ones, listed by id in ``tests/scipy_on_lsm_special.py``, fail with lsm's
``TypeError``.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy_on_lsm_special import COMPLEX_TESTS

TESTS = Path(__file__).parent
SCIPY_TESTS = "scipy.special.tests.test_logsumexp"


def test_scipys_logsumexp_tests_pass_on_lsm_special(tmp_path):
    if importlib.util.find_spec(SCIPY_TESTS) is None:
        pytest.skip(f"this scipy ships no {SCIPY_TESTS}")
    scipy_folder = Path(importlib.util.find_spec("scipy").origin).parent
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # scipy's settings, not lsm's pyproject.toml
    results = tmp_path / "results.json"
    env = dict(os.environ, LSM_SCIPY_RESULTS=str(results), PYTHONPATH=str(TESTS))
    env.pop("SCIPY_ARRAY_API", None)  # NumPy arrays only: lsm.special on Dask is tests/test_special.py's
    command = [
        *(sys.executable, "-m", "pytest", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)),
        *("--confcutdir", str(scipy_folder), "-p", "no:cacheprovider", "-p", "scipy_on_lsm_special"),
        *("--pyargs", SCIPY_TESTS, "-q", "--tb=line"),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert results.exists(), completed.stdout[-3000:] + completed.stderr[-3000:]
    outcomes = json.loads(results.read_text())

    wrong = {test: outcome for test, outcome in outcomes.items() if outcome not in ("passed", "xfailed")}
    assert not wrong, completed.stdout[-3000:]
    assert {test for test, outcome in outcomes.items() if outcome == "xfailed"} == COMPLEX_TESTS
    passed = {test for test, outcome in outcomes.items() if outcome == "passed"}
    assert passed == set(outcomes) - COMPLEX_TESTS
    # among them, tests that lsm's own functions fail: a broadcast with b, the dtype promoted with
    # b's, axis=None by default for softmax and log_softmax
    assert {
        "TestLogSumExp::test_logsumexp_b_shape[numpy]",
        "TestLogSumExp::test_dtypes_ab[numpy-int64-float32]",
        "TestSoftmax::test_softmax_fixtures[numpy]",
        "TestLogSoftmax::test_log_softmax_noneaxis[numpy]",
    } <= passed
    assert completed.returncode == 0, completed.stdout[-3000:]
