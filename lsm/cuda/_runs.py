"""Vector loads: a thread reads a *run* of consecutive row elements, 16 bytes, in one instruction.

A warp's scalar loads of a contiguous row move 32 elements an instruction (128 bytes of float32,
64 of a 16-bit type); the fastest softmax kernels load 16 bytes a thread instead
(``ld.global.v4.f32``, ``ld.global.v4.u32`` for eight 16-bit elements, ``ld.global.v2.f64``):
a quarter to an eighth of the load instructions for the same bytes, and more bytes in flight
per thread. A vector load needs its 16 bytes aligned, so a pass uses them only where the array
allows it (``vector_runs``) and reads every element the other way otherwise.

Thread ``t`` of a block then takes runs ``t, t + blockDim, ...``, elements ``width * run`` to
``width * run + width - 1``, where a scalar pass takes elements ``t, t + blockDim, ...``: which
thread sees which element changes. That is free in passes whose result does not depend on it:
element-wise outputs, copies into shared memory, maxima (exact in any order; ``-0`` against
``+0`` changes no output). A sum over a thread's elements does depend on it (rounding), so a
summing pass gives a thread the same runs for every layout, read by one vector load where the
row allows it and by ``gather_run`` elsewhere, and only the loads differ: the warp rows, whose
lanes take a row in packs of a run (``_forward.build_warp_rows``), and the one-pass summaries of
the block rows (``_forward.build_summaries``). The summing passes over a row kept in shared
memory, or over a thread's single elements, keep their scalar loads
(``tests/test_cuda_resources.py`` lists the kernels that have no vector load).

- ``run_width(array)``: the elements of ``array`` in 16 bytes, a compile-time constant (4
  float32, 8 float16 or bfloat16, 2 float64).
- ``vector_runs(array, start, stop)``: how many whole runs of ``array[row, start:stop]`` (any
  ``row``) one vector load each can read: ``(stop - start) // width`` when the array's elements
  are contiguous along its rows and every run starts on a 16-byte boundary (the array's address,
  its row stride and ``start``), else 0. The elements after the last whole run are the caller's
  to read one at a time.
- ``load_run(array, row, j)``: ``array[row, j:j + width]`` as a tuple, one vector load (the
  caller has checked ``vector_runs``).
- ``gather_run(array, row, j)``: the same tuple, its elements loaded one by one (any layout):
  a pass that branches between the two keeps one copy of the code that uses the elements.

Under the CUDA simulator they are plain Python with the same answers (the simulator's arrays are
host arrays, which NumPy aligns), so the simulator runs both kinds of pass and the traffic
counter counts a run as ``width`` element reads, as the GPU's memory sees it.
"""

from ._numba import SIMULATOR, cuda

RUN_BYTES = 16  # the widest load of one thread (ld.global.v4.u32)

if SIMULATOR:

    def run_width(array):
        """The elements of ``array`` in 16 bytes."""
        return RUN_BYTES // array.itemsize

    def _address(array):
        return array.ctypes.data

    def load_run(array, row, j):
        """``array[row, j:j + width]`` as a tuple (one vector load on a GPU)."""
        return tuple(array[row, j + k] for k in range(run_width(array)))

    gather_run = load_run

else:
    from llvmlite import ir

    from ._numba import cgutils, cuda_types, intrinsic, overload

    def run_width(array):
        """The elements of ``array`` in 16 bytes (a compile-time constant)."""

    @overload(run_width, target="cuda", inline="always")
    def _run_width(array):
        width = RUN_BYTES * 8 // array.dtype.bitwidth
        return lambda array: width

    @intrinsic
    def _address(typingctx, array):
        """The address of ``array``'s first element, as an int64."""

        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            return builder.ptrtoint(data, ir.IntType(64))

        return cuda_types.int64(array), codegen

    def _run_signature(array, row, j):
        """The signature of ``load_run`` and ``gather_run``: a tuple of a run's elements."""
        return cuda_types.UniTuple(array.dtype, RUN_BYTES * 8 // array.dtype.bitwidth)(array, row, j)

    def _element_pointer(context, builder, signature, args, offset=0):
        """The address of ``array[row, j + offset]`` (``args``: the array, ``row`` and ``j``)."""
        array_type = signature.args[0]
        values = context.make_array(array_type)(context, builder, args[0])
        row, j = (
            context.cast(builder, value, kind, cuda_types.intp)
            for value, kind in zip(args[1:], signature.args[1:], strict=True)
        )
        return cgutils.get_item_pointer2(
            context,
            builder,
            data=values.data,
            shape=cgutils.unpack_tuple(builder, values.shape),
            strides=cgutils.unpack_tuple(builder, values.strides),
            layout=array_type.layout,
            inds=[row, builder.add(j, ir.Constant(j.type, offset))],
            wraparound=False,
        )

    @intrinsic
    def load_run(typingctx, array, row, j):
        """``array[row, j:j + width]`` as a tuple: one aligned load of a vector of 16 bytes."""
        dtype = array.dtype

        def codegen(context, builder, signature, args):
            pointer = _element_pointer(context, builder, signature, args)
            # 16 bytes as four 32-bit (two 64-bit) integers, the widest vector the GPU loads in
            # one instruction, whatever the element format; a 16-bit element is half of one
            word_bits = max(32, dtype.bitwidth)
            word_type, element_bits = ir.IntType(word_bits), ir.IntType(dtype.bitwidth)
            vector_type = ir.VectorType(word_type, RUN_BYTES * 8 // word_bits)
            vector = builder.load(builder.bitcast(pointer, vector_type.as_pointer()), align=RUN_BYTES)
            per_word = word_bits // dtype.bitwidth
            element_type = context.get_value_type(dtype)
            elements = []
            # little-endian: an element's bits come after its predecessors'
            for k in range(len(signature.return_type)):
                word = builder.extract_element(vector, ir.Constant(ir.IntType(32), k // per_word))
                bits = builder.lshr(word, ir.Constant(word_type, dtype.bitwidth * (k % per_word)))
                elements.append(builder.bitcast(builder.trunc(bits, element_bits), element_type))
            return context.make_tuple(builder, signature.return_type, elements)

        return _run_signature(array, row, j), codegen

    @intrinsic
    def gather_run(typingctx, array, row, j):
        """``array[row, j:j + width]`` as a tuple, its elements loaded one by one (any layout)."""

        def codegen(context, builder, signature, args):
            dtype = signature.args[0].dtype
            elements = [
                context.unpack_value(builder, dtype, _element_pointer(context, builder, signature, args, k))
                for k in range(len(signature.return_type))
            ]
            return context.make_tuple(builder, signature.return_type, elements)

        return _run_signature(array, row, j), codegen


@cuda.jit(device=True)
def vector_runs(array, start, stop):
    """How many whole runs of ``array[row, start:stop]`` ``load_run`` may read (see above)."""
    width = run_width(array)
    aligned = (
        array.strides[1] == array.itemsize
        and array.strides[0] % RUN_BYTES == 0
        and _address(array) % RUN_BYTES == 0
        and start % width == 0
    )
    return (stop - start) // width if aligned else 0
