"""Loops the compiler must keep rolled: the output passes of the softmax and gradient kernels,
and the one-pass summaries' loop over 16-byte runs.

LLVM (in NVVM) unrolls, rotates and pipelines a loop whose trip count it can compute from its
start, stop and step, runtime values included. In the output passes, whose every trip takes an
exponential, that kept the float64 exponential's polynomial coefficients and a second trip's
temporaries in registers: 70-90 registers a thread for the float64 softmax kernels, so 33-44% of
an H100 SM's warps resident, against 47-64 registers (50-66%) rolled
(``tests/test_cuda_resources.py``; ``benchmarks/RESULTS.md``, 2026-12-08). Nothing is lost by
rolling them: each trip stores its output before the next trip loads, and with no aliasing
information on Numba's arrays no load may move above a store, so an unrolled copy's load waits
behind the previous copy's store all the same; the loads in flight come from the warps resident.
The other passes without stores (the sums) stay as they are: there unrolling does put several
loads in flight. The one-pass summaries' loop over runs (``_forward.build_summaries``) is the
exception: unrolled, its float64 kernels with weights took 66-72 registers (50-64 rolled), and
each trip's load is already a whole 16-byte run.

``step(s)`` is ``s`` passed through a ``mov`` in inline assembly marked as having a side effect:
the compiler cannot see that the loop's increment is the same on every trip (nor move the
statement out of the loop), so it cannot count the trips and leaves the loop rolled, at the cost
of one ``mov`` a trip. ``j = first; while j < stop: ...; j += step(s)`` is then a rolled
``range(first, stop, s)``.

Under the CUDA simulator ``step`` is the identity.
"""

from numba import int64

from ._numba import SIMULATOR, cuda

if SIMULATOR:

    @cuda.jit(device=True)
    def step(value):
        """``value`` (on a GPU: hidden from the loop analysis, so the loop stays rolled)."""
        return value

else:
    from llvmlite import ir

    from ._numba import intrinsic

    @intrinsic
    def step(typingctx, value):
        """``value`` as an int64, through ``mov.u64`` in inline assembly with a side effect: the
        loop that adds it stays rolled (see the module docstring)."""

        def codegen(context, builder, signature, args):
            value = context.cast(builder, args[0], signature.args[0], int64)
            word = ir.IntType(64)
            hidden = ir.InlineAsm(ir.FunctionType(word, [word]), "mov.u64 $0, $1;", "=l,l", side_effect=True)
            return builder.call(hidden, [value])

        return int64(value), codegen
