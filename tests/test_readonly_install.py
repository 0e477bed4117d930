"""A read-only install, used by a user without a writable home: build the wheel, install it into
a folder nobody may write, and import lsm and call each public function as an unprivileged process
with ``HOME`` unset (and the user cache folder unwritable), as in a container, an HPC module tree
or a CI image.

Numba cannot cache the kernels beside the package or in the user's cache there, so lsm must fall
back to its private temporary folder and say so once, naming ``NUMBA_CACHE_DIR``.

The unprivileged process is the user ``nobody`` when this process is root and ``nobody`` can run
this interpreter; root without capabilities (``setpriv --bounding-set=-all``: file permissions
then bind it like any owner) when the interpreter is out of ``nobody``'s reach (a Python under
root's home folder); this process itself when it is not root.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

import lsm

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX file permissions and users")

ROOT = Path(__file__).resolve().parents[1]

# Run by the unprivileged process: import lsm from the read-only install, call every public
# function once, check the results against NumPy formulas, report what it saw.
CHILD = r"""
import json, os, sys, warnings
import numpy as np

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import lsm
package = os.path.dirname(lsm.__file__)
try:
    open(os.path.join(package, "probe"), "w").close()
    writable = True
except OSError:
    writable = False

x = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -3.0]])
target = np.array([2, 0])
lse = np.log(np.exp(x).sum(axis=-1, keepdims=True))
logp, p = x - lse, np.exp(x - lse)
g = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
nll = -np.mean(logp[[0, 1], target])
checks = {
    "log_softmax": (lsm.log_softmax(x), logp),
    "softmax": (lsm.softmax(x), p),
    "logsumexp": (lsm.logsumexp(x, axis=-1), lse[:, 0]),
    "log_softmax_backward": (lsm.log_softmax_backward(g, logp), g - p * g.sum(-1, keepdims=True)),
    "softmax_backward": (lsm.softmax_backward(g, p), p * (g - (g * p).sum(-1, keepdims=True))),
    "cross_entropy": (lsm.cross_entropy(x, target), nll),
    "nll_loss": (lsm.nll_loss(logp, target), nll),
}
wrong = [name for name, (got, want) in checks.items() if not np.allclose(got, want, rtol=1e-12, atol=0)]
from lsm._info import numba_cache

print(json.dumps({
    "lsm": lsm.__file__, "writable": writable, "home": os.environ.get("HOME"), "uid": os.getuid(),
    "warnings": [str(w.message) for w in caught], "wrong": wrong, "cache": numba_cache()[0],
}))
"""


def _run(prefix, code, env, cwd):
    return subprocess.run(
        [*prefix, sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def _unprivileged(env, cwd):
    """The command prefix that runs a program without privileges here, or None, with the reason."""
    if os.geteuid() != 0:
        return [], "not root"
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None, "this process is root and setpriv (util-linux) is not installed"
    import pwd

    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        reason = "there is no user nobody"
    else:
        nobody = [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        probe = _run(nobody, "import numpy, numba", env, cwd)
        if probe.returncode == 0:
            return nobody, "nobody"
        reason = f"nobody cannot run this Python: {probe.stderr.strip()[-200:]}"
    no_capabilities = [setpriv, "--bounding-set=-all", "--inh-caps=-all"]
    probe_root = _run(no_capabilities, "import numpy, numba", env, cwd)
    if probe_root.returncode == 0:
        return no_capabilities, f"root without capabilities ({reason})"
    return (
        None,
        f"neither nobody nor root without capabilities can run Python here: {probe_root.stderr[-300:]}",
    )


@pytest.fixture
def shared_tmp():
    """A temporary folder any user may read (pytest's own tmp_path is private to this user)."""
    folder = Path(tempfile.mkdtemp(prefix="lsm-readonly-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder)


def test_a_read_only_install_without_a_home_imports_and_runs_every_function(shared_tmp):
    source = shared_tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "lsm", source / "lsm", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    wheels = shared_tmp / "wheels"
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("lsm_kernels-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"lsm_kernels-{lsm.__version__}.dist-info/METADATA").decode()
    assert f"Version: {lsm.__version__}\n" in metadata  # the one version source
    assert {"lsm/py.typed", f"lsm_kernels-{lsm.__version__}.dist-info/licenses/LICENSE"} <= names

    install = shared_tmp / "install"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(install), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    for path in [install, *install.rglob("*")]:  # read-only for everyone: r-x folders, r-- files
        path.chmod(0o555 if path.is_dir() else 0o444)
    temporary = shared_tmp / "tmp"
    temporary.mkdir()
    temporary.chmod(0o777 | stat.S_ISVTX)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HOME", "NUMBA_CACHE_DIR", "PYTHONPATH") and not key.startswith("PYTEST")
    }
    env.update(PYTHONPATH=str(install), TMPDIR=str(temporary), XDG_CACHE_HOME=str(install))
    prefix, who = _unprivileged(env, shared_tmp)
    if prefix is None:
        pytest.skip(who)

    completed = _run(prefix, CHILD, env, shared_tmp)
    assert completed.returncode == 0, completed.stderr
    seen = json.loads(completed.stdout)
    assert seen["lsm"] == str(install / "lsm" / "__init__.py")
    assert not seen["writable"] and seen["home"] is None, who
    assert seen["wrong"] == []
    (warning,) = seen["warnings"]
    cache = temporary / f"lsm-numba-cache-{seen['uid']}"
    assert seen["cache"] == str(cache)
    assert f"cached in {cache}" in warning and "NUMBA_CACHE_DIR" in warning
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700 and cache.stat().st_uid == seen["uid"]
    assert list(cache.glob("*.nbc"))  # the kernels were cached there
