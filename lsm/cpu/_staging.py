"""Staging buffers for kernels whose output is also their input (gradients written in place).

A loop ``out[j] = f(x[j])`` vectorises only if LLVM can rule out overlap between ``out`` and
``x``; when it cannot prove it, it checks at run time and falls back to the scalar loop on
overlap. Exact aliasing (``out`` is ``x``, as with ``cross_entropy(..., grad_out=logits)``) is
harmless for such a loop, but the check still sends it down the scalar path, which costs a factor
of several with ``fast_exp`` inside. Writing the values into a small cache-resident buffer first
and copying the buffer into ``out`` keeps both loops vectorised, for the price of one copy
through the cache.

The row drivers take ``buffers``: None (no aliasing: write directly) or one buffer row per
worker, each worker taking a contiguous share of the rows.
"""

from numba import types
from numba.extending import overload

from ._cache import njit


def stage_copy(buffer, out):
    """Copy ``buffer`` into ``out`` (same length); nothing when ``buffer`` is None."""


@overload(stage_copy, inline="always")
def _stage_copy_overload(buffer, out):
    if buffer is None or isinstance(buffer, types.NoneType):
        return lambda buffer, out: None

    def copy(buffer, out):
        for j in range(out.shape[0]):
            out[j] = buffer[j]

    return copy


@njit(cache=True)
def worker_share(n, workers, worker):
    """``(start, stop)`` of worker ``worker``'s contiguous share of ``n`` items."""
    base, extra = divmod(n, workers)
    start = worker * base + min(worker, extra)
    return start, start + base + (1 if worker < extra else 0)
