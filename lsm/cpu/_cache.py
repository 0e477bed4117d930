"""Keep Numba's on-disk cache of the CPU kernels in step with all of their sources.

Numba invalidates a cached function only when the file that defines it changes, but the kernels
in ``_forward.py`` inline helpers from the other modules of this package: an edit to a helper
alone would leave the cached kernels running the old helper code. At import, a fingerprint of
every source file here is compared with the one stored beside the cache; on a mismatch this
package's cache files are deleted, so Numba compiles afresh.

This covers the cache folder next to the sources (Numba's choice for a writable install, such as
an editable one). A read-only install caches elsewhere, and a new install rewrites every source
file, which invalidates all of its entries anyway.
"""

import hashlib
from pathlib import Path

_PACKAGE = Path(__file__).parent
_STAMP = "lsm-kernel-sources.sha256"


def refresh(package=_PACKAGE):
    """Delete the Numba cache files of ``package`` (a folder) if any of its ``.py`` files changed
    since they were made."""
    digest = hashlib.sha256()
    for source in sorted(package.glob("*.py")):
        digest.update(source.read_bytes())
    fingerprint = digest.hexdigest()
    cache = package / "__pycache__"
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
    except OSError:  # a read-only install: Numba keeps its cache elsewhere
        pass
