"""lsm: fast, numerically exact log-sum-exp kernels (log_softmax, softmax, logsumexp) for NumPy.

The functions take NumPy arrays (or anything ``np.asarray`` accepts) and run Numba-compiled CPU
kernels; CUDA device arrays (CuPy, Numba, torch, any ``__cuda_array_interface__``) run numba-cuda
kernels on the GPU. See ``help(lsm.log_softmax)`` for the numerical contract.
"""

from ._api import log_softmax, logsumexp, softmax

__version__ = "0.1.0"
__all__ = ["__version__", "log_softmax", "logsumexp", "softmax"]
