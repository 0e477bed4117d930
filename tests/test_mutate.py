"""scripts/mutate.py: its catalogue keeps applying to the sources, and it reads pytest's verdicts.

The mutation runs themselves take an hour (docs/mutations.md); these checks take milliseconds
and fail as soon as an edit of ``lsm/`` leaves a mutation without its text, so the catalogue
cannot rot unnoticed.
"""

import importlib.util
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "scripts" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


mutate = _load()


def test_every_mutation_applies_to_the_sources_exactly_once():
    for mutation in mutate.CATALOGUE:
        mutate.check(mutation)
    ids = [mutation.id for mutation in mutate.CATALOGUE]
    assert len(set(ids)) == len(ids) >= 30
    areas = {mutation.area for mutation in mutate.CATALOGUE}
    assert areas == {"cpu", "cuda (simulator)", "dask", "planning and validation"}


def test_every_step_names_test_files_that_exist():
    for mutation in mutate.CATALOGUE:
        assert mutation.steps, mutation.id
        for args, _ in mutation.steps:
            files = [token for token in shlex.split(args) if token.endswith(".py")]
            assert files and all((ROOT / name).is_file() for name in files), (mutation.id, args)


def test_outcome_reads_pytest_verdicts():
    assert mutate.outcome(0, "3 passed in 1.00s") == ("survived", "")
    failed = "FAILED tests/test_a.py::test_b[cpu-x] - AssertionError: off\n1 failed, 2 passed"
    assert mutate.outcome(1, failed) == ("caught", "tests/test_a.py::test_b[cpu-x]")
    errored = "ERROR tests/test_a.py - ImportError: no\n!!! Interrupted: 1 error during collection"
    assert mutate.outcome(2, errored) == ("caught", "tests/test_a.py")
    assert mutate.outcome(5, "no tests ran in 0.01s") == ("error", "")
