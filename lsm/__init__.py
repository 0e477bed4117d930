"""lsm: fast, numerically exact log-sum-exp kernels for NumPy: log_softmax, softmax, logsumexp,
their gradients (log_softmax_backward, softmax_backward) and losses (cross_entropy, nll_loss).

The functions take NumPy arrays (or anything ``np.asarray`` accepts) and run Numba-compiled CPU
kernels; CUDA device arrays (CuPy, Numba, torch, any ``__cuda_array_interface__``) run numba-cuda
kernels on the GPU. See ``help(lsm.log_softmax)`` for the numerical contract. ``lsm.special`` has
``scipy.special``'s ``logsumexp``, ``softmax`` and ``log_softmax``, with scipy's semantics.
The forward functions and the gradients can also be called from a user's Numba ``@njit``
functions, and ``lsm.streaming`` folds logsumexp states one term or chunk at a time (see
``docs/numba.md``).
"""

from . import (
    _njit,  # noqa: F401 (registers the @njit overloads: about 2 ms of import)
    special,
    streaming,
)
from ._api import log_softmax, logsumexp, softmax
from ._gradients import log_softmax_backward, softmax_backward
from ._losses import cross_entropy, nll_loss

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "cross_entropy",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "nll_loss",
    "softmax",
    "softmax_backward",
    "special",
    "streaming",
]
