"""Which way round the CPU kernels see a canonical view: the way its memory runs.

The canonical view ``(outer, n, inner)`` of a call follows the input's *shape* (``lsm._plan``),
but the kernels are fast only when its fastest-running axis is the one they run along: ``n``
for the row kernels (``inner == 1``), ``inner`` for the column kernels. A Fortran-ordered
input has it the other way round: reduced along its contiguous axis it reached the column
kernels with a strided ``inner`` axis, reduced along its strided axis the row kernels with
strided rows, 5-23 times slower than the same data in C order. :func:`oriented` gives the
same groups, in views that let the kernels read memory in order:

- **flip**: the outer axis runs fastest. ``(outer, n, inner)`` reversed is
  ``(inner, n, outer)``: column ``(o, i)`` becomes column ``(i, o)``, and the new inner axis
  runs fastest. A per-group result ``(outer, inner)`` is transposed alike.
- **rows**: the reduced axis runs fastest and ``inner > 1``: every group is a contiguous run,
  so ``(outer, n, inner)`` seen as ``(outer, inner, n)`` and merged to ``(outer * inner, n,
  1)`` is the row case. A per-group result becomes ``(outer * inner, 1)``. The merge needs no
  copy when ``outer == 1`` or the outer stride spans the inner axis, for every operand; if one
  does not allow it (a broadcast mask, an ``out=`` with its own strides), the views stay as
  they are.

Which way is decided from the input alone, so every operand of a call (mask, weights,
outputs) follows it, and a call gives the same bits each time. Flipped or not, each group is
reduced by the same per-group arithmetic of its path; only which path (rows or columns) takes
a group can change with the input's memory order.
"""


def _fastest_axis(view):
    """The axis of ``view`` with the smallest nonzero stride among those longer than 1, or None."""
    moving = [
        (abs(stride), axis)
        for axis, (size, stride) in enumerate(zip(view.shape, view.strides, strict=True))
        if size > 1 and stride
    ]
    return min(moving)[1] if moving else None


def _flip(view):
    return None if view is None else view.T


def _as_rows(view):
    """``(outer, n, inner)`` as ``(outer * inner, n, 1)``, or ``(outer, inner)`` as
    ``(outer * inner, 1)``; None when the strides do not merge without a copy."""
    outer, inner = view.shape[0], view.shape[-1]
    moved = view.transpose(0, 2, 1) if view.ndim == 3 else view
    try:
        return moved.reshape((outer * inner, *moved.shape[2:], 1), copy=False)
    except ValueError:
        return None


def oriented(x, operands, results=()):
    """``(operands, results)`` as the kernels read them fastest, judged by ``x``'s memory.

    Parameters
    ----------
    x : ndarray
        The canonical ``(outer, n, inner)`` view of the call's input (it decides the way).
    operands : sequence of ndarray or None
        Canonical 3-d views of the same shape as ``x`` (``x`` itself among them, masks,
        weights, element-wise outputs); None entries stay None.
    results : sequence of ndarray or None
        Canonical 2-d ``(outer, inner)`` views of per-group results or inputs.

    Returns
    -------
    tuple of (list, list)
        The operands and results, flipped, merged into rows, or unchanged (module docstring).
    """
    operands, results = list(operands), list(results)
    if x.flags.c_contiguous and (x.shape[1] > 1 or x.shape[2] > 1):
        return operands, results  # the common case, on every call's path: its last long axis runs fastest
    fastest = _fastest_axis(x)
    if fastest == 0:
        return [_flip(view) for view in operands], [_flip(view) for view in results]
    if fastest == 1 and x.shape[2] > 1:
        views = operands + results
        moved = [None if view is None else _as_rows(view) for view in views]
        if all((view is None) == (original is None) for view, original in zip(moved, views, strict=True)):
            return moved[: len(operands)], moved[len(operands) :]
    return operands, results
