"""The ``lsm`` command line."""

import io
import subprocess
import sys

import pytest

from lsm.__main__ import demo, main


def test_demo_shows_log_softmax_finite_where_log_softmax_of_softmax_underflows():
    stream = io.StringIO()
    demo(stream)
    lines = stream.getvalue().splitlines()
    first_row = next(line for line in lines if line.split()[:1] == ["-999.0"])
    _, probability, naive, exact = first_row.split()
    assert float(probability) == 0.0
    assert naive == "-inf"
    assert float(exact) == -1005.33141


def test_python_dash_m_lsm_demo_runs_as_a_module():
    completed = subprocess.run(
        [sys.executable, "-m", "lsm", "demo"], capture_output=True, text=True, check=True, timeout=300
    )
    assert "-1005.33141" in completed.stdout
    assert "logsumexp(x) = 6.33141" in completed.stdout


def test_main_requires_a_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert "demo" in capsys.readouterr().err
