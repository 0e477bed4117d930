"""The CUDA backend: numba-cuda kernels for CuPy arrays, Numba device arrays and any array with
``__cuda_array_interface__`` (torch CUDA tensors included).

Imported by ``lsm._dispatch`` only when a call receives a device array, so ``import lsm`` never
loads ``numba.cuda``. ``_numba`` is the one module that imports numba-cuda; ``_call`` holds the
public functions on device arrays (``_call_losses`` the gradients and losses), ``_launch`` picks
the kernels (``_rows``, ``_columns``, ``_copy``, ``_backward``, ``_losses``), ``_config`` their
tunables.
"""
