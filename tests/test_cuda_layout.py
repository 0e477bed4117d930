"""The CUDA backend's strided views are pure metadata; they must agree with NumPy's reshapes."""

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install -e '.[test]')")

from lsm._plan import canonical_layout
from lsm._validate import axes
from lsm.cuda._layout import Strided, broadcast, contiguous_strides, merged_strides

BASE = np.zeros((4, 6, 10))
VIEWS = {
    "contiguous": BASE,
    "transposed": BASE.transpose(2, 0, 1),
    "fortran": np.asfortranarray(BASE),
    "sliced": BASE[:, ::2, 1:9],
    "reversed": BASE[::-1, :, ::-3],
    "unit-axis": BASE[:, :1, :],
}
AXES = [0, 1, 2, -1, (0, 1), (1, 2), (0, 2), None]


def _strided(array):
    return Strided(array, array.ctypes.data, array.shape, array.strides, array.dtype)


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", list(VIEWS))
def test_canonical_view_agrees_with_numpy(name, axis):
    array = VIEWS[name]
    perm, shape3 = canonical_layout(array.shape, axes(axis, array.ndim))
    permuted = array if perm is None else array.transpose(perm)
    try:
        expected = permuted.reshape(shape3, copy=False)
    except ValueError:
        expected = None
    got = _strided(array).transpose(perm).view_as(shape3)
    if expected is None:
        assert got is None
        return
    assert got is not None and got.shape == shape3
    for size, got_stride, want_stride in zip(shape3, got.strides, expected.strides, strict=True):
        assert size == 1 or got_stride == want_stride  # a unit axis has no stride to respect


def test_merged_strides_edge_cases():
    assert merged_strides((3, 0, 2), (8, 8, 8), (3, 0)) == (0, 0)  # empty: nothing is touched
    assert merged_strides((2, 3), (24, 8), (6,)) == (8,)
    assert merged_strides((2, 3), (8, 16), (6,)) is None  # Fortran order does not merge
    assert merged_strides((2, 1, 3), (24, 999, 8), (2, 3)) == (24, 8)  # unit axes are skipped
    assert contiguous_strides((2, 0, 3), 4) == (12, 12, 4)


def test_broadcast_uses_zero_strides():
    where = _strided(np.ones(10, dtype=bool))
    wide = broadcast(where, (4, 10))
    assert wide.shape == (4, 10) and wide.strides == (0, 1)
    assert broadcast(where, (10, 4)) is None
    assert broadcast(where, ()) is None


def test_extent_and_overlap():
    a = _strided(BASE)
    row = _strided(BASE[1])
    other = _strided(np.zeros(3))
    assert a.extent() == (BASE.ctypes.data, BASE.ctypes.data + BASE.nbytes)
    assert a.overlaps(row) and row.overlaps(a) and not a.overlaps(other)
    reversed_view = _strided(BASE[::-1])
    assert reversed_view.extent() == a.extent()
