"""A pytest plugin that runs scipy's own tests of ``logsumexp``, ``softmax`` and ``log_softmax``
against :mod:`lsm.special`.

``tests/test_special_scipy.py`` runs::

    python -m pytest --pyargs scipy.special.tests.test_logsumexp -p scipy_on_lsm_special

(this folder on ``PYTHONPATH``). After collection, the test module's names ``logsumexp``,
``softmax`` and ``log_softmax`` (imported there from ``scipy.special``) are replaced by lsm's, so
every test calls lsm. The tests whose inputs are complex, which lsm refuses with a ``TypeError``,
are marked as strict expected failures, each by its id in :data:`COMPLEX_TESTS`; every other test
must pass. The outcome of each test is written as JSON to the file named by
``LSM_SCIPY_RESULTS``.
"""

import itertools
import json
import os

import pytest

import lsm.special

SUBSTITUTED = ("logsumexp", "softmax", "log_softmax")

_DTYPES = ("float32", "float64", "int32", "int64", "complex64", "complex128")
# test_gh22601_infinite_elements's values, as pytest writes them in the ids
_INFINITIES = ("-inf", "inf")
_COMPLEX_INFINITIES = tuple(
    f"({real}{imag}j)"
    for real in ("-inf", "inf")
    for imag in ("+0", "-0", "+inf", "-inf", "+0.7533", "+2.3562", "+3.927", "+5.4978")
)
_LSE = "TestLogSumExp::"

# The ids (within scipy's test_logsumexp.py) of the tests with a complex input, which lsm refuses.
COMPLEX_TESTS = frozenset(
    [
        f"{_LSE}test_logsumexp_complex_sign[numpy]",
        f"{_LSE}test_gh21610[numpy-complex64]",
        f"{_LSE}test_gh21610[numpy-complex128]",
        f"{_LSE}test_gh21709_small_imaginary[numpy]",
        f"{_LSE}test_device[numpy-1j]",
        f"{_LSE}test_dtypes_a[numpy-complex64]",
        f"{_LSE}test_dtypes_a[numpy-complex128]",
        *(
            f"{_LSE}test_dtypes_ab[numpy-{a}-{b}]"
            for a, b in itertools.product(_DTYPES, repeat=2)
            if "complex" in a + b
        ),
        *(
            f"{_LSE}test_gh22601_infinite_elements[numpy-{x}-{y}]"
            for x, y in itertools.product(_INFINITIES + _COMPLEX_INFINITIES, repeat=2)
            if x in _COMPLEX_INFINITIES or y in _COMPLEX_INFINITIES
        ),
    ]
)

_outcomes = {}


def _short_id(nodeid):
    return nodeid.split("::", 1)[1]  # without the file, which --pyargs names in various ways


def pytest_collection_modifyitems(config, items):
    ids = {_short_id(item.nodeid) for item in items}
    stale = sorted(COMPLEX_TESTS - ids)
    if stale:
        raise pytest.UsageError(
            f"{len(stale)} complex tests listed but not collected (scipy changed?), such as {stale[:3]}; "
            f"collected: {sorted(ids)[:3]}"
        )
    for item in items:
        for name in SUBSTITUTED:
            assert hasattr(item.module, name), f"{item.module.__name__} has no {name} to substitute"
            setattr(item.module, name, getattr(lsm.special, name))
        if _short_id(item.nodeid) in COMPLEX_TESTS:
            item.add_marker(
                pytest.mark.xfail(raises=TypeError, strict=True, reason="lsm refuses complex input")
            )


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        _outcomes.setdefault(_short_id(report.nodeid), outcome)


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["LSM_SCIPY_RESULTS"], "w", encoding="utf-8") as results:
        json.dump(_outcomes, results, indent=1, sort_keys=True)
