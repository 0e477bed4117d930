"""The annotations of the public functions hold under mypy (configured in pyproject.toml): the
public layer checks strictly, a typed user program (``tests/typing_usage.py``) gets the kinds of
results the annotations promise, and wrong calls are refused."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USAGE = Path(__file__).with_name("typing_usage.py")


@pytest.fixture(scope="module")
def mypy(tmp_path_factory):
    """Run ``python -m mypy ARGS`` from the repository root (its configuration) with one cache for
    this module's runs; return the exit status and the output."""
    cache = tmp_path_factory.mktemp("mypy_cache")

    def run(*args):
        command = [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-color-output", *args]
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        return completed.returncode, completed.stdout + completed.stderr

    return run


def test_the_public_layer_checks_strictly(mypy):
    status, output = mypy()  # the files named in [tool.mypy]
    assert status == 0 and "Success: no issues found in 7 source files" in output, output


def test_a_user_program_gets_the_promised_kinds(mypy):
    status, output = mypy(str(USAGE))
    assert status == 0 and "Success" in output, output


def test_a_wrong_call_is_reported(mypy, tmp_path):
    program = tmp_path / "wrong.py"
    program.write_text(
        "import numpy as np\nimport lsm\n\n"
        "x = np.zeros(3)\n"
        'lsm.log_softmax(x, axis="a")\n'
        "lsm.cross_entropy(x, np.zeros(3), return_grad=True)[1].round(2)\n"
    )
    status, output = mypy(str(program))
    assert status == 1, output
    assert 'wrong.py:5: error: No overload variant of "log_softmax" matches argument types' in output, output
    assert '"str"  [call-overload]' in output, output
    assert "Found 1 error in 1 file" in output, output  # line 6 is right: the gradient is an array
