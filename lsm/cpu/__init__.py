"""The CPU backend: Numba kernels over NumPy arrays (the backend object in ``_backend``)."""

from ._backend import BACKEND
from ._cache import refresh

refresh()

__all__ = ["BACKEND"]
