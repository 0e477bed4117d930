"""The CPU backend reads a Fortran-ordered input the way its memory runs (``lsm.cpu._orient``).

A Fortran-ordered array holds the same values as the C-ordered transpose of its transpose; the
kernels must see both the same way. So every function on a Fortran array must give *bit for
bit* the result of the same call on its C-ordered twin ``np.ascontiguousarray(x.T)`` along the
mirrored axis, transposed back: the same groups through the same path (rows or columns), read
in the same order. Before the orientation, the Fortran array took the other path with strided
reads (a column kernel along a contiguous axis, or rows with a strided row), and its bits
differed from the twin's on these rows of 300 (longer than a row block's 256).
"""

import ml_dtypes
import numpy as np
import pytest

import lsm
from lsm.cpu._orient import oriented

SHAPE = (300, 37)  # rows longer than a row block, columns fewer than a tile
DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]


def _fortran(dtype, shape=SHAPE, seed=0):
    values = np.random.default_rng(seed).standard_normal(shape) * 6
    return np.asfortranarray(values.astype(dtype))


def _twin(array):
    """The C-ordered array whose transpose holds ``array``'s values."""
    return np.ascontiguousarray(array.T)


def _assert_same_bits(got, want):
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    assert got.tobytes(order="C") == np.ascontiguousarray(want).tobytes(order="C")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: np.dtype(dtype).name)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_forward_on_fortran_input_matches_its_c_twin(name, axis, dtype):
    x = _fortran(dtype)
    function = getattr(lsm, name)
    got = function(x, axis=axis)
    _assert_same_bits(got, function(_twin(x), axis=1 - axis).T)
    if name != "logsumexp":  # element-wise results take the input's memory order, as in NumPy
        assert got.flags.f_contiguous


@pytest.mark.parametrize("axis", [0, 1])
def test_masks_and_weights_follow_the_input(axis):
    x = _fortran(np.float32)
    where = np.asfortranarray(np.random.default_rng(1).random(SHAPE) > 0.3)
    b = np.asfortranarray(np.random.default_rng(2).random(SHAPE).astype(np.float32))
    _assert_same_bits(
        lsm.softmax(x, axis=axis, where=where), lsm.softmax(_twin(x), axis=1 - axis, where=where.T).T
    )
    got = lsm.logsumexp(x, axis=axis, where=where, b=b, return_sign=True)
    want = lsm.logsumexp(_twin(x), axis=1 - axis, where=where.T, b=_twin(b), return_sign=True)
    for part, twin_part in zip(got, want, strict=True):
        _assert_same_bits(part, twin_part)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("name", ["log_softmax_backward", "softmax_backward"])
def test_backward_on_fortran_input_matches_its_c_twin(name, axis):
    grad, y = _fortran(np.float32, seed=3), _fortran(np.float32, seed=4)
    function = getattr(lsm, name)
    got = function(grad, y, axis=axis)
    _assert_same_bits(got, function(_twin(grad), _twin(y), axis=1 - axis).T)
    assert got.flags.f_contiguous


@pytest.mark.parametrize("axis", [0, 1])
def test_cross_entropy_on_fortran_logits_matches_its_c_twin(axis):
    logits = _fortran(np.float32)
    target = np.random.default_rng(5).integers(0, SHAPE[axis], size=SHAPE[1 - axis])
    loss, grad = lsm.cross_entropy(logits, target, axis=axis, reduction="none", return_grad=True)
    twin_loss, twin_grad = lsm.cross_entropy(
        _twin(logits), target, axis=1 - axis, reduction="none", return_grad=True
    )
    _assert_same_bits(loss, twin_loss)
    _assert_same_bits(grad, twin_grad.T)
    assert grad.flags.f_contiguous


def test_a_3d_fortran_input_reduced_over_its_middle_axis():
    x = np.asfortranarray(np.random.default_rng(6).standard_normal((7, 300, 9)).astype(np.float32))
    twin = np.ascontiguousarray(x.transpose(2, 1, 0))
    _assert_same_bits(lsm.log_softmax(x, axis=1), lsm.log_softmax(twin, axis=1).transpose(2, 1, 0))
    _assert_same_bits(lsm.logsumexp(x, axis=1), lsm.logsumexp(twin, axis=1).T)


def test_out_that_cannot_follow_still_gets_the_right_values():
    """An ``out=`` whose strides do not merge into rows keeps the views as they are (the path
    of the input's shape): the same values within rounding, in the caller's array."""
    x = _fortran(np.float32)
    out = np.zeros((2 * SHAPE[1], 3), np.float32)[::2, 1]  # strided: cannot be merged
    lsm.logsumexp(x, axis=0, out=out)
    np.testing.assert_allclose(out, lsm.logsumexp(_twin(x), axis=1), rtol=2e-6)


# --- the views themselves -----------------------------------------------------------------------


def _canonical(array, shape3):
    return array.reshape(shape3, copy=False)


def test_the_reduced_axis_running_fastest_becomes_rows():
    x = _fortran(np.float32)  # reduced along axis 0, its contiguous one
    (view,), (result,) = oriented(
        _canonical(x, (1, *SHAPE)), [_canonical(x, (1, *SHAPE))], [np.empty((1, 37))]
    )
    assert view.shape == (37, 300, 1)
    assert view[..., 0].flags.c_contiguous
    assert result.shape == (37, 1)


def test_the_outer_axis_running_fastest_is_flipped_to_the_inner_one():
    x = _fortran(np.float32)  # reduced along axis 1: rows whose elements are 300 apart
    (view,), (result,) = oriented(
        _canonical(x, (*SHAPE, 1)), [_canonical(x, (*SHAPE, 1))], [np.empty((300, 1))]
    )
    assert view.shape == (1, 37, 300)
    assert view.flags.c_contiguous
    assert result.shape == (1, 300)


def test_c_ordered_views_and_absent_operands_are_left_alone():
    x = np.zeros((4, 5, 6), np.float32)
    operands, results = oriented(x, [x, None], [None])
    assert operands[0] is x
    assert operands[1] is None and results == [None]


def test_an_operand_that_cannot_merge_keeps_every_view_as_it_is():
    x = np.zeros((5, 4, 6), np.float32).transpose(0, 2, 1)  # the reduced axis runs fastest
    stuck = np.zeros((10, 4, 6), np.float32)[::2].transpose(0, 2, 1)  # outer stride: two groups' worth
    assert oriented(x, [x])[0][0].shape == (20, 6, 1)  # alone, x merges into rows
    operands, _ = oriented(x, [x, stuck])
    assert operands[0] is x and operands[1] is stuck
