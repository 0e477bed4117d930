"""Column kernels: groups that are columns ``x[o, :, i]`` of the canonical ``(outer, n, inner)`` view.

One thread per column, consecutive threads on consecutive ``i``: every step along the reduced
axis is one coalesced read of adjacent elements across a warp. Each thread walks its column
three times (max, sums, output) with compensated sums, like the CPU column tiles. Columns are
taken in a grid-stride loop with 64-bit indices, so any number of them runs on a capped grid.
"""

import functools

import numpy as np

from . import _group
from ._numba import cuda


@functools.cache
def build(acc):
    """The column kernels for accumulation type ``acc``."""
    g = _group.build(acc)
    included, weight, add_term = g["included"], g["weight"], g["add_term"]
    compensated_total, normaliser = g["compensated_total"], g["normaliser"]
    softmax_value, store_logsumexp = g["softmax_value"], g["store_logsumexp"]
    lowest, zero = acc(-np.inf), acc(0)

    @cuda.jit(device=True)
    def column_summary(x, where, b, o, i):
        n = x.shape[1]
        m = lowest
        for j in range(n):
            if included(where, b, (o, j, i)):
                value = acc(x[o, j, i])
                m = value if value > m else m
        at_max, total, compensation = zero, zero, zero
        for j in range(n):
            if included(where, b, (o, j, i)):
                at_max, total, compensation = add_term(
                    acc(x[o, j, i]), weight(b, (o, j, i)), m, at_max, total, compensation
                )
        return m, at_max, compensated_total(total, compensation)

    @cuda.jit
    def softmax_columns(x, where, out, log):
        outer, n, inner = x.shape
        masked = lowest if log else zero
        for column in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
            o, i = column // inner, column % inner
            m, at_max, rest = column_summary(x, where, None, o, i)
            shift, log_norm, inv_norm = normaliser(m, at_max, rest)
            for j in range(n):
                if included(where, None, (o, j, i)):
                    out[o, j, i] = softmax_value(acc(x[o, j, i]), shift, log_norm, inv_norm, log)
                else:
                    out[o, j, i] = masked

    @cuda.jit
    def logsumexp_columns(x, where, b, lse, sign):
        outer, _, inner = x.shape
        for column in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
            o, i = column // inner, column % inner
            m, at_max, rest = column_summary(x, where, b, o, i)
            store_logsumexp(lse, sign, (o, i), m, at_max, rest)

    return {"softmax_columns": softmax_columns, "logsumexp_columns": logsumexp_columns}
