"""The benchmark table's ops, on every backend, against the long-double references.

``lsm.bench.table.OPS`` is the one table of the functions lsm benchmarks (their operands, the
peers they are timed against); this test runs each row's own inputs through every backend and
holds the results to ``tests/reference.py``, so the table, the benchmarks and the tests cannot
drift apart: a new row fails here until it has a call and a reference below.
"""

import pytest
from reference import (
    assert_close,
    assert_scaled_close,
    ref_backward,
    ref_cross_entropy,
    ref_log_softmax,
    ref_logsumexp,
    ref_softmax,
)

from lsm.bench.table import OPS, make_input


def _backward(log):
    def check(backend, args, axis, dtype):
        grad, y = args
        call = backend.log_softmax_backward if log else backend.softmax_backward
        expected, scale = ref_backward(grad, y, axis=axis, log=log)
        assert_scaled_close(call(grad, y=y, axis=axis), expected, scale, dtype)

    return check


def _cross_entropy(backend, args, axis, dtype):
    """The table's cross_entropy row times the fused gradient of the mean loss."""
    logits, target = args
    loss, grad = backend.cross_entropy(logits, target=target, axis=axis, return_grad=True)
    ref_loss, ref_grad, scale = ref_cross_entropy(logits, target, axis=axis)
    assert_close(loss, ref_loss, dtype)
    assert_scaled_close(grad, ref_grad, scale, dtype)


CHECKS = {
    "log_softmax": lambda backend, args, axis, dtype: assert_close(
        backend.log_softmax(args[0], axis=axis), ref_log_softmax(args[0], axis=axis), dtype
    ),
    "softmax": lambda backend, args, axis, dtype: assert_close(
        backend.softmax(args[0], axis=axis), ref_softmax(args[0], axis=axis), dtype
    ),
    "logsumexp": lambda backend, args, axis, dtype: assert_close(
        backend.logsumexp(args[0], axis=axis), ref_logsumexp(args[0], axis=axis), dtype
    ),
    "log_softmax_backward": _backward(log=True),
    "softmax_backward": _backward(log=False),
    "cross_entropy": _cross_entropy,
}


def test_every_row_of_the_table_is_checked():
    assert set(CHECKS) == set(OPS)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("op", sorted(OPS))
def test_table_op(sweep_backend, op, axis, dtype):
    """(The sweep backends: the two-process cluster computes the same graphs as dask-halves.)"""
    args = OPS[op].inputs(make_input((6, 5), dtype), axis)
    CHECKS[op](sweep_backend, args, axis, dtype)
