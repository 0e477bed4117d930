"""The Dask backend: lsm's functions on Dask arrays, as lazy task graphs.

Imported only when a call receives a Dask collection, so ``import lsm`` never imports Dask.
Every block of a graph runs the in-memory pipeline (``lsm._pipeline``) on the block's own
backend: NumPy blocks on the CPU kernels, CuPy blocks on the GPU ones. ``_forward`` builds the
graphs of log_softmax, softmax and logsumexp, ``_backward`` those of the gradients, ``_losses``
those of cross_entropy and nll_loss; ``_blocks`` holds what they share.

Threads: a block task runs lsm's parallel CPU kernels on its share of Numba's threads, Numba's
thread count divided by the number of lsm block tasks running at that moment in the process
(``numba.set_num_threads`` is per calling thread). One task alone uses every thread; the
threaded scheduler's concurrent tasks split them instead of oversubscribing the cores.
"""

from . import _backward, _forward, _losses


class DaskBackend:
    """Builds the graph of a call: the same five methods, with the same arguments, as
    :class:`lsm._pipeline.Pipeline`. Results are lazy, so ``out=`` and ``grad_out=`` are refused."""

    name = "dask"

    softmax = staticmethod(_forward.softmax)
    logsumexp = staticmethod(_forward.logsumexp)
    softmax_backward = staticmethod(_backward.softmax_backward)

    @staticmethod
    def cross_entropy(
        logits, target, axis, weight, ignore_index, reduction, smoothing, return_grad, grad_out
    ):
        options = ignore_index, reduction, smoothing, return_grad, grad_out
        return _losses.losses("cross_entropy", logits, target, axis, weight, *options)

    @staticmethod
    def nll_loss(logp, target, axis, weight, ignore_index, reduction):
        return _losses.losses(
            "nll_loss", logp, target, axis, weight, ignore_index, reduction, 0.0, False, None
        )


BACKEND = DaskBackend()
