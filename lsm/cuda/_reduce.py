"""Warp and block reductions for the CUDA kernels (max and sum, every thread gets the result).

On a GPU a warp reduces with register shuffles (``shfl_xor_sync``, a butterfly: after five
steps every lane holds the total). The CUDA simulator has no warp shuffles, so under the
simulator -- and only there -- the warp reduction goes through shared memory instead: each lane
writes its value to the ``exchange`` slot of its thread, the block synchronises, and each lane
reduces its warp's 32 slots. The kernels allocate ``exchange`` with ``EXCHANGE`` entries, which
is 1 (unused) on a GPU. Every kernel calls the reductions from block-uniform control flow, as
``syncthreads`` requires.

``build(acc)`` returns the device functions for accumulation type ``acc`` (float32 or float64).
"""

import functools

import numpy as np

from ._numba import SIMULATOR, cuda

WARP = 32
MAX_WARPS = 32  # 1024 threads per block at most
EXCHANGE = 1024 if SIMULATOR else 1  # shared-memory slots the simulator's warp reduction needs
_FULL_MASK = 0xFFFFFFFF


@functools.cache
def build(acc):
    """Reduction device functions for accumulation type ``acc``."""
    lowest = acc(-np.inf)
    zero = acc(0)

    if SIMULATOR:

        @cuda.jit(device=True)
        def warp_max(value, exchange):
            exchange[cuda.threadIdx.x] = value
            cuda.syncthreads()
            first = cuda.threadIdx.x - cuda.threadIdx.x % WARP
            result = exchange[first]
            for lane in range(1, WARP):
                other = exchange[first + lane]
                result = other if other > result else result
            cuda.syncthreads()
            return result

        @cuda.jit(device=True)
        def warp_sum(value, exchange):
            exchange[cuda.threadIdx.x] = value
            cuda.syncthreads()
            first = cuda.threadIdx.x - cuda.threadIdx.x % WARP
            result = exchange[first]
            for lane in range(1, WARP):
                result += exchange[first + lane]
            cuda.syncthreads()
            return result

    else:

        @cuda.jit(device=True)
        def warp_max(value, exchange):
            for offset in (16, 8, 4, 2, 1):
                other = cuda.shfl_xor_sync(_FULL_MASK, value, offset)
                value = other if other > value else value
            return value

        @cuda.jit(device=True)
        def warp_sum(value, exchange):
            for offset in (16, 8, 4, 2, 1):
                value += cuda.shfl_xor_sync(_FULL_MASK, value, offset)
            return value

    @cuda.jit(device=True)
    def block_max(value, scratch, exchange):
        """Maximum over the block; ``scratch`` is a shared array of ``MAX_WARPS`` entries."""
        value = warp_max(value, exchange)
        warp, lane = cuda.threadIdx.x // WARP, cuda.threadIdx.x % WARP
        if lane == 0:
            scratch[warp] = value
        cuda.syncthreads()
        value = scratch[lane] if lane < cuda.blockDim.x // WARP else lowest
        value = warp_max(value, exchange)
        cuda.syncthreads()  # scratch is free again
        return value

    @cuda.jit(device=True)
    def block_sum(value, scratch, exchange):
        """Sum over the block (a tree of partial sums, so rounding grows with log(threads))."""
        value = warp_sum(value, exchange)
        warp, lane = cuda.threadIdx.x // WARP, cuda.threadIdx.x % WARP
        if lane == 0:
            scratch[warp] = value
        cuda.syncthreads()
        value = scratch[lane] if lane < cuda.blockDim.x // WARP else zero
        value = warp_sum(value, exchange)
        cuda.syncthreads()
        return value

    return {"warp_max": warp_max, "warp_sum": warp_sum, "block_max": block_max, "block_sum": block_sum}
