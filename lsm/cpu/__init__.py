"""The CPU backend: Numba kernels over NumPy arrays (the backend object in ``_backend``)."""

from ._cache import prepare

prepare()  # before any kernel is defined: Numba needs a cache folder for cache=True

from ._backend import BACKEND, CpuBackend  # noqa: E402

__all__ = ["BACKEND", "CpuBackend"]
