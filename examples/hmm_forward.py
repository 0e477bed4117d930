"""The forward algorithm of a hidden Markov model in log space, with lsm inside Numba's ``@njit``.

The likelihood of observations :math:`o_0, \\dots, o_{T-1}` under a model of :math:`S` states
(initial log-probabilities :math:`\\log \\pi`, transitions :math:`\\log A_{ij}`, emissions
:math:`\\log B_{jk}`) is :math:`\\log P(o) = \\operatorname{logsumexp}_j \\alpha_{T-1}(j)` with

.. math::

    \\alpha_0(j) = \\log \\pi_j + \\log B_{j o_0}, \\qquad
    \\alpha_t(j) = \\operatorname{logsumexp}_i \\bigl(\\alpha_{t-1}(i) + \\log A_{ij}\\bigr)
                   + \\log B_{j o_t}.

In probability space the :math:`\\alpha`\\ s underflow after a few hundred steps; in log space
every step is a logsumexp over the previous states, one per state: a loop of many small
reductions, which is where calling lsm from compiled code pays (no Python call per step).
``forward_lsm`` is that loop with ``lsm.logsumexp`` inside ``@njit``; ``forward_numpy`` and
``forward_scipy`` are the same loop in plain Python with ``np.logaddexp.reduce`` and
``scipy.special.logsumexp``.

Run ``python examples/hmm_forward.py`` (``--states``, ``--steps``): it prints the three
likelihoods and the time each loop takes. ``benchmarks/bench_njit_hmm.py`` times them.
"""

import argparse
import time

import numpy as np
from numba import njit

import lsm


def random_hmm(states, symbols, steps, dtype=np.float64, seed=0):
    """A random model and observation sequence: ``(log_pi, log_a, log_b, obs)``, the
    log-probabilities in ``dtype``."""
    rng = np.random.default_rng(seed)

    def log_rows(shape):
        p = rng.random(shape) + 0.05
        return np.log(p / p.sum(axis=-1, keepdims=True)).astype(dtype)

    return (
        log_rows(states),
        log_rows((states, states)),
        log_rows((states, symbols)),
        rng.integers(0, symbols, steps),
    )


@njit
def _forward(log_pi, log_a_t, log_b, obs):
    states = log_pi.shape[0]
    alpha = log_pi + log_b[:, obs[0]]
    following = np.empty_like(alpha)
    terms = np.empty_like(alpha)  # one state's terms, in the L1 cache
    for t in range(1, obs.shape[0]):
        for j in range(states):
            for i in range(states):
                terms[i] = alpha[i] + log_a_t[j, i]
            following[j] = lsm.logsumexp(terms) + log_b[j, obs[t]]
        alpha, following = following, alpha
    return lsm.logsumexp(alpha)


def forward_lsm(log_pi, log_a, log_b, obs):
    """``log P(obs)`` with ``lsm.logsumexp`` inside ``@njit``: one call per state and step, over
    a contiguous row of the transposed transitions plus the previous step's ``alpha``."""
    return _forward(log_pi, np.ascontiguousarray(log_a.T), log_b, obs)


def forward_numpy(log_pi, log_a, log_b, obs):
    """``log P(obs)`` with ``np.logaddexp.reduce`` in a Python loop."""
    alpha = log_pi + log_b[:, obs[0]]
    for t in range(1, len(obs)):
        alpha = np.logaddexp.reduce(alpha[:, None] + log_a, axis=0) + log_b[:, obs[t]]
    return np.logaddexp.reduce(alpha)


def forward_scipy(log_pi, log_a, log_b, obs):
    """``log P(obs)`` with ``scipy.special.logsumexp`` in a Python loop."""
    from scipy.special import logsumexp

    alpha = log_pi + log_b[:, obs[0]]
    for t in range(1, len(obs)):
        alpha = logsumexp(alpha[:, None] + log_a, axis=0) + log_b[:, obs[t]]
    return logsumexp(alpha)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=512)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    model = random_hmm(args.states, 16, args.steps)
    forward_lsm(*model)  # compile first (about a second)
    for name, forward in [
        ("lsm in @njit", forward_lsm),
        ("np.logaddexp", forward_numpy),
        ("scipy", forward_scipy),
    ]:
        start = time.perf_counter()
        value = forward(*model)
        print(f"{name:>13}: log P(obs) = {float(value):.10f}  ({time.perf_counter() - start:.3f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
