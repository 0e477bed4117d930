"""The CPU backend: Numba kernels over NumPy arrays (entry points in ``_launch``)."""

from ._cache import refresh

refresh()
