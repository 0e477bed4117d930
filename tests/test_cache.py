"""The guard that keeps Numba's cache of the CPU kernels in step with all their sources."""

from lsm.cpu._cache import refresh


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
