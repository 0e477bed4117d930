"""Warp and block reductions for the CUDA kernels (max and sum, every thread gets the result).

A warp reduces with register shuffles (``shfl_xor_sync``, a butterfly: after five steps every
lane holds the total), a block with one shuffle reduction per warp and one over the warps'
results. The CUDA simulator has no warp shuffles; ``_numba`` gives it a model of
``shfl_xor_sync``, so the simulator runs this same butterfly code. Every kernel calls the
reductions from block-uniform control flow, as ``syncthreads`` (and the model) requires.

``build(acc)`` returns the device functions for accumulation type ``acc`` (float32 or float64);
``build_segments(width)`` the same butterfly over segments of ``width`` lanes (several short rows
per warp).
"""

import functools

import numpy as np

from ._numba import cuda

WARP = 32
MAX_WARPS = 32  # 1024 threads per block at most
_FULL_MASK = 0xFFFFFFFF


@functools.cache
def build_segments(width):
    """``(segment_max, segment_sum)``: reductions over aligned segments of ``width`` lanes of a
    warp (a power of two up to ``WARP``), every lane of a segment getting its segment's result.
    The butterfly's offsets stay below ``width``, so lane ``l`` only meets lanes ``l ^ offset`` of
    its own segment; with ``width = WARP`` they are the warp reductions."""
    offsets = tuple(offset for offset in (16, 8, 4, 2, 1) if offset < width)

    @cuda.jit(device=True)
    def segment_max(value):
        for offset in offsets:
            other = cuda.shfl_xor_sync(_FULL_MASK, value, offset)
            value = other if other > value else value
        return value

    @cuda.jit(device=True)
    def segment_sum(value):
        for offset in offsets:
            value += cuda.shfl_xor_sync(_FULL_MASK, value, offset)
        return value

    return segment_max, segment_sum


@functools.cache
def build(acc):
    """Reduction device functions for accumulation type ``acc``."""
    lowest = acc(-np.inf)
    zero = acc(0)
    warp_max, warp_sum = build_segments(WARP)

    @cuda.jit(device=True)
    def block_max(value, scratch):
        """Maximum over the block; ``scratch`` is a shared array of ``MAX_WARPS`` entries."""
        value = warp_max(value)
        warp, lane = cuda.threadIdx.x // WARP, cuda.threadIdx.x % WARP
        if lane == 0:
            scratch[warp] = value
        cuda.syncthreads()
        value = scratch[lane] if lane < cuda.blockDim.x // WARP else lowest
        value = warp_max(value)
        cuda.syncthreads()  # scratch is free again
        return value

    @cuda.jit(device=True)
    def block_sum(value, scratch):
        """Sum over the block (a tree of partial sums, so rounding grows with log(threads))."""
        value = warp_sum(value)
        warp, lane = cuda.threadIdx.x // WARP, cuda.threadIdx.x % WARP
        if lane == 0:
            scratch[warp] = value
        cuda.syncthreads()
        value = scratch[lane] if lane < cuda.blockDim.x // WARP else zero
        value = warp_sum(value)
        cuda.syncthreads()
        return value

    return {"warp_max": warp_max, "warp_sum": warp_sum, "block_max": block_max, "block_sum": block_sum}
