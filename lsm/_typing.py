"""The types in lsm's public signatures, for type checkers (nothing here runs in a call).

A result is of the kind of the call's first array argument (``x``, ``grad``, ``logits``, ``logp``):

- NumPy arrays and everything else ``np.asarray`` takes (lists, Python and NumPy scalars) give
  NumPy arrays, and a NumPy scalar for a 0-d result (:data:`HostResult`);
- device arrays (CuPy, Numba device arrays, torch tensors: anything declaring
  ``__cuda_array_interface__``) and Dask collections give the same kind of array, a 0-d result
  included (the type variable :data:`Array`).

What the annotations cannot say: a Dask collection passed only as another operand (``where``,
``b``, a target, a weight) makes the whole call a Dask graph, whose result is a Dask array.
"""

from collections.abc import Sequence
from typing import Any, Literal, Protocol, SupportsIndex, TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray


class CudaArray(Protocol):
    """A GPU array: CuPy arrays, Numba device arrays, torch tensors (which declare the attribute
    on the CPU too), anything with the CUDA array interface."""

    @property
    def __cuda_array_interface__(self) -> Any: ...


class DaskCollection(Protocol):
    """A Dask array (lsm recognises Dask collections by their graph)."""

    def __dask_graph__(self) -> Any: ...


#: An array argument: anything ``np.asarray`` takes, a device array or a Dask array.
ArrayInput: TypeAlias = ArrayLike | CudaArray | DaskCollection
#: An input that is 0-d on the host: its result is a NumPy scalar.
HostScalar: TypeAlias = float | np.generic
#: A host input that is at least 1-d (a list or tuple): its result is a NumPy array.
HostSequence: TypeAlias = Sequence[Any]
#: A floating NumPy scalar: the result of a 0-d host computation.
Floating: TypeAlias = np.floating[Any]
#: A floating NumPy array.
FloatArray: TypeAlias = NDArray[np.floating[Any]]
#: The result of a host computation whose dimension the types do not tell.
HostResult: TypeAlias = FloatArray | Floating
#: An array whose results are of its own kind: a device array, a torch tensor or a Dask array.
Array = TypeVar("Array", bound=CudaArray | DaskCollection)
#: An axis, a tuple of axes, or None for all of them.
Axis: TypeAlias = SupportsIndex | tuple[SupportsIndex, ...] | None
#: The class axis of a loss: one integer.
ClassAxis: TypeAlias = int | np.integer[Any]
#: The reductions of the losses.
Reduction: TypeAlias = Literal["mean", "sum", "none"]
