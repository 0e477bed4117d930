"""Benchmark results in pytest-benchmark's JSON layout, written by ``lsm bench`` and read back.

``lsm bench`` writes what ``pytest --benchmark-json`` writes::

    {"machine_info": {...}, "commit_info": {...}, "datetime": "...", "version": "...",
     "benchmarks": [{"group", "name", "fullname", "params", "param", "extra_info", "options",
                     "stats": {"min", "max", "mean", "median", "stddev", "rounds", ...}}, ...]}

so ``scripts/bench_compare.py`` and ``scripts/bench_report.py`` read either. A case is identified
by its ``extra_info`` (op, backend, dtype, shape, axis, impl; see
:func:`lsm.bench.cases.case_key`), not by the test name, which differs between the two writers.
"""

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

from .. import __version__
from .._info import environment
from .cases import case_key


def machine_info():
    """pytest-benchmark's machine fields plus lsm's (CPU model, threads, GPU, versions)."""
    env = environment()
    return {
        "node": platform.node(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
        "release": platform.release(),
        "system": platform.system(),
        "cpu": {"brand_raw": env["cpu_model"], "count": env["cpu_count"]},
        **lsm_machine_info(env),
    }


def lsm_machine_info(env=None):
    """The machine facts lsm adds to a run (also to pytest-benchmark's, by ``benchmarks/conftest.py``)."""
    env = environment() if env is None else env
    keys = (
        "cpu_model",
        "cpu_count",
        "cpu_affinity_count",
        "numpy_version",
        "numba_version",
        "numba_threading_layer",
        "numba_num_threads",
        "gpu",
        "lsm_version",
    )
    info = {key: env[key] for key in keys}
    info["optional_packages"] = {
        name: version for name, version in env["optional_packages"].items() if version
    }
    if hasattr(os, "getloadavg"):
        # Other processes' load when the run ended: figures from a busy machine deserve less trust.
        info["load_average"] = round(os.getloadavg()[0], 2)
    return info


def _git(folder, *args):
    completed = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return completed.stdout.strip()


def commit_info():
    """The commit of the lsm checkout that is running, as pytest-benchmark records it.

    ``{"id": "unversioned", ...}`` when lsm is not running from a git checkout of itself.
    """
    package = Path(__file__).resolve().parent.parent
    unversioned = {"id": "unversioned", "time": None, "dirty": False, "project": "lsm", "branch": None}
    try:
        top = Path(_git(package, "rev-parse", "--show-toplevel")).resolve()
        if top != package.parent:  # lsm installed inside some other repository
            return unversioned
        return {
            "id": _git(top, "rev-parse", "HEAD"),
            "time": _git(top, "show", "-s", "--format=%cI", "HEAD"),
            "dirty": bool(_git(top, "status", "--porcelain", "--untracked-files=no")),
            "project": "lsm",
            "branch": _git(top, "rev-parse", "--abbrev-ref", "HEAD"),
        }
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return unversioned


def entry(case, stats, extra_info, options):
    """One ``benchmarks`` entry for ``case``."""
    return {
        "group": case.group,
        "name": case.id,
        "fullname": f"lsm bench::{case.id}",
        "params": {"case": case.id},
        "param": case.id,
        "extra_info": extra_info,
        "options": options,
        "stats": stats,
    }


def document(entries, machine=None, commit=None):
    """The whole results document for ``entries``."""
    return {
        "machine_info": machine_info() if machine is None else machine,
        "commit_info": commit_info() if commit is None else commit,
        "benchmarks": entries,
        "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "version": __version__,
        "generator": "lsm bench",
    }


def write(doc, path):
    Path(path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def load(path):
    """A results document from ``path`` (written by ``lsm bench`` or ``pytest --benchmark-json``).

    Raises
    ------
    ValueError
        If the file is not JSON or has no ``benchmarks`` list.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ValueError(f"{path}: no 'benchmarks' list: not a pytest-benchmark or lsm bench result")
    return doc


def timed_cases(doc):
    """``{case key: extra_info}`` of the document's cases that carry throughput figures.

    Untimed entries (a smoke run with ``--benchmark-disable``) and foreign benchmarks without
    lsm's ``extra_info`` are left out.
    """
    found = {}
    for bench in doc["benchmarks"]:
        info = bench.get("extra_info") or {}
        if "fraction_of_copy" in info and "op" in info:
            found[case_key(info)] = info
    return found
