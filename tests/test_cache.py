"""Numba's cache of the CPU kernels: kept in step with all their sources, and a private temporary
folder when Numba has no writable cache folder (a read-only install without a writable home)."""

import os
import stat
import tempfile

from lsm.cpu._cache import private_temporary_folder, refresh


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
