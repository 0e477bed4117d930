"""A typed user program for mypy (``tests/test_typing.py``): every public function called the way
users call it, each result checked with ``assert_type``, and wrong calls that mypy must refuse.

Not a test module (pytest collects ``test_*.py``) and never run: mypy reads it. An annotation that
says the wrong kind of result fails an ``assert_type``; one that accepts a wrong call leaves its
``# type: ignore[code]`` unused, which the strict configuration in pyproject.toml reports.
"""

from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
from numpy.typing import NDArray

import lsm
import lsm.special
from lsm.__main__ import main

if TYPE_CHECKING:
    from typing_extensions import assert_type

Floating = np.floating[Any]
FloatArray = NDArray[np.floating[Any]]
HostResult = FloatArray | Floating


class DeviceArray:
    """Stands for a GPU array (CuPy, a Numba device array): it has the CUDA array interface."""

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": (3,), "typestr": "<f4", "data": (0, False), "version": 3}


def forward(
    x: NDArray[np.float32], scalar: np.float16, device: DeviceArray, lazy: da.Array, flag: bool
) -> None:
    for func in (lsm.log_softmax, lsm.softmax):
        assert_type(func(x), HostResult)  # 0-d arrays give NumPy scalars
        assert_type(func(x, 0, dtype=np.float64, where=x > 0), HostResult)
        assert_type(func([1.0, 2.0], axis=(0,)), FloatArray)
        assert_type(func(2.0), Floating)
        assert_type(func(scalar, None, dtype="bfloat16"), Floating)
        assert_type(func(x, out=np.empty_like(x)), HostResult)
        assert_type(func(device), DeviceArray)
        assert_type(func(device, out=device, where=device), DeviceArray)
        assert_type(func(lazy, -1), da.Array)

    assert_type(lsm.logsumexp(x), HostResult)
    assert_type(lsm.logsumexp([0.0, -40.0]), HostResult)
    assert_type(lsm.logsumexp(1.0, keepdims=True), Floating)
    assert_type(lsm.logsumexp(x, 1, b=x, return_sign=True), tuple[HostResult, HostResult])
    assert_type(lsm.logsumexp(1.0, return_sign=True), tuple[Floating, Floating])
    assert_type(lsm.logsumexp(x, return_sign=flag), HostResult | tuple[HostResult, HostResult])
    assert_type(lsm.logsumexp(device, b=device), DeviceArray)
    assert_type(lsm.logsumexp(device, return_sign=True), tuple[DeviceArray, DeviceArray])
    assert_type(lsm.logsumexp(lazy, axis=None, keepdims=True), da.Array)
    assert_type(lsm.logsumexp(lazy, return_sign=flag), da.Array | tuple[da.Array, da.Array])


def gradients(x: NDArray[np.float64], device: DeviceArray, lazy: da.Array) -> None:
    for func in (lsm.log_softmax_backward, lsm.softmax_backward):
        assert_type(func(x, lsm.log_softmax(x)), HostResult)
        assert_type(func([1.0, 0.0], x, axis=-1, where=x > 0), FloatArray)
        assert_type(func(1.0, 0.0), Floating)
        assert_type(func(x, x, out=x), HostResult)
        assert_type(func(device, device, out=device), DeviceArray)
        assert_type(func(lazy, lazy), da.Array)


def losses(
    logits: NDArray[np.float32], target: NDArray[np.int64], device: DeviceArray, lazy: da.Array
) -> None:
    assert_type(lsm.cross_entropy(logits, target), Floating)
    assert_type(lsm.cross_entropy(logits, [0, 2], 1, weight=[1.0, 2.0, 0.5], reduction="sum"), Floating)
    assert_type(lsm.cross_entropy(logits, target, reduction="none"), HostResult)
    assert_type(lsm.cross_entropy(logits, target, return_grad=True), tuple[Floating, FloatArray])
    assert_type(
        lsm.cross_entropy(logits, logits, label_smoothing=0.1, return_grad=True, grad_out=logits),
        tuple[Floating, FloatArray],
    )
    assert_type(
        lsm.cross_entropy(logits, target, reduction="none", return_grad=True), tuple[HostResult, FloatArray]
    )
    assert_type(lsm.cross_entropy(device, device, ignore_index=np.int64(0)), DeviceArray)
    assert_type(lsm.cross_entropy(device, device, return_grad=True), tuple[DeviceArray, DeviceArray])
    assert_type(lsm.cross_entropy(lazy, lazy, axis=np.int64(1)), da.Array)

    assert_type(lsm.nll_loss(lsm.log_softmax(logits), target), Floating)
    assert_type(lsm.nll_loss(logits, target, reduction="none"), HostResult)
    assert_type(lsm.nll_loss(device, device, weight=device), DeviceArray)
    assert_type(lsm.nll_loss(lazy, lazy), da.Array)


def special(a: NDArray[np.float64], device: DeviceArray, lazy: da.Array, flag: bool) -> None:
    assert_type(lsm.special.logsumexp(a), HostResult)
    assert_type(lsm.special.logsumexp([1, 2], b=[1, -1], return_sign=True), tuple[HostResult, HostResult])
    assert_type(lsm.special.logsumexp(a, 0, a, True, True), tuple[HostResult, HostResult])
    assert_type(lsm.special.logsumexp(a, return_sign=flag), HostResult | tuple[HostResult, HostResult])
    assert_type(lsm.special.logsumexp(device, keepdims=True), DeviceArray)
    assert_type(lsm.special.logsumexp(lazy, return_sign=True), tuple[da.Array, da.Array])
    for func in (lsm.special.softmax, lsm.special.log_softmax):
        assert_type(func(a), HostResult)
        assert_type(func([[1.0, 2.0]], axis=1), FloatArray)
        assert_type(func(3), Floating)
        assert_type(func(device), DeviceArray)
        assert_type(func(lazy, axis=(0, 1)), da.Array)


def command() -> None:
    assert_type(main(), int)
    assert_type(main(["info", "--json"]), int)


def wrong_calls(x: NDArray[np.float64], device: DeviceArray) -> None:
    """Calls lsm refuses at run time, and mypy before."""
    lsm.log_softmax(x, axis=[0, 1])  # type: ignore[call-overload]  # a tuple of axes, not a list
    lsm.softmax(x, -1, None)  # type: ignore[call-overload]  # dtype is keyword-only
    lsm.logsumexp(x, keepdims="yes")  # type: ignore[call-overload]
    lsm.cross_entropy(x, x, reduction="average")  # type: ignore[call-overload]
    lsm.nll_loss(x, x, axis=(0, 1))  # type: ignore[call-overload]  # one class axis
    lsm.log_softmax_backward(x)  # type: ignore[call-overload]  # y is needed
    lsm.special.softmax(x, -1, None)  # type: ignore[call-overload]  # scipy's takes no dtype
    lsm.softmax(device, out=x)  # type: ignore[call-overload]  # out is of the input's kind


def narrowed(x: NDArray[np.float64]) -> FloatArray:
    """An annotation that promised arrays only would be false: a 0-d ``x`` gives a NumPy scalar."""
    return lsm.softmax(x)  # type: ignore[return-value]
