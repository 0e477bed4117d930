"""``lsm info``: what this installation of lsm runs on.

Everything here is probed when asked for, never at ``import lsm``: optional packages are looked
up by name without importing them, and the GPU probe imports CuPy (or ``numba.cuda``) only when
it is installed, catching any failure of a missing driver.
"""

import functools
import importlib.metadata
import importlib.util
import os
import platform
import re
from pathlib import Path

import numba
import numpy as np

from . import __version__

# Top-level modules reported as optional packages, in the order printed.
OPTIONAL_MODULES = ("scipy", "ml_dtypes", "torch", "jax", "cupy", "numba_cuda", "dask", "matplotlib", "tqdm")


def cpu_model():
    """The CPU's model name from ``/proc/cpuinfo``, else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpu_count():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


@functools.cache
def _distributions():
    return importlib.metadata.packages_distributions()  # scans every installed package: once


def installed_version(module):
    """Version of the distribution that provides the top-level ``module``, or None when absent."""
    if importlib.util.find_spec(module) is None:
        return None
    for distribution in _distributions().get(module, [module]):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown version"


DISTRIBUTION = "lsm-kernels"  # lsm's distribution name; "lsm" on the package index is another project


def other_lsm_distributions():
    """``["name version", ...]`` of the installed distributions other than lsm-kernels that also
    provide a top-level ``lsm`` package: installing one overwrites (or shadows) this lsm."""
    names = [name for name in _distributions().get("lsm", []) if _canonical(name) != DISTRIBUTION]
    found = []
    for name in dict.fromkeys(names):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(name)
    return found


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()  # the normalised form of a distribution name (PEP 503)


def numba_threading():
    """``(threading layer, thread count)``, after one parallel lsm call has made Numba choose the layer."""
    from ._api import softmax
    from .cpu._config import PARALLEL_MIN_ELEMENTS

    softmax(np.zeros(4 * PARALLEL_MIN_ELEMENTS))  # large enough for the parallel kernel
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process
        layer = "unknown"
    return layer, numba.get_num_threads()


def numba_cache():
    """``(folder, number of compiled kernel versions stored there)`` of the CPU kernels' on-disk cache.

    Numba stores one ``.nbc`` file per compiled signature of each cached function.
    """
    from .cpu import _forward

    cache = getattr(_forward.softmax_rows_serial, "_cache", None)
    folder = getattr(cache, "_cache_path", None)
    if folder is None:
        return None, 0
    return folder, len(list(Path(folder).glob("*.nbc")))


def find_gpu():
    """``(GPU name or None, how it was found or why not)``.

    Asks CuPy when it is installed, else ``numba.cuda``; a missing driver or device is reported,
    not raised.
    """
    reasons = []
    if importlib.util.find_spec("cupy") is not None:
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
                return (name.decode() if isinstance(name, bytes) else name), "found by CuPy"
            reasons.append("CuPy sees no device")
        except Exception as error:  # no driver, no device, broken install: all mean "no GPU"
            reasons.append(f"CuPy: {first_line(error)}")
    else:
        reasons.append("CuPy not installed")
    try:
        from numba import cuda

        if cuda.is_available():
            name = cuda.get_current_device().name
            return (name.decode() if isinstance(name, bytes) else name), "found by numba.cuda"
        reasons.append("numba.cuda: no CUDA driver or device")
    except Exception as error:
        reasons.append(f"numba.cuda: {first_line(error)}")
    return None, "; ".join(reasons)


def first_line(error):
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def backends(gpu):
    """Which array backends lsm can run here: ``{name: (available, detail)}``."""
    found = {"cpu": (True, "Numba CPU kernels for NumPy arrays")}
    if gpu is None:
        found["cuda"] = (False, "no GPU found")
    else:
        found["cuda"] = (True, f"numba-cuda kernels on {gpu}")
    dask_version = installed_version("dask")
    if dask_version is None:
        found["dask"] = (False, "dask is not installed (pip install 'lsm-kernels[dask]')")
    else:
        found["dask"] = (True, f"lazy graphs over the chunks' own backend (dask {dask_version})")
    return found


def environment():
    """Everything ``lsm info`` reports, as a JSON-ready dict (also the machine info of ``lsm bench``)."""
    layer, threads = numba_threading()
    cache_folder, cached = numba_cache()
    gpu, gpu_detail = find_gpu()
    return {
        "lsm_version": __version__,
        "lsm_path": str(Path(__file__).parent),
        "lsm_other_distributions": other_lsm_distributions(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity_count": usable_cpu_count(),
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "numba_threading_layer": layer,
        "numba_threading_layer_requested": str(numba.config.THREADING_LAYER),
        "numba_num_threads": threads,
        "numba_cache_dir": cache_folder,
        "numba_cached_kernels": cached,
        "gpu": gpu,
        "gpu_detail": gpu_detail,
        "backends": {
            name: {"available": ok, "detail": detail} for name, (ok, detail) in backends(gpu).items()
        },
        "optional_packages": {module: installed_version(module) for module in OPTIONAL_MODULES},
    }


def format_environment(env):
    """The human-readable ``lsm info`` report of :func:`environment`'s dict."""
    packages = ", ".join(f"{module} {version or '-'}" for module, version in env["optional_packages"].items())
    lines = [
        f"lsm {env['lsm_version']} ({env['lsm_path']})",
        *(
            f"warning: the distribution {other} also installs a top-level 'lsm' package, which "
            f"replaces or shadows this one (pip uninstall {other.split()[0]}, then reinstall {DISTRIBUTION})"
            for other in env["lsm_other_distributions"]
        ),
        f"python {env['python_version']} ({env['python_implementation']}), {env['system']} {env['machine']}",
        f"cpu: {env['cpu_model']}, {env['cpu_count']} CPUs ({env['cpu_affinity_count']} usable)",
        f"numpy {env['numpy_version']}, numba {env['numba_version']}",
        f"threads: {env['numba_num_threads']} (NUMBA_NUM_THREADS), numba threading layer "
        f"{env['numba_threading_layer']} (NUMBA_THREADING_LAYER: {env['numba_threading_layer_requested']})",
        f"numba cache: {env['numba_cache_dir'] or 'unknown'} ({env['numba_cached_kernels']} cached kernels)",
        f"gpu: {env['gpu'] or 'none'} ({env['gpu_detail']})",
        "backends:",
    ]
    for name, backend in env["backends"].items():
        state = "available" if backend["available"] else "unavailable"
        lines.append(f"  {name:<5} {state:<12} {backend['detail']}")
    lines.append(f"optional packages: {packages}")
    return "\n".join(lines)
