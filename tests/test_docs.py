"""The documentation (docs/: the API reference from the docstrings, pages from the README) builds
with Sphinx, warnings as errors: a malformed docstring, a broken link or a README section that
moved fails here."""

import subprocess
import sys
from pathlib import Path

import lsm

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_documentation_builds_without_warnings(tmp_path):
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    command += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0 and completed.stderr == "", completed.stderr
    api = (tmp_path / "html" / "api.html").read_text()
    functions = [name for name in lsm.__all__ if callable(getattr(lsm, name))]
    for name in [*functions, "special.logsumexp", "special.softmax", "special.log_softmax"]:
        assert f'id="lsm.{name}"' in api, name  # every public function has its entry
    contract = (tmp_path / "html" / "contract.html").read_text()
    assert "whole row NaN" in contract  # the README's contract table, included
