"""``lsm demo``: the seed example, ``log(softmax(x))`` underflowing next to ``log_softmax(x)``,
then the gradient that underflow destroys (``lsm._gradient_demo``)."""

import sys

import numpy as np

from . import __version__
from ._api import log_softmax, logsumexp, softmax
from ._gradient_demo import gradient_demo_lines

SEED_EXAMPLE = np.array([-999.0, 1.0, 2.0, 5.0, 6.0])


def demo(stream=sys.stdout):
    """Print the seed example: ``log(softmax(x))`` underflows where ``log_softmax(x)`` does not,
    and the gradient reaching ``x[0]`` through each."""
    x = SEED_EXAMPLE
    probabilities = softmax(x)
    with np.errstate(divide="ignore"):
        log_of_softmax = np.log(probabilities)
    log_probabilities = log_softmax(x)
    print(f"lsm {__version__}: x = {x.tolist()}", file=stream)
    print(f"{'x':>9} {'softmax':>12} {'log(softmax)':>14} {'log_softmax':>14}", file=stream)
    for value, p, naive, exact in zip(x, probabilities, log_of_softmax, log_probabilities, strict=True):
        print(f"{value:>9.1f} {p:>12.5g} {naive:>14.5f} {exact:>14.5f}", file=stream)
    print(f"logsumexp(x) = {logsumexp(x):.5f}", file=stream)
    print(
        "softmax underflows to 0 for x = -999, so log(softmax) is -inf and its gradient vanishes;\n"
        "log_softmax keeps the finite log-probability -1005.33.",
        file=stream,
    )
    print(file=stream)
    for line in gradient_demo_lines():
        print(line, file=stream)
