"""The GPU kernels' bfloat16 conversions (``lsm.cuda._elements``), bit for bit, in the simulator.

The kernels read and write bfloat16 as 16 bits and convert with integer arithmetic; these tests
run that arithmetic (the same device functions the kernels call; only the two reinterpretations
of bits are NumPy's here and libdevice's on a GPU) on the cases ``test_half.py`` checks the host's
conversions on: every bfloat16 widened, every bfloat16 back, every tie and its float32
neighbours, NaNs, infinities, subnormals, the overflow threshold and random float32 bit
patterns, against ml_dtypes (NumPy's ``astype``). That the kernels call them at every load and
store, and call nothing else, is ``test_cuda_compile.py::test_bfloat16_kernels_convert_in_registers``.
"""

import numpy as np
import pytest
from test_half import (
    ALL_BITS,
    _assert_same_16bit,
    _assert_same_f32,
    _bfloat16,
    _cast,
    _f32_range,
    _random_f32,
    _special_f32,
    _ties_and_neighbours,
)

pytestmark = pytest.mark.cuda_sim


@pytest.fixture(scope="module")
def elements():
    from lsm.cuda import _elements

    return _elements


def _widened(elements, values16):
    return np.array([elements.widen(v) for v in values16], dtype=np.float32)


def _narrowed(elements, values):
    like = np.empty(0, dtype=_bfloat16())
    return np.array([elements.narrow(v, like) for v in values], dtype=_bfloat16()).view(np.uint16)


def test_every_bfloat16_widens_to_its_float32(elements):
    values = ALL_BITS.view(_bfloat16())
    got = _widened(elements, values)
    _assert_same_f32(got, values.astype(np.float32))
    np.testing.assert_array_equal(got.view(np.uint32), ALL_BITS.astype(np.uint32) << 16)


def test_every_bfloat16_narrows_back_to_itself(elements):
    values = ALL_BITS.view(_bfloat16()).astype(np.float32)
    got = _narrowed(elements, values)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(got[finite], ALL_BITS[finite])
    assert np.isnan(_cast(got.view(_bfloat16())[~finite], np.float32)).all()


def test_ties_round_to_even_and_neighbours_to_nearest(elements):
    values = _ties_and_neighbours(ALL_BITS.view(_bfloat16()))
    _assert_same_16bit(_narrowed(elements, values), _cast(values, _bfloat16()), values)


def test_special_values_subnormals_and_overflow(elements):
    values = np.concatenate(
        [
            _special_f32(),
            _f32_range(0x00000000, 0x00004000),  # float32 subnormals
            _f32_range(0x007FC000, 0x00804000),  # subnormal/normal boundary
            _f32_range(0x7F7FC000, 0x7F800001),  # overflow threshold and inf
            _f32_range(0x7F800001, 0x7F802000),  # signalling and quiet NaNs
        ]
    )
    got = _narrowed(elements, values)
    _assert_same_16bit(got, _cast(values, _bfloat16()), values)
    assert np.all(got.view(_bfloat16())[values == np.finfo(np.float32).max].astype(np.float32) == np.inf)


def test_random_float32_bit_patterns(elements):
    values = _random_f32(4, count=1 << 15)
    _assert_same_16bit(_narrowed(elements, values), _cast(values, _bfloat16()), values)


def test_other_dtypes_pass_through(elements):
    assert elements.widen(np.float16(1.5)) == np.float16(1.5)
    assert elements.narrow(np.float32(1.1), np.empty(0, np.float16)) == np.float32(1.1)
    assert elements.kept_itemsize(np.dtype(_bfloat16())) == 4
    assert elements.kept_itemsize(np.dtype(np.float16)) == 2
