"""Numba's cache of the CPU kernels: kept in step with all their sources, safe when processes
compile at once, and a private temporary folder when Numba has no writable cache folder (a
read-only install without a writable home)."""

import importlib
import os
import pkgutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time

import numba
import pytest
from numba import types
from numba.core import caching
from numba.core.registry import CPUDispatcher

import lsm.cpu
from lsm.cpu._cache import KeyNamedCacheFile, compiling, private_temporary_folder, refresh


def _cache_files(cache):
    return sorted(path.name for path in cache.iterdir())


def test_cache_is_cleared_when_any_source_changes_and_kept_otherwise(tmp_path):
    (tmp_path / "_kernels.py").write_text("kernel = 1\n")
    (tmp_path / "_helper.py").write_text("helper = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    for name in ("_kernels.kernel-1.py311.nbi", "_kernels.kernel-1.py311.1.nbc", "_kernels.cpython-311.pyc"):
        (cache / name).write_text("")

    refresh(tmp_path)  # no stamp yet: the cache may be stale, so it goes
    assert _cache_files(cache) == ["_kernels.cpython-311.pyc", "lsm-kernel-sources.sha256"]

    (cache / "_kernels.kernel-1.py311.nbi").write_text("")
    refresh(tmp_path)  # nothing changed: the new entry stays
    assert "_kernels.kernel-1.py311.nbi" in _cache_files(cache)

    (tmp_path / "_helper.py").write_text("helper = 2\n")  # only a helper changes
    refresh(tmp_path)
    assert "_kernels.kernel-1.py311.nbi" not in _cache_files(cache)


@pytest.mark.parametrize(
    ("setting", "value"), [("OPT", 0), ("DEBUGINFO_DEFAULT", 1), ("ENABLE_PROFILING", 1), ("BOUNDSCHECK", 1)]
)
def test_cache_is_cleared_when_numba_would_generate_other_code(tmp_path, monkeypatch, setting, value):
    """Numba's cache key leaves out these settings: kernels compiled under them (a profiler's
    run, a debugging session) must not be loaded by a process without them, nor the reverse."""
    (tmp_path / "_kernels.py").write_text("kernel = 1\n")
    cache = tmp_path / "__pycache__"
    refresh(tmp_path)
    (cache / "_kernels.kernel-1.py311.nbi").write_text("")
    monkeypatch.setattr(numba.config, setting, value)
    refresh(tmp_path)
    assert "_kernels.kernel-1.py311.nbi" not in _cache_files(cache)
    (cache / "_kernels.kernel-1.py311.nbi").write_text("")
    refresh(tmp_path)  # the same settings again: kept
    assert "_kernels.kernel-1.py311.nbi" in _cache_files(cache)
    monkeypatch.undo()
    refresh(tmp_path)  # back to the settings it was made with: the stamp no longer matches
    assert "_kernels.kernel-1.py311.nbi" not in _cache_files(cache)


def test_an_unwritable_cache_location_is_left_alone(tmp_path):
    (tmp_path / "_kernels.py").write_text("kernel = 1\n")
    (tmp_path / "__pycache__").write_text("not a folder")  # every write below it fails
    refresh(tmp_path)
    assert (tmp_path / "__pycache__").read_text() == "not a folder"


def test_a_cache_folder_elsewhere_is_refreshed_in_place(tmp_path):
    package, cache = tmp_path / "package", tmp_path / "numba-cache" / "cpu_0123"
    package.mkdir()
    cache.mkdir(parents=True)
    (package / "_kernels.py").write_text("kernel = 1\n")
    (cache / "_kernels.kernel-1.py311.nbi").write_text("")
    refresh(package, cache)
    assert _cache_files(cache) == ["lsm-kernel-sources.sha256"]
    assert not (package / "__pycache__").exists()


def test_the_temporary_cache_folder_is_private_and_never_another_users(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = private_temporary_folder()
    assert folder == tmp_path / f"lsm-numba-cache-{os.getuid()}"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert private_temporary_folder() == folder  # kept across processes

    folder.chmod(0o777)  # anyone could have planted cache files (pickles) in it: not used
    other = private_temporary_folder()
    assert other != folder and other.parent == tmp_path
    assert stat.S_IMODE(other.stat().st_mode) == 0o700

    folder.rmdir()
    folder.symlink_to(other)  # a link is not a folder this user made
    assert private_temporary_folder() not in (folder, other)


def test_two_processes_saving_at_once_never_name_each_others_code(tmp_path):
    """Both processes read the index before either writes it; the last index write is the second
    one's, the last data write the first one's. Numba's own numbering gives both signatures
    ``.1.nbc``, and the index would then name the first signature's code for the second."""
    processes = [KeyNamedCacheFile(str(tmp_path), "f-1.py311", "stamp") for _ in range(2)]
    data_writes = []
    for process in processes:
        process._load_index = dict  # the index each one read: still empty
        process._save_data = lambda name, data: data_writes.append((name, data))
    processes[0].save(("float32",), "code for float32")
    processes[1].save(("int16",), "code for int16")

    for name, data in reversed(data_writes):  # the first process's data lands last
        caching.IndexDataCacheFile._save_data(processes[0], name, data)
    reader = KeyNamedCacheFile(str(tmp_path), "f-1.py311", "stamp")
    assert reader.load(("int16",)) == "code for int16"
    assert reader.load(("float32",)) is None  # its index entry was lost: compiled again, no harm
    assert len({name for name, _ in data_writes}) == 2


def test_a_cached_function_is_saved_and_loaded_under_its_signatures_digests(tmp_path):
    (tmp_path / "user_module.py").write_text(
        textwrap.dedent(
            """
            from lsm.cpu._cache import njit

            @njit(cache=True)
            def add_one(x):
                return x + 1

            print(add_one(1), add_one(1.5), add_one.stats.cache_hits.total())
            """
        )
    )

    def run():
        command = [sys.executable, "-c", "import user_module"]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    assert run().split() == ["2", "2.5", "0"]  # compiled, and saved
    data_files = sorted(path.name for path in (tmp_path / "__pycache__").glob("*.nbc"))
    assert len(data_files) == 2 and not any(name.endswith((".1.nbc", ".2.nbc")) for name in data_files)
    assert run().split() == ["2", "2.5", "2"]  # both loaded from the cache


def _lsm_dispatchers():
    names = [info.name for info in pkgutil.iter_modules(lsm.cpu.__path__, "lsm.cpu.")]
    modules = [importlib.import_module(name) for name in [*names, "lsm.bench.backends"]]
    return [
        value for module in modules for value in vars(module).values() if isinstance(value, CPUDispatcher)
    ]


def test_every_cached_kernel_of_lsm_uses_the_key_named_files():
    cached = [d for d in _lsm_dispatchers() if not isinstance(d._cache, caching.NullCache)]
    assert len(cached) > 100
    assert [
        d.py_func.__qualname__ for d in cached if type(d._cache._cache_file) is not KeyNamedCacheFile
    ] == []


def test_a_process_waits_for_anothers_compile_and_loads_it(tmp_path):
    """This process holds the lock of ``add_one``'s float64 compile while a second process asks
    for that signature: the second waits, then finds the signature in the cache and loads it (no
    compile of its own). Without the lock it compiles it itself, before this process has."""
    (tmp_path / "user_module.py").write_text(
        textwrap.dedent(
            """
            from lsm.cpu._cache import njit

            @njit(cache=True)
            def add_one(x):
                return x + 1
            """
        )
    )
    waiter = textwrap.dedent(
        """
        import sys, time
        import user_module
        print("ready", flush=True)
        value = user_module.add_one(1.5)
        stats = user_module.add_one.stats
        print(value, stats.cache_hits.total(), stats.cache_misses.total(), flush=True)
        """
    )
    sys.path.insert(0, str(tmp_path))
    try:
        user_module = importlib.import_module("user_module")
        lock = user_module.add_one._cache._cache_file.lock_path((types.float64,))
        with compiling(lock):
            second = subprocess.Popen(
                [sys.executable, "-c", waiter], cwd=tmp_path, stdout=subprocess.PIPE, text=True
            )
            assert second.stdout.readline().split() == ["ready"]
            time.sleep(1.0)  # the second process is now at the lock (or, without it, compiling)
            assert user_module.add_one(2.5) == 3.5  # compiled here, under the lock, and saved
            assert user_module.add_one.stats.cache_misses.total() == 1
        output, _ = second.communicate(timeout=120)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("user_module", None)
    assert second.returncode == 0
    assert output.split() == ["2.5", "1", "0"]  # loaded from the cache, never compiled there
