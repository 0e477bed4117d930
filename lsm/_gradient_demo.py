"""The seed's gradient example, for ``python -m lsm demo``: log(softmax) loses the gradient.

For the loss ``L = -log softmax(x)[0]`` (cross-entropy with target 0) the exact gradient with
respect to ``x[0]`` is ``softmax(x)[0] - 1``, about -1 when ``x[0]`` is far below the others.
Differentiating ``log(softmax(x))`` by the chain rule goes through ``1 / softmax(x)[0]``: when that
probability underflows to 0 the result is ``inf * 0 = NaN``, and the usual guard
``log(p + 1e-30)`` turns it into 0. ``lsm.log_softmax`` with ``lsm.log_softmax_backward`` never
forms the probability's reciprocal and gives the exact, finite gradient.
"""

import numpy as np

from ._api import log_softmax, softmax
from ._gradients import log_softmax_backward, softmax_backward

EXAMPLES = (
    np.array([-999.0, 1.0, 2.0, 5.0, 6.0]),
    np.array([-990.0, 1.5, 2.1, 5.6, 6.8]),
)
GUARD = 1e-30


def first_entry_gradients(x):
    """``{method: (loss, dL/dx[0])}`` for ``L = -log softmax(x)[0]`` computed three ways."""
    upstream = np.zeros_like(x)
    p = softmax(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        # naive: L = -log(p[0]); dL/dp[0] = -1 / p[0], then back through softmax
        upstream[0] = -1.0 / p[0]
        naive = (-np.log(p[0]), softmax_backward(upstream, p)[0])
        upstream[0] = -1.0 / (p[0] + GUARD)
        guarded = (-np.log(p[0] + GUARD), softmax_backward(upstream, p)[0])
    upstream[0] = -1.0  # dL/dy[0] for y = log_softmax(x)
    y = log_softmax(x)
    exact = (-y[0], log_softmax_backward(upstream, y)[0])
    return {"log(softmax(x))": naive, f"log(softmax(x) + {GUARD:g})": guarded, "lsm.log_softmax": exact}


def gradient_demo_lines():
    """The lines ``python -m lsm demo`` prints for the gradient example."""
    lines = ["gradient of L = -log softmax(x)[0] with respect to x[0] (exact: softmax(x)[0] - 1):"]
    for x in EXAMPLES:
        lines.append(f"x = {x.tolist()}")
        for method, (loss, gradient) in first_entry_gradients(x).items():
            lines.append(f"  {method:<28} L = {loss:<10.6g} dL/dx[0] = {gradient + 0.0:.6g}")  # no "-0"
    lines.append("log(softmax) loses the gradient (NaN, or 0 with a guard); log_softmax keeps it.")
    return lines
