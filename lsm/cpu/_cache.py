"""Where Numba caches the CPU kernels, and keeping that cache in step with all of their sources.

**Where.** The kernels are compiled with ``cache=True``. Numba caches a function beside its
source (``lsm/cpu/__pycache__``, for a writable install such as an editable one), else in the
user's cache folder (``~/.cache/numba``), or wherever ``NUMBA_CACHE_DIR`` says; when none of
them is writable (a read-only install run without a writable home: containers, HPC module
trees, CI images) it refuses to compile at all (``cannot cache function ...: no locator
available``). :func:`prepare` asks Numba's own locators first; when they all fail, it adds a
locator of last resort for this package's files only, a private folder in the temporary
directory (``lsm-numba-cache-<uid>``, made by this user with mode 0o700, never one another user
made: cache files are unpickled), and warns once, naming ``NUMBA_CACHE_DIR``.

**In step.** Numba invalidates a cached function only when the file that defines it changes, but
the kernels in ``_forward.py`` inline helpers from the other modules of this package: an edit to
a helper alone would leave the cached kernels running the old helper code. :func:`refresh`
compares a fingerprint of every source file here with the one stored in the cache folder and,
on a mismatch, deletes this package's cache files there, so Numba compiles afresh.

**Safe between processes.** Numba names the data file of each compiled signature by a counter
(``<function>.1.nbc``, ``.2.nbc``, ...) taken from the index it has just read. Two processes
compiling a function for two different signatures at once (``pytest -n 2``, the workers of a
Dask cluster on a fresh install) can both take ``.1``; one's index entry then names the other's
machine code, which a third process loads for the wrong signature (a typing error at best).
:func:`njit` is ``numba.njit`` with the data files named by a digest of their signature instead
(:class:`KeyNamedCacheFile`): two signatures never share a file, and a racing index write can
only lose an entry (one more compile), never point it at another signature's code.
"""

import hashlib
import os
import stat
import tempfile
import warnings
from pathlib import Path

import numba
from numba.core import caching

_PACKAGE = Path(__file__).parent
_STAMP = "lsm-kernel-sources.sha256"


def refresh(package=_PACKAGE, cache=None):
    """Delete the Numba cache files in ``cache`` if any ``.py`` file of ``package`` changed since
    they were made.

    Parameters
    ----------
    package : pathlib.Path
        The folder of the sources (default: this package).
    cache : pathlib.Path, optional
        The folder of their Numba cache files (default: ``package / "__pycache__"``). Only
        ``*.nbi`` and ``*.nbc`` files are deleted; a folder that cannot be written is left alone.
    """
    digest = hashlib.sha256()
    for source in sorted(package.glob("*.py")):
        digest.update(source.read_bytes())
    fingerprint = digest.hexdigest()
    cache = package / "__pycache__" if cache is None else cache
    stamp = cache / _STAMP
    try:
        if stamp.read_text() == fingerprint:
            return
    except OSError:  # no stamp yet
        pass
    try:
        cache.mkdir(exist_ok=True)
        for entry in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            entry.unlink(missing_ok=True)
        stamp.write_text(fingerprint)
    except OSError:  # nothing to clear where nothing can be written
        pass


class KeyNamedCacheFile(caching.IndexDataCacheFile):
    """Numba's index-and-data cache files, each data file named by a digest of its index key."""

    def data_name(self, key):
        """``<function>.<digest>.nbc``: the same name for the same key in every process."""
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
        return f"{self._index_name.removesuffix('.nbi')}.{digest}.nbc"

    def save(self, key, data):
        name = self.data_name(key)
        self._save_data(name, data)  # first: an index entry never names a file not yet written
        overloads = self._load_index()
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)


def njit(**options):
    """``numba.njit(**options)`` whose cache, with ``cache=True``, uses :class:`KeyNamedCacheFile`.

    The only way this package's kernels are compiled with ``cache=True``:
    ``tests/test_cache.py`` checks every cached dispatcher of lsm.
    """
    decorate = numba.njit(**options)

    def decorate_race_free(function):
        dispatcher = decorate(function)
        cache = getattr(dispatcher._cache, "_cache_file", None)  # None without cache=True
        if cache is not None:
            cache.__class__ = KeyNamedCacheFile  # same state, a different save
        return dispatcher

    return decorate_race_free


class _TemporaryLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Numba's cache locator of last resort for the files of this package: ``folder``."""

    folder = None  # set by prepare() when Numba's own locators all fail

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def get_cache_path(self):
        return str(self.folder)

    @classmethod
    def from_function(cls, py_func, py_file):
        if cls.folder is None or Path(py_file).parent != _PACKAGE:
            return None
        return super().from_function(py_func, py_file)


def numba_cache_folder(package=_PACKAGE):
    """The folder in which Numba would cache functions defined in ``package``, or None.

    Numba's locators are asked in Numba's order, as ``@njit(cache=True)`` asks them (each one
    creates its folder if it can, as Numba would).
    """
    source = str(package / Path(__file__).name)
    for locator_class in caching.CacheImpl._locator_classes:
        locator = locator_class.from_function(refresh, source)
        if locator is not None:
            return Path(locator.get_cache_path())
    return None


def private_temporary_folder():
    """A cache folder in the temporary directory that only this user can write.

    ``<tmp>/lsm-numba-cache-<uid>``, kept across processes, when this user made it (a real
    folder, owned by this user, writable by no one else); else a fresh ``mkdtemp`` folder.
    """
    if hasattr(os, "getuid"):
        folder = Path(tempfile.gettempdir()) / f"lsm-numba-cache-{os.getuid()}"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = folder.lstat()
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022:
                return folder
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="lsm-numba-cache-"))


def prepare(package=_PACKAGE):
    """Make sure Numba can cache the kernels of ``package`` (before they are defined), then
    :func:`refresh` that cache.

    Raises
    ------
    RuntimeError
        When neither Numba's cache folders nor a temporary directory can be written.
    """
    folder = numba_cache_folder(package)
    if folder is None:
        try:
            folder = private_temporary_folder()
        except OSError as error:
            raise RuntimeError(
                "lsm: Numba cannot cache lsm's compiled kernels: the install is read-only, the "
                "user's cache folder is not writable and there is no usable temporary directory; "
                "set NUMBA_CACHE_DIR to a writable folder"
            ) from error
        _TemporaryLocator.folder = folder
        caching.CacheImpl._locator_classes.append(_TemporaryLocator)
        warnings.warn(
            "lsm: Numba cannot cache lsm's compiled kernels beside the package (a read-only install) "
            f"or in the user's cache folder (no writable home), so they are cached in {folder}; set "
            "NUMBA_CACHE_DIR to a writable folder to choose the place and silence this warning",
            stacklevel=2,
        )
    refresh(package, folder)
