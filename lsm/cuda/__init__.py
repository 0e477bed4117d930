"""The CUDA backend: numba-cuda kernels for CuPy arrays, Numba device arrays and any array with
``__cuda_array_interface__`` (torch CUDA tensors included).

Imported by ``lsm._devices`` only when a call receives a device array, so ``import lsm`` never
loads ``numba.cuda``. ``_backend`` holds the backend object (``lsm._protocol.Backend``),
``_numba`` is the one module that imports numba-cuda, ``_layout`` describes device arrays by
their strides, ``_kinds`` allocates results like the caller's arrays, ``_launch`` picks and
launches the kernels (``_forward``, ``_backward``, ``_losses``, ``_copy``), and
``_config`` holds their tunables.
"""

from ._backend import CudaBackend

__all__ = ["CudaBackend"]
