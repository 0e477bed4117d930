"""A strided copy with conversion, the one way the CUDA backend moves data on the device.

``copy3(src, dst)`` sets ``dst[a, b, c] = src[a, b, c]`` converted to ``dst``'s type (bfloat16
through ``_elements``), for any
strides of either (one thread per element, grid-stride, 64-bit indices). The launch code uses it
to convert inputs to the computation dtype (integers, bools, ``dtype=``), to gather layouts the
kernels cannot view directly, and to scatter results into an ``out=`` with such a layout.
"""

from ._elements import narrow, widen
from ._numba import cuda, kernel


@kernel
def copy3(src, dst):
    rows, columns, inner = dst.shape
    for index in range(cuda.grid(1), rows * columns * inner, cuda.gridsize(1)):
        a, rest = index // (columns * inner), index % (columns * inner)
        dst[a, rest // inner, rest % inner] = narrow(widen(src[a, rest // inner, rest % inner]), dst)
