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
on a mismatch, deletes this package's cache files there, so Numba compiles afresh. The
fingerprint covers Numba's code-generation settings too (optimisation level, debug information,
profiling, bounds checks), which its cache key leaves out.

**Safe between processes.** Numba names the data file of each compiled signature by a counter
(``<function>.1.nbc``, ``.2.nbc``, ...) taken from the index it has just read. Two processes
compiling a function for two different signatures at once (``pytest -n 2``, the workers of a
Dask cluster on a fresh install) can both take ``.1``; one's index entry then names the other's
machine code, which a third process loads for the wrong signature (a typing error at best).
:func:`njit` is ``numba.njit`` with the data files named by a digest of their signature instead
(:class:`KeyNamedCacheFile`): two signatures never share a file, and a racing index write can
only lose an entry (one more compile), never point it at another signature's code.

**One compile of a signature at a time.** Processes that need the same new signature at once
(the two workers of ``pytest -n 2``: 37 of 366 compiles in one profile; every worker of a Dask
cluster on a fresh install) would each compile it, seconds of CPU apiece for a column kernel.
:func:`njit`'s dispatchers take an advisory lock per signature (``fcntl.flock`` on
``<function>.<digest>.lock`` beside the cache files) around a compile; a process that finds the
lock taken waits for it, then finds the signature in the cache and loads it. A kernel's helpers
compile inside the kernel's compile, each under its own lock; the locks follow the call graph,
so no two processes wait on each other. A process holding a lock for longer than
``WAIT_SECONDS`` is not waited for any longer (its compile is duplicated, as without the lock),
and where ``fcntl`` does not exist (Windows) nothing is locked.
"""

import contextlib
import hashlib
import os
import stat
import tempfile
import time
import warnings
from pathlib import Path

import numba
from numba.core import caching, sigutils
from numba.core.compiler_lock import global_compiler_lock

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; processes may compile a signature at once
    fcntl = None

_PACKAGE = Path(__file__).parent
_STAMP = "lsm-kernel-sources.sha256"
WAIT_SECONDS = 600  # the longest wait for another process's compile of a signature
_POLL_SECONDS = 0.05
_held = set()  # the lock files this process holds (its compile of a kernel reaches its helpers)


def _code_settings():
    """Numba's settings that change the machine code of a signature but not its cache key: a
    kernel compiled with debug information or for a profiler (whose functions LLVM may not
    inline into their callers), at another optimisation level or with bounds checks would
    otherwise be loaded by every later process. (A profiled run that cached ``exp32`` without
    inlining made the float32 kernels compiled after it 3-4x slower.)"""
    config = numba.config
    return repr((config.OPT, config.DEBUGINFO_DEFAULT, config.ENABLE_PROFILING, config.BOUNDSCHECK))


def refresh(package=_PACKAGE, cache=None):
    """Delete the Numba cache files in ``cache`` if any ``.py`` file of ``package`` or any of
    Numba's code-generation settings (:func:`_code_settings`) changed since they were made.

    Parameters
    ----------
    package : pathlib.Path
        The folder of the sources (default: this package).
    cache : pathlib.Path, optional
        The folder of their Numba cache files (default: ``package / "__pycache__"``). Only
        ``*.nbi``, ``*.nbc`` and ``*.lock`` files are deleted; a folder that cannot be written is
        left alone.
    """
    digest = hashlib.sha256(_code_settings().encode())
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
        for entry in [*cache.glob("*.nbi"), *cache.glob("*.nbc"), *cache.glob("*.lock")]:
            entry.unlink(missing_ok=True)
        stamp.write_text(fingerprint)
    except OSError:  # nothing to clear where nothing can be written
        pass


def _digest(key):
    return hashlib.sha256(repr(key).encode()).hexdigest()[:20]


class KeyNamedCacheFile(caching.IndexDataCacheFile):
    """Numba's index-and-data cache files, each data file named by a digest of its index key."""

    def data_name(self, key):
        """``<function>.<digest>.nbc``: the same name for the same key in every process."""
        return f"{self._index_name.removesuffix('.nbi')}.{_digest(key)}.nbc"

    def lock_path(self, args):
        """The lock file of the compile of argument types ``args`` (see :func:`compiling`)."""
        return Path(self._cache_path) / f"{self._index_name.removesuffix('.nbi')}.{_digest(args)}.lock"

    def save(self, key, data):
        name = self.data_name(key)
        self._save_data(name, data)  # first: an index entry never names a file not yet written
        overloads = self._load_index()
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)


def _lock(handle):
    """Take the advisory lock on the open file ``handle``, waiting at most ``WAIT_SECONDS``;
    whether it was taken."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False  # waited long enough: compile alongside the other process
            time.sleep(_POLL_SECONDS)


@contextlib.contextmanager
def compiling(path):
    """Hold the advisory lock ``path`` (waiting for another process that holds it, at most
    ``WAIT_SECONDS``); re-entrant in this process; no lock where the file cannot be opened."""
    if fcntl is None or path in _held:
        yield
        return
    try:
        handle = open(path, "a")  # closed below, which also releases the lock
    except OSError:
        yield
        return
    with handle:
        locked = _lock(handle)
        if locked:
            _held.add(path)
        try:
            yield
        finally:
            _held.discard(path)


def _compile_once_across_processes(dispatcher, cache):
    """Wrap ``dispatcher.compile`` (which loads from the cache before compiling) in the lock of
    the signature's compile. Inside Numba's compiler lock: the threads of one process compile
    one at a time anyway, and a thread never waits on a file lock another thread holds."""
    compile_signature = dispatcher.compile

    def compile(sig):
        args, _ = sigutils.normalize_signature(sig)
        if tuple(args) in dispatcher.overloads:  # every typing of a call asks: no file then
            return compile_signature(sig)
        with global_compiler_lock, compiling(cache.lock_path(tuple(args))):
            return compile_signature(sig)

    dispatcher.compile = compile


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
            _compile_once_across_processes(dispatcher, cache)
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
